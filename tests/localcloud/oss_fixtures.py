"""A fixture making buckets that are emptied and removed after the test (objects and uploads)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import oss2
import pytest

from kiln.localcloud import LocalCloudProcess

from .ossutil import oss2_bucket


def bucket_name() -> str:
    return f"kiln-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def new_bucket(cloud: LocalCloudProcess) -> Iterator[Callable[[], str]]:
    made: list[str] = []

    def make() -> str:
        name = bucket_name()
        oss2_bucket(cloud, name).create_bucket()
        made.append(name)
        return name

    yield make
    for name in made:
        bucket = oss2_bucket(cloud, name)
        for listed in oss2.ObjectIterator(bucket):
            bucket.delete_object(listed.key)
        for upload in oss2.MultipartUploadIterator(bucket):
            bucket.abort_multipart_upload(upload.key, upload.upload_id)
        bucket.delete_bucket()
