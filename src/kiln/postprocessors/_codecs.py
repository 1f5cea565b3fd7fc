"""Compressed output streams for the compress post-processor, using every core where the format
allows it.

- gzip: deflate in parallel threads, pigz's way: the input is cut into blocks, each compressed with
  the previous 32 KiB as dictionary and ended with a sync flush, the results joined into ONE gzip
  member (so any gzip reader sees an ordinary file, at nearly gzip's ratio). zlib releases the GIL
  while it compresses, so the threads really run in parallel.
- bzip2: blocks compressed in parallel threads as separate bzip2 streams, concatenated
  (bzip2 -d, Python's bz2 and lbzip2 all read multi-stream files).
- xz, zstd: the `xz -T0` / `zstd -T0` commands, fed through a pipe (both are multi-threaded).
  Without the `xz` command, Python's lzma (one core).
- lz4: the `lz4` command (fast enough on one core that the disk is the limit).

A sink is written to, then `close()`d (which finishes the stream) or `abort()`ed. Writes check the
cancel token, so a cancelled run stops within one block.
"""

from __future__ import annotations

import bz2
import collections
import lzma
import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, Protocol

from kiln.core.cancel import CancelToken
from kiln.errors import BuildError
from kiln.provisioners.shell_common import SPAWN_LOCK

#: Formats that compress one stream, by the name used in messages.
ALGORITHMS = ("gzip", "bzip2", "xz", "zstd", "lz4")


class Sink(Protocol):
    def write(self, data: bytes) -> int: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class PlainSink:
    """No compression: straight to the file."""

    def __init__(self, out: BinaryIO, cancel: CancelToken) -> None:
        self.out = out
        self.cancel = cancel

    def write(self, data: bytes) -> int:
        self.cancel.check()
        self.out.write(data)
        return len(data)

    def close(self) -> None:
        self.out.flush()

    def abort(self) -> None:
        pass


class _BlockSink:
    """Cuts the input into blocks, compresses them on a thread pool, writes results in order."""

    block_size = 1 << 20

    def __init__(self, out: BinaryIO, cancel: CancelToken, workers: int) -> None:
        self.out = out
        self.cancel = cancel
        self.workers = max(1, workers)
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="kiln-compress")
        self.pending: collections.deque[Future[bytes]] = collections.deque()
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.cancel.check()
        self.buffer += data
        while len(self.buffer) >= self.block_size:
            block = bytes(self.buffer[: self.block_size])
            del self.buffer[: self.block_size]
            self._submit(block)
        return len(data)

    def _submit(self, block: bytes) -> None:
        self.pending.append(self.pool.submit(self._compress, block, self._context(block)))
        # Bounded look-ahead: memory stays at a few blocks per core whatever the input size.
        while len(self.pending) > 2 * self.workers:
            self.out.write(self.pending.popleft().result())

    def _context(self, block: bytes) -> bytes:
        return b""

    def _compress(self, block: bytes, context: bytes) -> bytes:
        raise NotImplementedError

    def _drain(self) -> None:
        if self.buffer:
            self._submit(bytes(self.buffer))
            self.buffer.clear()
        while self.pending:
            self.out.write(self.pending.popleft().result())

    def close(self) -> None:
        try:
            self._drain()
        finally:
            self.pool.shutdown(wait=True)

    def abort(self) -> None:
        for future in self.pending:
            future.cancel()
        self.pool.shutdown(wait=True, cancel_futures=True)


class ParallelGzipSink(_BlockSink):
    """One gzip member, deflated block by block in parallel (pigz's method)."""

    def __init__(self, out: BinaryIO, cancel: CancelToken, level: int, workers: int) -> None:
        super().__init__(out, cancel, workers)
        self.level = level
        self.crc = 0
        self.size = 0
        self.previous = b""
        xfl = 2 if level == 9 else 4 if level == 1 else 0
        # magic, deflate, no flags, mtime 0 (reproducible output), xfl, OS = Unix
        out.write(b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + bytes([xfl, 3]))

    def _context(self, block: bytes) -> bytes:
        self.crc = zlib.crc32(block, self.crc)
        self.size += len(block)
        context, self.previous = self.previous, block[-32768:]
        return context

    def _compress(self, block: bytes, context: bytes) -> bytes:
        if context:
            comp = zlib.compressobj(self.level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, context)
        else:
            comp = zlib.compressobj(self.level, zlib.DEFLATED, -15, 8)
        return comp.compress(block) + comp.flush(zlib.Z_SYNC_FLUSH)

    def close(self) -> None:
        super().close()
        # An empty final block ends the deflate stream the sync-flushed blocks left open.
        self.out.write(zlib.compressobj(self.level, zlib.DEFLATED, -15).flush(zlib.Z_FINISH))
        self.out.write(struct.pack("<II", self.crc & 0xFFFFFFFF, self.size & 0xFFFFFFFF))
        self.out.flush()


