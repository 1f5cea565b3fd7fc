"""The bytes of OSS's objects and parts: files under `state/oss/`, each written whole before it counts.

`tmp/` holds what is being received, copied or joined; `data/` what a record names, each file
under a name of its own (`keep` moves a finished file there by an atomic rename). Receiving streams
the body through one bounded buffer, writing and hashing (MD5, CRC-64, SHA-256 when asked) off
the event loop; copies and joins run in a thread with copy_file_range, so a large object never
passes through memory whole. `sweep` removes what a kill -9 left: every `tmp/` file, and the
`data/` files no record names.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from kiln.localcloud import oss_errors as E
from kiln.localcloud.model import crc64
from kiln.localcloud.store import state_folder

_FLUSH = 1024 * 1024  # bytes received are written and hashed this many at a time


@dataclass(frozen=True)
class Blob:
    """A finished file in tmp/, not yet anyone's."""

    path: Path
    size: int
    md5: bytes
    crc64: int


def _absorb(out: BinaryIO, digests: Sequence[Any], data: bytes | bytearray) -> None:
    out.write(data)
    for digest in digests:
        digest.update(data)


class _Limited:
    def __init__(self, src: BinaryIO, length: int) -> None:
        self.src, self.left = src, length

    def read(self, size: int = -1) -> bytes:
        data = self.src.read(min(size, self.left) if size >= 0 else self.left)
        self.left -= len(data)
        return data


def _copy_into(out: BinaryIO, source: Path, start: int, length: int) -> None:
    """Append bytes [start, start+length) of `source` to `out`, in the kernel where it can."""
    with source.open("rb") as src:
        out.flush()
        offset, left = start, length
        try:
            while left > 0:
                done = os.copy_file_range(src.fileno(), out.fileno(), left, offset)
                if done == 0:
                    break
                offset += done
                left -= done
        except OSError:  # a filesystem without copy_file_range between these two files
            src.seek(offset)
            shutil.copyfileobj(_Limited(src, left), out, _FLUSH)  # type: ignore[misc]


class ObjectFiles:
    def __init__(self, folder: Path) -> None:
        self.data = state_folder(folder / "data")
        self.tmp = state_folder(folder / "tmp")

    def path(self, name: str) -> Path:
        return self.data / name

    def sweep(self, named: set[str]) -> None:
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)
        for stored in self.data.iterdir():
            if stored.name not in named:
                stored.unlink(missing_ok=True)

    def _new(self, prefix: str) -> tuple[int, Path]:
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix=prefix)
        return fd, Path(name)

    async def receive(self, chunks: AsyncIterable[bytes], limit: int, sha256: str | None = None) -> Blob:
        """Stream `chunks` into a new file (EntityTooLarge past `limit` bytes; the x-oss-content-sha256
        said, when one is)."""
        fd, path = self._new("in-")
        md5, crc = hashlib.md5(), crc64.new()
        checked = hashlib.sha256() if sha256 else None
        digests: list[Any] = [md5, crc, *([checked] if checked is not None else [])]
        size = 0
        # One buffer is written and hashed in a thread while the next is read from the socket: two
        # buffers at most, and the reading does not wait for the disk.
        pending: asyncio.Future[None] | None = None
        try:
            with os.fdopen(fd, "wb", buffering=0) as out:
                try:
                    buffer = bytearray()
                    async for chunk in chunks:
                        size += len(chunk)
                        if size > limit:
                            raise E.ENTITY_TOO_LARGE(MaxSizeAllowed=limit, ProposedSize=size)
                        buffer += chunk
                        if len(buffer) >= _FLUSH:
                            if pending is not None:
                                await pending
                            pending = asyncio.ensure_future(asyncio.to_thread(_absorb, out, digests, buffer))
                            buffer = bytearray()
                    if pending is not None:
                        await pending
                    if buffer:
                        await asyncio.to_thread(_absorb, out, digests, buffer)
                finally:
                    if pending is not None and not pending.done():
                        await asyncio.shield(pending)  # the thread finishes with the file before it closes
            if checked is not None and checked.hexdigest() != sha256:
                raise E.CONTENT_SHA256_MISMATCH()
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return Blob(path, size, md5.digest(), int(crc.crcValue))

    async def copy(
        self, source: Path, start: int, length: int, known: tuple[bytes, int] | None = None
    ) -> Blob:
        """Bytes [start, start+length) of `source` into a new file; `known` is their (MD5, CRC) when
        the caller has them (a whole simple object), else they are computed."""

        def work() -> Blob:
            fd, path = self._new("copy-")
            try:
                with os.fdopen(fd, "wb") as out:
                    _copy_into(out, source, start, length)
                if known is not None:
                    return Blob(path, length, *known)
                md5, crc = hashlib.md5(), crc64.new()
                with path.open("rb") as back:
                    while block := back.read(_FLUSH):
                        md5.update(block)
                        crc.update(block)
                return Blob(path, length, md5.digest(), int(crc.crcValue))
            except BaseException:
                path.unlink(missing_ok=True)
                raise

        return await asyncio.to_thread(work)

    async def join(self, sources: Sequence[tuple[Path, int]], md5: bytes, crc: int) -> Blob:
        """The files one after the other in a new file (a multipart upload's parts)."""

        def work() -> Blob:
            fd, path = self._new("join-")
            try:
                with os.fdopen(fd, "wb") as out:
                    for source, size in sources:
                        _copy_into(out, source, 0, size)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
            return Blob(path, sum(size for _, size in sources), md5, crc)

        return await asyncio.to_thread(work)

    def discard(self, blob: Blob) -> None:
        blob.path.unlink(missing_ok=True)

    def keep(self, blob: Blob) -> str:
        """Move a finished blob into data/ under a name of its own (atomic); that name."""
        name = uuid.uuid4().hex
        os.replace(blob.path, self.data / name)
        return name

    def drop(self, names: Sequence[str]) -> None:
        for name in names:
            (self.data / name).unlink(missing_ok=True)
