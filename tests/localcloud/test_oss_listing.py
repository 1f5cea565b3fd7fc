"""OSS listings (prefix, delimiter, markers and continuation tokens, max-keys, URL encoding),
CopyObject, DeleteMultipleObjects, and OSS calls in the request log and under injected faults."""

from __future__ import annotations

from collections.abc import Callable

import alibabacloud_oss_v2 as oss
import oss2
import pytest

from kiln.localcloud import LocalCloudProcess, client

from .oss_fixtures import new_bucket
from .ossutil import oss2_bucket, v2_client

__all__ = ["new_bucket"]

KEYS = ["a.txt", "dir/1", "dir/2", "dir/sub/3", "dir2/x", "z y+%.bin", "ü/key"]


@pytest.fixture
def filled(cloud: LocalCloudProcess, new_bucket: Callable[[], str]) -> str:
    name = new_bucket()
    bucket = oss2_bucket(cloud, name)
    for key in KEYS:
        bucket.put_object(key, key.encode())
    return name


def test_oss2_listing_pages(cloud: LocalCloudProcess, filled: str) -> None:
    bucket = oss2_bucket(cloud, filled)
    assert [o.key for o in oss2.ObjectIterator(bucket, max_keys=2)] == sorted(KEYS, key=str.encode)
    top = list(oss2.ObjectIterator(bucket, delimiter="/", max_keys=2))
    assert [o.key for o in top] == ["a.txt", "dir/", "dir2/", "z y+%.bin", "ü/"]
    assert [o.is_prefix() for o in top] == [False, True, True, False, True]
    inside = bucket.list_objects(prefix="dir/", delimiter="/")
    assert [o.key for o in inside.object_list] == ["dir/1", "dir/2"] and inside.prefix_list == ["dir/sub/"]
    first = bucket.list_objects(max_keys=3)
    assert first.is_truncated and first.next_marker == "dir/2"
    rest = bucket.list_objects(marker=first.next_marker)
    assert [o.key for o in rest.object_list] == ["dir/sub/3", "dir2/x", "z y+%.bin", "ü/key"]
    assert first.object_list[0].etag and first.object_list[0].size == len(b"a.txt")
    v2 = list(oss2.ObjectIteratorV2(bucket, prefix="dir", max_keys=1, start_after="dir/1"))
    assert [o.key for o in v2] == ["dir/2", "dir/sub/3", "dir2/x"]


def test_v2_listing_pages(cloud: LocalCloudProcess, filled: str) -> None:
    client_ = v2_client(cloud)
    pages = list(
        client_.list_objects_v2_paginator().iter_page(oss.ListObjectsV2Request(bucket=filled, max_keys=3))
    )
    assert len(pages) == 3
    assert [o.key for p in pages for o in p.contents or []] == sorted(KEYS, key=str.encode)
    top = client_.list_objects_v2(oss.ListObjectsV2Request(bucket=filled, delimiter="/"))
    assert [p.prefix for p in top.common_prefixes] == ["dir/", "dir2/", "ü/"]
    assert top.key_count == 5
    v1 = list(client_.list_objects_paginator().iter_page(oss.ListObjectsRequest(bucket=filled, max_keys=4)))
    assert [o.key for p in v1 for o in p.contents or []] == sorted(KEYS, key=str.encode)


def test_copy_object(cloud: LocalCloudProcess, filled: str, new_bucket: Callable[[], str]) -> None:
    bucket = oss2_bucket(cloud, filled)
    bucket.put_object("meta", b"with meta", headers={"x-oss-meta-who": "kiln", "Content-Type": "text/plain"})
    copied = bucket.copy_object(filled, "meta", "copy")
    got = bucket.get_object("copy")
    assert got.read() == b"with meta" and got.headers["x-oss-meta-who"] == "kiln"
    assert got.content_type == "text/plain" and copied.etag == got.etag
    other = oss2_bucket(cloud, new_bucket())
    other.copy_object(
        filled,
        "z y+%.bin",
        "elsewhere",
        headers={"x-oss-metadata-directive": "REPLACE", "Content-Type": "application/x-test"},
    )
    moved = other.get_object("elsewhere")
    assert moved.read() == b"z y+%.bin" and moved.content_type == "application/x-test"
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.copy_object(filled, "nothing", "copy2")


def test_delete_multiple_objects(cloud: LocalCloudProcess, filled: str) -> None:
    bucket = oss2_bucket(cloud, filled)
    result = bucket.batch_delete_objects(["a.txt", "z y+%.bin", "never-there"])
    assert sorted(result.deleted_keys) == ["a.txt", "never-there", "z y+%.bin"]
    client_ = v2_client(cloud)
    client_.delete_multiple_objects(
        oss.DeleteMultipleObjectsRequest(bucket=filled, objects=[oss.DeleteObject(key="ü/key")], quiet=True)
    )
    assert [o.key for o in oss2.ObjectIterator(bucket)] == ["dir/1", "dir/2", "dir/sub/3", "dir2/x"]


def admin(cloud: LocalCloudProcess, action: str, **params: str) -> dict[str, object]:
    answer = client.call(
        cloud.url, cloud.access_key_id, cloud.secret, action, params, version=client.ADMIN_VERSION
    )
    assert answer.status == 200, answer.body
    return answer.json()


def test_faults_target_oss_operations_and_sdks_retry(
    cloud: LocalCloudProcess, new_bucket: Callable[[], str]
) -> None:
    bucket = oss2_bucket(cloud, new_bucket())
    admin(cloud, "KilnInjectFault", TargetAction="UploadPart", Code="InternalError", Count="1")
    try:
        upload_id = bucket.init_multipart_upload("k").upload_id  # not an UploadPart: unaffected
        with pytest.raises(oss2.exceptions.ServerError) as failed:
            bucket.upload_part("k", upload_id, 1, b"part")
        assert (failed.value.status, failed.value.code) == (500, "InternalError")
        assert failed.value.request_id
        part = bucket.upload_part("k", upload_id, 1, b"part")  # the fault fired its one time
        bucket.complete_multipart_upload("k", upload_id, [oss2.models.PartInfo(1, part.etag)])
    finally:
        admin(cloud, "KilnClearFaults")
    log = admin(cloud, "KilnDescribeRequestLog", Limit="10")["Requests"]["Request"]  # type: ignore[index]
    actions = [(e["Action"], e["HttpStatus"], e["Code"], e["Signature"]) for e in log]
    assert ("UploadPart", 500, "InternalError", "oss-v1") in actions
    assert ("CompleteMultipartUpload", 200, "", "oss-v1") in actions