class ParallelBzip2Sink(_BlockSink):
    """Concatenated bzip2 streams, one per block, compressed in parallel."""

    def __init__(self, out: BinaryIO, cancel: CancelToken, level: int, workers: int) -> None:
        super().__init__(out, cancel, workers)
        self.level = level
        # Several of bzip2's own blocks (100 kB x level) per stream keep the ratio close to bzip2's.
        self.block_size = 100_000 * level * 8

    def _compress(self, block: bytes, context: bytes) -> bytes:
        return bz2.compress(block, self.level)

    def close(self) -> None:
        super().close()
        self.out.flush()


class LzmaSink:
    """xz through Python's lzma module (one core): used only when the xz command is missing."""

    def __init__(self, out: BinaryIO, cancel: CancelToken, level: int) -> None:
        self.out = out
        self.cancel = cancel
        self.comp = lzma.LZMACompressor(lzma.FORMAT_XZ, preset=level)

    def write(self, data: bytes) -> int:
        self.cancel.check()
        self.out.write(self.comp.compress(data))
        return len(data)

    def close(self) -> None:
        self.out.write(self.comp.flush())
        self.out.flush()

    def abort(self) -> None:
        pass


class ProcessSink:
    """A compressor command reading stdin and writing the output file."""

    def __init__(self, argv: list[str], out: BinaryIO, cancel: CancelToken) -> None:
        self.argv = argv
        self.cancel = cancel
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()/abort()
        with SPAWN_LOCK:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=self.errors,
                bufsize=1 << 20,
                start_new_session=True,
            )
        self.unregister: Callable[[], None] = lambda: None
        self.unregister = cancel.on_cancel(self._kill)

    def write(self, data: bytes) -> int:
        self.cancel.check()
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
        except BrokenPipeError as exc:
            self.cancel.check()
            raise BuildError(f"{self.argv[0]} stopped early: {self._stderr()}") from exc
        return len(data)

    def close(self) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        code = self.proc.wait()
        self.unregister()
        self.cancel.check()
        if code != 0:
            raise BuildError(f"{' '.join(self.argv)} failed (exit status {code}): {self._stderr()}")
        self.errors.close()

    def abort(self) -> None:
        self._kill()
        self.unregister()
        self.errors.close()

    def _kill(self) -> None:
        """Stop the compressor now (also called from the thread that cancels the run)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def _stderr(self) -> str:
        self.errors.seek(0)
        text = self.errors.read().decode("utf-8", errors="replace").strip()
        return text.splitlines()[-1] if text else "no message"


def open_sink(algorithm: str, out: BinaryIO, cancel: CancelToken, level: int) -> tuple[Sink, int]:
    """A sink compressing with `algorithm` ("" for none) into `out`, and the cores it uses."""
    n = cores()
    if algorithm == "":
        return PlainSink(out, cancel), 1
    if algorithm == "gzip":
        return ParallelGzipSink(out, cancel, min(level, 9), n), n
    if algorithm == "bzip2":
        return ParallelBzip2Sink(out, cancel, min(level, 9), n), n
    if algorithm == "xz":
        if shutil.which("xz"):
            return ProcessSink(["xz", "-T0", f"-{min(level, 9)}", "-c", "-q"], out, cancel), n
        return LzmaSink(out, cancel, min(level, 9)), 1
    if algorithm == "zstd":
        return ProcessSink(_require("zstd", ["-T0", f"-{min(level, 19)}", "-c", "-q"]), out, cancel), n
    if algorithm == "lz4":
        return ProcessSink(_require("lz4", [f"-{min(level, 12)}", "-c", "-q"]), out, cancel), 1
    raise BuildError(f"unknown compression {algorithm!r}")


def _require(command: str, args: list[str]) -> list[str]:
    if shutil.which(command) is None:
        raise BuildError(
            f"the {command} command is needed to write .{'zst' if command == 'zstd' else command} files",
            hint=f"install it (Debian: apt-get install {command})",
        )
    return [command, *args]
