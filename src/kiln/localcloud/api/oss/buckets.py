"""Buckets: PutBucket, GetBucketInfo, GetBucketLocation, GetBucketAcl, ListBuckets (GetService), DeleteBucket."""

from __future__ import annotations

from aiohttp import web

from kiln.localcloud import oss_errors as E
from kiln.localcloud.api.oss.wire import (
    OssCall,
    empty_reply,
    endpoints,
    iso_date,
    operation,
    owner,
    read_xml,
    text,
    xml_reply,
)
from kiln.localcloud.model.oss import ACLS, STORAGE_CLASSES, Bucket
from kiln.localcloud.model.regions import DEFAULT_REGION


def check_endpoint(call: OssCall, bucket: Bucket) -> None:
    """A bucket is addressed through its own region's endpoint (an address names no region)."""
    if call.region is not None and call.region != bucket.region:
        raise E.WRONG_ENDPOINT(BucketName=bucket.name, Endpoint=f"oss-{bucket.region}.aliyuncs.com")


def own_bucket(call: OssCall) -> Bucket:
    bucket = call.oss.bucket(call.bucket_name)
    check_endpoint(call, bucket)
    return bucket


@operation("PutBucket")
async def put_bucket(call: OssCall) -> web.StreamResponse:
    acl = call.headers.get("x-oss-acl", "private")
    if acl not in ACLS:
        raise E.INVALID_ARGUMENT(
            "no such bucket access control exists", ArgumentName="x-oss-acl", ArgumentValue=acl
        )
    storage_class = "Standard"
    config = await read_xml(call, "CreateBucketConfiguration", required=False)
    if config is not None:
        storage_class = text(config, "StorageClass", "Standard") or "Standard"
        if storage_class not in STORAGE_CLASSES:
            raise E.INVALID_ARGUMENT(
                "Invalid storage class.", ArgumentName="StorageClass", ArgumentValue=storage_class
            )
    region = call.region or call.signing_region or DEFAULT_REGION
    call.oss.create_bucket(call.bucket_name, region, storage_class, acl)
    return empty_reply(call, headers={"Location": f"/{call.bucket_name}"})


@operation("GetBucketInfo")
async def get_bucket_info(call: OssCall) -> web.StreamResponse:
    bucket = own_bucket(call)
    info = {
        "AccessMonitor": "Disabled",
        "CreationDate": iso_date(bucket.created),
        "CrossRegionReplication": "Disabled",
        "DataRedundancyType": "LRS",
        **endpoints(bucket.region),
        "Name": bucket.name,
        "StorageClass": bucket.storage_class,
        "TransferAcceleration": "Disabled",
        "Versioning": "",
        "Owner": owner(),
        "AccessControlList": {"Grant": bucket.acl},
        "ServerSideEncryptionRule": {"SSEAlgorithm": "None"},
        "BucketPolicy": {"LogBucket": "", "LogPrefix": ""},
    }
    return xml_reply(call, "BucketInfo", {"Bucket": info})


@operation("GetBucketLocation")
async def get_bucket_location(call: OssCall) -> web.StreamResponse:
    bucket = own_bucket(call)
    return web.Response(
        body=f'<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint>oss-{bucket.region}</LocationConstraint>'.encode(),
        headers={**call.reply, "Content-Type": "application/xml"},
    )


@operation("GetBucketAcl")
async def get_bucket_acl(call: OssCall) -> web.StreamResponse:
    bucket = own_bucket(call)
    return xml_reply(
        call, "AccessControlPolicy", {"Owner": owner(), "AccessControlList": {"Grant": bucket.acl}}
    )


@operation("ListBuckets")
async def list_buckets(call: OssCall) -> web.StreamResponse:
    prefix, marker = call.query.get("prefix", ""), call.query.get("marker", "")
    limit = call.integer("max-keys", 100, 1, 1000)
    found, truncated = call.oss.buckets(prefix, marker, limit)
    data: dict[str, object] = {"Owner": owner()}
    if any(name in call.query for name in ("prefix", "marker", "max-keys")):
        data.update({"Prefix": prefix, "Marker": marker, "MaxKeys": limit, "IsTruncated": truncated})
        if truncated:
            data["NextMarker"] = found[-1].name
    data["Buckets"] = {
        "Bucket": [
            {
                "CreationDate": iso_date(b.created),
                **endpoints(b.region),
                "Name": b.name,
                "Region": b.region,
                "StorageClass": b.storage_class,
            }
            for b in found
        ]
    }
    return xml_reply(call, "ListAllMyBucketsResult", data)


@operation("DeleteBucket")
async def delete_bucket(call: OssCall) -> web.StreamResponse:
    own_bucket(call)
    call.oss.delete_bucket(call.bucket_name)
    return empty_reply(call, 204)
