"""OSS's objects across a kill -9 of localcloud: a finished PUT and a finished multipart upload are
there whole, an upload in progress can go on, and a PUT cut off halfway leaves nothing visible."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import oss2
import pytest

from kiln.localcloud import start
from kiln.localcloud.model import crc64

from .oss_fixtures import bucket_name
from .ossutil import oss2_bucket


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
