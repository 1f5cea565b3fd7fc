"""OSS's objects across a kill -9 of localcloud: a finished PUT and a finished multipart upload are
there whole, an upload in progress can go on, and a PUT cut off halfway (server killed, or client
gone) leaves nothing, visible or on disk."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import oss2
import pytest

from kiln.localcloud import LocalCloudProcess, start
from kiln.localcloud.model import crc64

from .oss_fixtures import bucket_name, new_bucket
from .ossutil import oss2_bucket

__all__ = ["new_bucket"]


def test_kill_9_keeps_finished_writes_and_drops_half_ones(state_root: Path) -> None:
    state = state_root / "oss-kill-9"
    name = bucket_name()
    data = os.urandom(3 * 1024 * 1024 + 17)
    with start(state, runner="none") as first:
        bucket = oss2_bucket(first, name)
        bucket.create_bucket()
        bucket.put_object("whole", data)
        upload_id = bucket.init_multipart_upload("big").upload_id
        part1 = bucket.upload_part("big", upload_id, 1, data[: 2 * 1024 * 1024])
        # a PUT whose body stops halfway: the server has part of it on disk when it dies
        url = bucket.sign_url("PUT", "half", 600)
        path = url.split(first.url, 1)[1]
        half = socket.create_connection(("127.0.0.1", first.port))
        half.sendall(
            f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{first.port}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data[: len(data) // 2]
        )
        deadline = time.monotonic() + 10
        while not any((state / "oss" / "tmp").iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any((state / "oss" / "tmp").iterdir()), "the half PUT never reached the disk"
        first.kill()
        half.close()
    with start(state, runner="none") as second:
        bucket = oss2_bucket(second, name)
        got = bucket.get_object("whole")
        assert got.read() == data and got.server_crc == crc64.of(data)
        with pytest.raises(oss2.exceptions.NoSuchKey):
            bucket.get_object("half")
        assert list((state / "oss" / "tmp").iterdir()) == []  # swept at the start
        # the upload survived: its finished part is listed, and the rest completes it
        assert [p.part_number for p in oss2.PartIterator(bucket, "big", upload_id)] == [1]
        part2 = bucket.upload_part("big", upload_id, 2, data[2 * 1024 * 1024 :])
        bucket.complete_multipart_upload(
            "big", upload_id, [oss2.models.PartInfo(1, part1.etag), oss2.models.PartInfo(2, part2.etag)]
        )
        assert bucket.get_object("big").read() == data
        stored = {p.name for p in (state / "oss" / "data").iterdir()}
        assert len(stored) == 2  # "whole" and "big": the parts' files went with the completion


def _put_head(path: str, port: int, length: int) -> bytes:
    return f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {length}\r\n\r\n".encode()


def test_a_client_that_goes_away_leaves_nothing(
    cloud: LocalCloudProcess, new_bucket: Callable[[], str]
) -> None:
    bucket = oss2_bucket(cloud, new_bucket())
    path = bucket.sign_url("PUT", "cut", 600).split(cloud.url, 1)[1]
    tmp = cloud.state_dir / "oss" / "tmp"
    with socket.create_connection(("127.0.0.1", cloud.port)) as cut:
        cut.sendall(_put_head(path, cloud.port, 10 * 1024 * 1024) + b"x" * (3 * 1024 * 1024))
        deadline = time.monotonic() + 10
        while not any(tmp.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(tmp.iterdir())
    deadline = time.monotonic() + 10
    while any(tmp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp.iterdir()) == []
    assert not bucket.object_exists("cut")


def test_a_body_over_5_gib_is_refused_before_it_is_read(
    cloud: LocalCloudProcess, new_bucket: Callable[[], str]
) -> None:
    bucket = oss2_bucket(cloud, new_bucket())
    path = bucket.sign_url("PUT", "huge", 600).split(cloud.url, 1)[1]
    with socket.create_connection(("127.0.0.1", cloud.port), timeout=10) as huge:
        huge.sendall(_put_head(path, cloud.port, 6 * 1024**3))
        answer = huge.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400") and b"<Code>EntityTooLarge</Code>" in answer
