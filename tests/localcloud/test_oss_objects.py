"""OSS buckets and objects through both official SDKs: life cycle, reads with Range, CRC-64 and
MD5 checks, ETags and dates, and OSS's XML errors."""

from __future__ import annotations

import base64
import hashlib
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable

import alibabacloud_oss_v2 as oss
import oss2
import pytest

from kiln.localcloud import LocalCloudProcess
from kiln.localcloud.model import crc64

from .oss_fixtures import bucket_name, new_bucket
from .ossutil import REGION, oss2_bucket, oss2_service, signed_request, v2_client

__all__ = ["new_bucket"]  # a fixture


@pytest.mark.parametrize("v4", [False, True], ids=["v1", "v4"])
def test_oss2_bucket_life_cycle(cloud: LocalCloudProcess, v4: bool) -> None:
    name = bucket_name()
    bucket = oss2_bucket(cloud, name, v4=v4)
    bucket.create_bucket(oss2.BUCKET_ACL_PRIVATE)
    with pytest.raises(oss2.exceptions.ServerError) as exists:
        bucket.create_bucket()
    assert (exists.value.status, exists.value.code) == (409, "BucketAlreadyExists")
    listed = oss2_service(cloud, v4=v4).list_buckets(prefix=name)
    assert [b.name for b in listed.buckets] == [name]
    assert listed.buckets[0].location == f"oss-{REGION}"
    info = bucket.get_bucket_info()
    assert (info.name, info.location, info.storage_class, info.acl.grant) == (
        name,
        f"oss-{REGION}",
        "Standard",
        "private",
    )
    assert info.extranet_endpoint == f"oss-{REGION}.aliyuncs.com"
    assert bucket.get_bucket_location().location == f"oss-{REGION}"
    bucket.put_object("only", b"x")
    with pytest.raises(oss2.exceptions.BucketNotEmpty):
        bucket.delete_bucket()
    bucket.delete_object("only")
    bucket.delete_bucket()
    with pytest.raises(oss2.exceptions.NoSuchBucket) as gone:
        bucket.get_bucket_info()
    assert gone.value.details["BucketName"] == name
    assert gone.value.request_id and gone.value.details["HostId"]


@pytest.mark.parametrize("v1", [False, True], ids=["v4", "v1"])
def test_v2_bucket_life_cycle(cloud: LocalCloudProcess, v1: bool) -> None:
    client, name = v2_client(cloud, v1=v1), bucket_name()
    client.put_bucket(
        oss.PutBucketRequest(
            bucket=name, create_bucket_configuration=oss.CreateBucketConfiguration(storage_class="IA")
        )
    )
    assert client.is_bucket_exist(name)
    assert not client.is_bucket_exist(bucket_name())
    info = client.get_bucket_info(oss.GetBucketInfoRequest(bucket=name)).bucket_info
    assert (info.name, info.storage_class, info.location) == (name, "IA", f"oss-{REGION}")
    names = [
        b.name
        for page in client.list_buckets_paginator().iter_page(oss.ListBucketsRequest())
        for b in page.buckets
    ]
    assert name in names
    assert client.get_bucket_location(oss.GetBucketLocationRequest(bucket=name)).location == f"oss-{REGION}"
    client.delete_bucket(oss.DeleteBucketRequest(bucket=name))
    with pytest.raises(oss.exceptions.OperationError) as gone:
        client.get_bucket_info(oss.GetBucketInfoRequest(bucket=name))
    error = gone.value.unwrap()
    assert (error.status_code, error.code) == (404, "NoSuchBucket")


def test_invalid_bucket_name(cloud: LocalCloudProcess) -> None:
    answer = signed_request(cloud, "PUT", "Not_A_Bucket")
    error = ET.fromstring(answer.content)
    assert answer.status_code == 400
    assert error.findtext("Code") == "InvalidBucketName" and error.findtext("BucketName") == "Not_A_Bucket"
    assert error.findtext("RequestId") == answer.headers["x-oss-request-id"]


