"""OSS on a full disk (the file-writing tests' small tmpfs): a PUT the disk cannot hold is OSS's
InternalError with a RequestId, leaves no file behind and no traceback in the log, and the store
takes writes again once there is room."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import oss2
import pytest

from kiln.localcloud import start

from ..components import test_disk_full
from .ossutil import oss2_bucket

small_disk = test_disk_full.small_disk  # the fixture: a 1 MiB tmpfs, unmounted after the test


def test_a_put_the_disk_cannot_hold(small_disk: Path) -> None:
    state = small_disk / "state"
    with start(state, runner="none") as cloud:
        bucket = oss2_bucket(cloud, f"full-{uuid.uuid4().hex[:8]}")
        bucket.create_bucket()
        with pytest.raises(oss2.exceptions.ServerError) as full:
            bucket.put_object("too-big", os.urandom(4 * 1024 * 1024))
        assert (full.value.status, full.value.code) == (500, "InternalError") and full.value.request_id
        assert list((state / "oss" / "tmp").iterdir()) == []
        with pytest.raises(oss2.exceptions.NoSuchKey):
            bucket.get_object("too-big")
        bucket.put_object("small", b"fits")
        assert bucket.get_object("small").read() == b"fits"
        bucket.delete_object("small")
        bucket.delete_bucket()
    log = (state / "server.log").read_text()
    assert "Traceback" not in log and "No space left on device" in log
