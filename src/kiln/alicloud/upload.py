"""Uploading a large file to OSS: multipart, parts in parallel, each part retried, resumable.

The file is cut into parts of `part_size`; `parallel` threads send them (UploadPart through the
official SDK), each part read from the file as it is sent, so memory holds at most about
part_size x parallel. A part that fails is retried with backoff (`attempts` in all).

Resume: the upload's id is written to a checkpoint under kiln's state folder
(`oss-uploads/<hash of bucket, key, file size, part size>.json`) the moment it exists, and
handed to `on_upload` (the journal). A run that stops (failed, interrupted, killed) leaves the upload
and its checkpoint; the next upload of the same file to the same place asks OSS which parts it
has (ListParts), keeps those whose ETag is the MD5 of the file's bytes, and sends only the others. An upload that no longer exists (aborted by
`kiln cleanup`) starts afresh.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln import paths
from kiln.alicloud import oss
from kiln.core.cancel import CancelToken
from kiln.errors import CancelledError, CloudError

log = logging.getLogger("kiln.alicloud")

PART_SIZE = 16 << 20
PARALLEL = 4
ATTEMPTS = 5


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    upload_id: str
    journal: str  #: the journal that lists the upload (a later run takes it over)


def checkpoint_dir() -> Path:
    return paths.state_dir() / "oss-uploads"


def _checkpoint_path(bucket: str, key: str, identity: str, part_size: int) -> Path:
    ident = f"{bucket}\0{key}\0{identity}\0{part_size}"
    return checkpoint_dir() / f"{hashlib.sha256(ident.encode()).hexdigest()[:32]}.json"


def load_checkpoint(bucket: str, key: str, identity: str, part_size: int = PART_SIZE) -> Checkpoint | None:
    path = _checkpoint_path(bucket, key, identity, part_size)
    try:
        data = json.loads(path.read_text())
        return Checkpoint(path, str(data["upload_id"]), str(data.get("journal", "")))
    except (OSError, ValueError, KeyError):
        return None


def _save_checkpoint(path: Path, upload_id: str, journal: str) -> None:
    paths.private_dir(path.parent)
    with paths.atomic_file(path, 0o600) as handle:
        handle.write(json.dumps({"upload_id": upload_id, "journal": journal}).encode())


class _Section:
    """Bytes [offset, offset + size) of a file, read as the SDK sends them (never held whole)."""

    def __init__(self, path: Path, offset: int, size: int) -> None:
        self._file = path.open("rb")
        self._file.seek(offset)
        self._offset = offset
        self._left = self._size = size

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._file.read(n)
        self._left -= len(data)
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        target = pos if whence == 0 else (self._size - self._left + pos if whence == 1 else self._size + pos)
        self._file.seek(self._offset + target)
        self._left = self._size - target
        return target

    def tell(self) -> int:
        return self._size - self._left

    def seekable(self) -> bool:
        return True

    def __len__(self) -> int:
        return self._size

    def close(self) -> None:
        self._file.close()


def _same_bytes(source: Path, offset: int, size: int, etag: str) -> bool:
    digest = hashlib.md5()
    with source.open("rb") as handle:
        handle.seek(offset)
        left = size
        while left > 0:
            chunk = handle.read(min(left, 1 << 20))
            if not chunk:
                return False
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest().lower() == etag.strip('"').lower()


def _finished_parts(api: Any, bucket: str, key: str, upload_id: str) -> dict[int, tuple[str, int]] | None:
    """Part number -> (ETag, size) of the parts OSS has; None when the upload is gone."""
    import alibabacloud_oss_v2 as sdk

    parts: dict[int, tuple[str, int]] = {}
    marker: int | None = None
    while True:
        try:
            page = api.list_parts(
                sdk.ListPartsRequest(
                    bucket=bucket, key=key, upload_id=upload_id, part_number_marker=marker, max_parts=1000
                )
            )
        except Exception as exc:
            if oss.error_code(exc) == "NoSuchUpload":
                return None
            raise CloudError(f"cannot list the parts of upload {upload_id}: {oss.describe(exc)}") from None
        for part in page.parts or []:
            parts[int(part.part_number)] = (str(part.etag), int(part.size))
        if not page.is_truncated:
            return parts
        marker = int(page.next_part_number_marker)


def upload_file(
    api: Any,
    bucket: str,
    key: str,
    source: Path,
    *,
    journal: str,
    on_upload: Callable[[str, Checkpoint | None], None],
    progress: Callable[[int], None],
    cancel: CancelToken,
    part_size: int = PART_SIZE,
    parallel: int = PARALLEL,
    attempts: int = ATTEMPTS,
    on_resume: Callable[[int, int], None] = lambda done, total: None,
    identity: str = "",
) -> str:
    """Upload `source` to bucket/key; return the upload id it completed.

    `on_upload(upload_id, taken_over)` is called once the upload exists (before any part is sent);
    `taken_over` is the checkpoint of an earlier run whose upload this one resumes.
    `progress(nbytes)` counts bytes as parts finish (the resumed ones at once). `identity` names the
    upload across runs beside bucket/key (default: the file's size: a build's disk is a new file
    at each run, made again or converted again). A part OSS holds is taken only if its ETag is the MD5 of the
    file's bytes there, so a file that changed since is never completed from stale parts."""
    import alibabacloud_oss_v2 as sdk

    size = source.stat().st_size
    count = max(1, math.ceil(size / part_size))
    identity = identity or str(size)
    found = load_checkpoint(bucket, key, identity, part_size)
    done: dict[int, tuple[str, int]] = {}
    upload_id = ""
    if found is not None:
        listed = _finished_parts(api, bucket, key, found.upload_id)
        if listed is not None:
            upload_id, done = found.upload_id, listed
    if not upload_id:
        found = None
        try:
            upload_id = str(
                api.initiate_multipart_upload(
                    sdk.InitiateMultipartUploadRequest(bucket=bucket, key=key)
                ).upload_id
            )
        except Exception as exc:
            raise CloudError(f"cannot start the upload to {bucket}/{key}: {oss.describe(exc)}") from None
    checkpoint = _checkpoint_path(bucket, key, identity, part_size)
    _save_checkpoint(checkpoint, upload_id, journal)
    on_upload(upload_id, found)

    def expected(number: int) -> int:
        return min(part_size, size - (number - 1) * part_size) if size else 0

    etags = {
        n: etag
        for n, (etag, got) in done.items()
        if n <= count and got == expected(n) and _same_bytes(source, (n - 1) * part_size, got, etag)
    }
    todo = [n for n in range(1, count + 1) if n not in etags]
    if etags:
        on_resume(len(etags), count)
        progress(sum(expected(n) for n in etags))
    failed = threading.Event()

    def send(number: int) -> tuple[int, str]:
        for attempt in range(attempts):
            if failed.is_set():
                raise CancelledError("another part failed")
            cancel.check()
            body = _Section(source, (number - 1) * part_size, expected(number))
            try:
                result = api.upload_part(
                    sdk.UploadPartRequest(
                        bucket=bucket, key=key, upload_id=upload_id, part_number=number, body=body
                    )
                )
                progress(expected(number))
                return number, str(result.etag)
            except Exception as exc:
                if attempt + 1 >= attempts:
                    failed.set()
                    raise CloudError(
                        f"part {number} of {bucket}/{key} failed {attempts} times: {oss.describe(exc)}",
                        "the upload is kept: run the build again to resume it",
                    ) from None
                log.info("part %d of %s/%s: %s; retrying", number, bucket, key, oss.describe(exc))
                cancel.sleep(random.uniform(0, min(8.0, 0.5 * 2**attempt)))
            finally:
                body.close()
        raise AssertionError("unreachable")

    with concurrent.futures.ThreadPoolExecutor(parallel, thread_name_prefix="kiln-oss-part") as pool:
        futures = [pool.submit(send, n) for n in todo]
        try:
            for future in concurrent.futures.as_completed(futures):
                number, etag = future.result()
                etags[number] = etag
        except BaseException:
            failed.set()
            for future in futures:
                future.cancel()
            raise
    parts = [sdk.UploadPart(part_number=n, etag=etags[n]) for n in sorted(etags)]
    try:
        api.complete_multipart_upload(
            sdk.CompleteMultipartUploadRequest(
                bucket=bucket,
                key=key,
                upload_id=upload_id,
                complete_multipart_upload=sdk.CompleteMultipartUpload(parts=parts),
            )
        )
    except Exception as exc:
        raise CloudError(f"cannot complete the upload to {bucket}/{key}: {oss.describe(exc)}") from None
    checkpoint.unlink(missing_ok=True)
    return upload_id