@pytest.mark.parametrize("v4", [False, True], ids=["v1", "v4"])
def test_oss2_put_get_head_delete(cloud: LocalCloudProcess, new_bucket: Callable[[], str], v4: bool) -> None:
    bucket = oss2_bucket(cloud, new_bucket(), v4=v4)
    data = os.urandom(300_000)
    key = "dir/ünïcode key+plus %.raw"
    put = bucket.put_object(
        key, data, headers={"Content-Type": "application/x-raw", "x-oss-meta-origin": "qemu"}
    )
    assert put.etag == hashlib.md5(data).hexdigest().upper()
    assert put.crc == crc64.of(data)  # oss2 compared it with its own CRC already (enable_crc)
    got = bucket.get_object(key)
    assert got.read() == data
    assert got.content_type == "application/x-raw"
    assert got.headers["x-oss-meta-origin"] == "qemu"
    assert got.server_crc == crc64.of(data)
    head = bucket.head_object(key)
    assert (head.content_length, head.etag, head.object_type) == (len(data), put.etag, "Normal")
    assert head.headers["Last-Modified"].endswith(" GMT")
    assert head.headers["Content-MD5"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    bucket.delete_object(key)
    with pytest.raises(oss2.exceptions.NoSuchKey) as missing:
        bucket.get_object(key)
    assert missing.value.details["Key"] == key and missing.value.details["EC"] == "0026-00000001"
    with pytest.raises(oss2.exceptions.NotFound):
        bucket.head_object(key)
    bucket.delete_object(key)  # deleting what is not there is not an error, as on OSS


def test_range_reads(cloud: LocalCloudProcess, new_bucket: Callable[[], str]) -> None:
    bucket = oss2_bucket(cloud, new_bucket())
    data = bytes(range(256)) * 40
    bucket.put_object("r", data)
    part = bucket.get_object("r", byte_range=(100, 199))
    assert part.status == 206 and part.read() == data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert bucket.get_object("r", byte_range=(None, 10)).read() == data[-10:]
    assert bucket.get_object("r", byte_range=(10_000, None)).read() == data[10_000:]
    # OSS serves the whole object for a range it cannot satisfy, unless asked for the standard behaviour
    whole = bucket.get_object("r", byte_range=(20_000, 30_000))
    assert whole.status == 200 and whole.read() == data
    with pytest.raises(oss2.exceptions.ServerError) as standard:
        bucket.get_object("r", byte_range=(20_000, 30_000), headers={"x-oss-range-behavior": "standard"})
    assert (standard.value.status, standard.value.code) == (416, "InvalidRange")
    client = v2_client(cloud)
    ranged = client.get_object(
        oss.GetObjectRequest(bucket=bucket.bucket_name, key="r", range_header="bytes=5-9")
    )
    assert ranged.body.read() == data[5:10]


def test_v2_put_get_checks_crc(cloud: LocalCloudProcess, new_bucket: Callable[[], str]) -> None:
    client, name = v2_client(cloud), new_bucket()
    data = os.urandom(1_000_001)
    put = client.put_object(oss.PutObjectRequest(bucket=name, key="k", body=data))
    assert put.hash_crc64 == str(crc64.of(data)) and put.etag == f'"{hashlib.md5(data).hexdigest().upper()}"'
    got = client.get_object(oss.GetObjectRequest(bucket=name, key="k"))
    assert got.body.read() == data and got.hash_crc64 == str(crc64.of(data))
    head = client.head_object(oss.HeadObjectRequest(bucket=name, key="k"))
    assert head.content_length == len(data)
    assert client.is_object_exist(name, "k") and not client.is_object_exist(name, "nothing")
    with pytest.raises(oss.exceptions.OperationError) as missing:
        client.head_object(oss.HeadObjectRequest(bucket=name, key="nothing"))
    assert missing.value.unwrap().code == "NoSuchKey"  # decoded from the x-oss-err header of the HEAD answer
    client.delete_object(oss.DeleteObjectRequest(bucket=name, key="k"))
    assert not client.is_object_exist(name, "k")


def test_content_md5_is_checked(cloud: LocalCloudProcess, new_bucket: Callable[[], str]) -> None:
    bucket = oss2_bucket(cloud, new_bucket())
    good = base64.b64encode(hashlib.md5(b"abc").digest()).decode()
    bucket.put_object("m", b"abc", headers={"Content-MD5": good})
    with pytest.raises(oss2.exceptions.ServerError) as wrong:
        bucket.put_object("m", b"abd", headers={"Content-MD5": good})
    assert (wrong.value.status, wrong.value.code) == (400, "InvalidDigest")
    with pytest.raises(oss2.exceptions.ServerError) as malformed:
        bucket.put_object("m", b"abc", headers={"Content-MD5": "not base64!"})
    assert malformed.value.code == "InvalidDigest"
    assert bucket.get_object("m").read() == b"abc"  # a refused write changed nothing


def test_missing_bucket_and_key(cloud: LocalCloudProcess, new_bucket: Callable[[], str]) -> None:
    nowhere = oss2_bucket(cloud, bucket_name())
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        nowhere.put_object("k", b"x")
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        nowhere.get_object("k")
    bucket = oss2_bucket(cloud, new_bucket())
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.get_object("k")


@pytest.mark.parametrize("v4", [False, True], ids=["v1", "v4"])
def test_bad_signature_and_unknown_key(
    cloud: LocalCloudProcess, new_bucket: Callable[[], str], v4: bool
) -> None:
    name = new_bucket()
    wrong = oss2_bucket(cloud, name, v4=v4, secret="not-the-secret")
    with pytest.raises(oss2.exceptions.ServerError) as bad:
        wrong.put_object("k", b"x")
    assert (bad.value.status, bad.value.code) == (403, "SignatureDoesNotMatch")
    assert bad.value.details["StringToSign"] and bad.value.details["OSSAccessKeyId"] == cloud.access_key_id
    said = bad.value.details["StringToSign"].encode()
    assert bytes.fromhex(bad.value.details["StringToSignBytes"].replace(" ", "")) == said
    assert bad.value.details["EC"] == ("0002-00000201" if v4 else "0002-00000040")
    assert bad.value.headers["x-oss-ec"] == bad.value.details["EC"]
    assert cloud.secret not in str(bad.value.details)
    unknown = oss2_bucket(cloud, name, v4=v4, key_id="LTAInobodyhasthiskey")
    with pytest.raises(oss2.exceptions.ServerError) as nobody:
        unknown.get_object("k")
    assert (nobody.value.status, nobody.value.code) == (403, "InvalidAccessKeyId")
    with pytest.raises(oss2.exceptions.NoSuchKey):
        oss2_bucket(cloud, name, v4=v4).get_object("k")  # nothing was written by the refused call


def test_anonymous_is_denied(cloud: LocalCloudProcess, new_bucket: Callable[[], str]) -> None:
    anonymous = oss2.Bucket(oss2.AnonymousAuth(), cloud.url, new_bucket())
    with pytest.raises(oss2.exceptions.AccessDenied):
        anonymous.put_object("k", b"x")


def test_conditions_and_overrides(cloud: LocalCloudProcess, new_bucket: Callable[[], str]) -> None:
    bucket = oss2_bucket(cloud, new_bucket())
    etag = bucket.put_object("c", b"conditional").etag
    with pytest.raises(oss2.exceptions.ServerError) as exists:
        bucket.put_object("c", b"again", headers={"x-oss-forbid-overwrite": "true"})
    assert (exists.value.status, exists.value.code) == (409, "FileAlreadyExists")
    assert bucket.get_object("c").read() == b"conditional"
    with pytest.raises(oss2.exceptions.NotModified):
        bucket.get_object("c", headers={"If-None-Match": f'"{etag}"'})
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        bucket.get_object("c", headers={"If-Match": '"0123456789ABCDEF0123456789ABCDEF"'})
    assert bucket.get_object("c", headers={"If-Match": f'"{etag}"'}).read() == b"conditional"
    renamed = bucket.get_object(
        "c", params={"response-content-type": "text/x-kiln", "response-content-disposition": "attachment"}
    )
    assert renamed.content_type == "text/x-kiln" and renamed.headers["Content-Disposition"] == "attachment"


def test_chunked_upload_without_a_length(cloud: LocalCloudProcess, new_bucket: Callable[[], str]) -> None:
    bucket = oss2_bucket(cloud, new_bucket())
    parts = [os.urandom(300_000), os.urandom(5), os.urandom(70_000)]
    put = bucket.put_object("chunked", iter(parts))  # oss2 sends an iterator with Transfer-Encoding: chunked
    assert put.crc == crc64.of(b"".join(parts))
    assert bucket.get_object("chunked").read() == b"".join(parts)
