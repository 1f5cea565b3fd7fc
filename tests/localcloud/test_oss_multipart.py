"""OSS multipart uploads through both SDKs (parallel parts, byte for byte), their listings and
errors, UploadPartCopy, and the multipart ETag and CRC-64 the SDKs check."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import alibabacloud_oss_v2 as oss
import oss2
import pytest

from kiln.localcloud import LocalCloudProcess
from kiln.localcloud.model import crc64

from .oss_fixtures import new_bucket
from .ossutil import oss2_bucket, signed_request, v2_client

__all__ = ["new_bucket"]

MiB = 1024 * 1024


def multipart_etag(parts: list[bytes]) -> str:
    return (
        hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest().upper() + f"-{len(parts)}"
    )


@pytest.mark.parametrize("v4", [False, True], ids=["v1", "v4"])
def test_oss2_resumable_upload_of_several_parts(
    cloud: LocalCloudProcess, new_bucket: Callable[[], str], tmp_path: Path, v4: bool
) -> None:
    bucket = oss2_bucket(cloud, new_bucket(), v4=v4)
    data = os.urandom(7 * MiB + 12345)
    source = tmp_path / "disk.raw"
    source.write_bytes(data)
    oss2.resumable_upload(
        bucket,
        "images/disk.raw",
        str(source),
        store=oss2.ResumableStore(root=str(tmp_path)),
        multipart_threshold=MiB,
        part_size=2 * MiB,
        num_threads=3,
    )
    head = bucket.head_object("images/disk.raw")
    chunks = [data[i : i + 2 * MiB] for i in range(0, len(data), 2 * MiB)]
    assert head.etag == multipart_etag(chunks) and head.object_type == "Multipart"
    assert head.server_crc == crc64.of(data)
    target = tmp_path / "back.raw"
    oss2.resumable_download(
        bucket,
        "images/disk.raw",
        str(target),
        multiget_threshold=MiB,
        part_size=MiB,
        num_threads=3,
        store=oss2.ResumableDownloadStore(root=str(tmp_path)),
    )
    assert target.read_bytes() == data
    assert bucket.get_object("images/disk.raw").read() == data  # one GET, its CRC checked by oss2


def test_v2_uploader_and_downloader(
    cloud: LocalCloudProcess, new_bucket: Callable[[], str], tmp_path: Path
) -> None:
    client, name = v2_client(cloud), new_bucket()
    data = os.urandom(5 * MiB + 1)
    source = tmp_path / "disk.qcow2"
    source.write_bytes(data)
    uploader = client.uploader(part_size=MiB, parallel_num=3, leave_parts_on_error=True)
    result = uploader.upload_file(oss.PutObjectRequest(bucket=name, key="disk.qcow2"), filepath=str(source))
    assert result.hash_crc64 == str(crc64.of(data))
    target = tmp_path / "back"
    client.downloader(part_size=MiB, parallel_num=3).download_file(
        oss.GetObjectRequest(bucket=name, key="disk.qcow2"), filepath=str(target)
    )
    assert target.read_bytes() == data


def test_parts_listings_and_complete(cloud: LocalCloudProcess, new_bucket: Callable[[], str]) -> None:
    bucket = oss2_bucket(cloud, new_bucket())
    upload_id = bucket.init_multipart_upload(
        "k", headers={"Content-Type": "application/x-qemu-disk"}
    ).upload_id
    other = bucket.init_multipart_upload("k2").upload_id
    assert {u.upload_id for u in oss2.MultipartUploadIterator(bucket)} == {upload_id, other}
    assert [u.key for u in oss2.MultipartUploadIterator(bucket, prefix="k2")] == ["k2"]
    chunks = [os.urandom(200 * 1024), os.urandom(200 * 1024), os.urandom(1000)]
    results = [bucket.upload_part("k", upload_id, n + 1, c) for n, c in enumerate(chunks)]
    assert [r.crc for r in results] == [crc64.of(c) for c in chunks]
    listed = list(oss2.PartIterator(bucket, "k", upload_id, max_parts=2))
    assert [(p.part_number, p.size, p.etag) for p in listed] == [
        (n + 1, len(c), hashlib.md5(c).hexdigest().upper()) for n, c in enumerate(chunks)
    ]
    v2_parts = v2_client(cloud).list_parts(
        oss.ListPartsRequest(bucket=bucket.bucket_name, key="k", upload_id=upload_id)
    )
    assert [p.hash_crc64 for p in v2_parts.parts] == [
        str(crc64.of(c)) for c in chunks
    ]  # oss2 does not read it
    reversed_parts = "".join(
        f'<Part><PartNumber>{n}</PartNumber><ETag>"{results[n - 1].etag}"</ETag></Part>' for n in (2, 1)
    )
    order = signed_request(  # oss2 sorts the parts itself: send them out of order by hand
        cloud,
        "POST",
        bucket.bucket_name,
        "k",
        {"uploadId": upload_id},
        f"<CompleteMultipartUpload>{reversed_parts}</CompleteMultipartUpload>".encode(),
    )
    assert order.status_code == 400 and b"<Code>InvalidPartOrder</Code>" in order.content
    with pytest.raises(oss2.exceptions.ServerError) as wrong:
        bucket.complete_multipart_upload("k", upload_id, [oss2.models.PartInfo(1, results[1].etag)])
    assert (wrong.value.status, wrong.value.code) == (400, "InvalidPart")
    done = bucket.complete_multipart_upload(
        "k", upload_id, [oss2.models.PartInfo(n + 1, r.etag) for n, r in enumerate(results)]
    )
    assert done.crc == crc64.of(b"".join(chunks))  # combined from the parts' CRCs, checked by oss2
    got = bucket.get_object("k")
    assert got.read() == b"".join(chunks) and got.content_type == "application/x-qemu-disk"
    assert got.etag == multipart_etag(chunks)
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.upload_part("k", upload_id, 4, b"late")
    bucket.abort_multipart_upload("k2", other)
    assert list(oss2.MultipartUploadIterator(bucket)) == []
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.list_parts("k2", other)


def test_small_middle_part_is_entity_too_small(
    cloud: LocalCloudProcess, new_bucket: Callable[[], str]
) -> None:
    bucket = oss2_bucket(cloud, new_bucket())
    upload_id = bucket.init_multipart_upload("k").upload_id
    first = bucket.upload_part("k", upload_id, 1, b"tiny")
    last = bucket.upload_part("k", upload_id, 2, b"end")
    with pytest.raises(oss2.exceptions.ServerError) as small:
        bucket.complete_multipart_upload(
            "k", upload_id, [oss2.models.PartInfo(1, first.etag), oss2.models.PartInfo(2, last.etag)]
        )
    assert (small.value.status, small.value.code) == (400, "EntityTooSmall")
    with pytest.raises(oss2.exceptions.ServerError) as number:
        bucket.upload_part("k", upload_id, 10001, b"x")
    assert number.value.code == "InvalidArgument"


def test_a_part_sent_again_replaces_the_first(
    cloud: LocalCloudProcess, new_bucket: Callable[[], str]
) -> None:
    bucket = oss2_bucket(cloud, new_bucket())
    upload_id = bucket.init_multipart_upload("k").upload_id
    bucket.upload_part("k", upload_id, 1, b"first try")
    again = bucket.upload_part("k", upload_id, 1, b"second")
    bucket.complete_multipart_upload("k", upload_id, [oss2.models.PartInfo(1, again.etag)])
    assert bucket.get_object("k").read() == b"second"


def test_upload_part_copy(cloud: LocalCloudProcess, new_bucket: Callable[[], str]) -> None:
    name = new_bucket()
    bucket = oss2_bucket(cloud, name)
    data = os.urandom(300 * 1024)
    bucket.put_object("src", data)
    upload_id = bucket.init_multipart_upload("dst").upload_id
    first = bucket.upload_part_copy(name, "src", (0, 200 * 1024 - 1), "dst", upload_id, 1)
    second = bucket.upload_part_copy(name, "src", (200 * 1024, len(data) - 1), "dst", upload_id, 2)
    assert first.etag == hashlib.md5(data[: 200 * 1024]).hexdigest().upper()
    bucket.complete_multipart_upload(
        "dst", upload_id, [oss2.models.PartInfo(1, first.etag), oss2.models.PartInfo(2, second.etag)]
    )
    assert bucket.get_object("dst").read() == data
