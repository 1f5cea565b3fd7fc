"""A large object goes through localcloud in bounded memory: its peak RSS (VmHWM, from /proc) grows
by far less than the object while it is uploaded (simple and multipart) and downloaded."""

from __future__ import annotations

import hashlib
from pathlib import Path

import oss2
import pytest
import requests

from kiln.localcloud import start

from .oss_fixtures import bucket_name
from .ossutil import oss2_bucket

MiB = 1024 * 1024
SIZE = 320 * MiB
BOUND = 64 * MiB  # what the server may grow by while it moves SIZE bytes


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def big_file(path: Path, size: int) -> str:
    digest = hashlib.md5()
    block = bytes(range(256)) * (4096 * 4)
    with path.open("wb") as out:
        for n in range(size // len(block)):
            chunk = n.to_bytes(8, "big") + block[8:]
            out.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.slow
def test_large_objects_use_bounded_memory(state_root: Path, tmp_path: Path) -> None:
    source = tmp_path / "large.raw"
    md5 = big_file(source, SIZE)
    with start(state_root / "oss-memory", runner="none") as cloud:
        bucket = oss2_bucket(cloud, bucket_name())
        bucket.create_bucket()
        bucket.put_object("warm-up", b"x" * MiB)  # the first request's imports and caches
        before = peak_rss(cloud.pid)
        with source.open("rb") as body:
            answer = requests.put(bucket.sign_url("PUT", "large", 600), data=body, timeout=300)
        assert answer.status_code == 200, answer.text
        assert answer.headers["ETag"] == f'"{md5.upper()}"'
        oss2.resumable_upload(
            bucket,
            "parts",
            str(source),
            store=oss2.ResumableStore(root=str(tmp_path)),
            multipart_threshold=8 * MiB,
            part_size=32 * MiB,
            num_threads=2,
        )
        digest = hashlib.md5()
        with requests.get(bucket.sign_url("GET", "parts", 600), stream=True, timeout=300) as got:
            for chunk in got.iter_content(MiB):
                digest.update(chunk)
        assert digest.hexdigest() == md5
        grown = peak_rss(cloud.pid) - before
        assert grown < BOUND, f"localcloud grew by {grown / MiB:.0f} MiB moving {SIZE // MiB} MiB objects"
