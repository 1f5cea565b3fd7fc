"""Multipart uploads: InitiateMultipartUpload, UploadPart, UploadPartCopy, ListParts,
CompleteMultipartUpload, AbortMultipartUpload, ListMultipartUploads."""

from __future__ import annotations

import base64

from aiohttp import web

from kiln.localcloud import oss_errors as E
from kiln.localcloud.api.oss.buckets import own_bucket
from kiln.localcloud.api.oss.objects import byte_range, content_type, copy_source, receive
from kiln.localcloud.api.oss.wire import (
    OssCall,
    children,
    empty_reply,
    iso_date,
    metadata,
    operation,
    quoted,
    read_xml,
    text,
    xml_reply,
)
from kiln.localcloud.model.oss import MAX_OBJECT, MAX_PARTS, Upload


def _upload(call: OssCall) -> Upload:
    own_bucket(call)
    return call.oss.upload(call.bucket_name, call.key_name, call.query["uploadId"])


def _part_number(call: OssCall) -> int:
    said = call.query.get("partNumber", "")
    if not said.isdigit() or not 1 <= int(said) <= MAX_PARTS:
        raise E.INVALID_ARGUMENT(
            f"Part number must be an integer between 1 and {MAX_PARTS}, inclusive.",
            ArgumentName="partNumber",
            ArgumentValue=said,
        )
    return int(said)


def _encoding(call: OssCall) -> dict[str, str]:
    return {"EncodingType": "url"} if call.url_encoded() else {}


@operation("InitiateMultipartUpload")
async def initiate(call: OssCall) -> web.StreamResponse:
    own_bucket(call)
    upload = call.oss.initiate(call.bucket_name, call.key_name, content_type(call), metadata(call))
    return xml_reply(
        call,
        "InitiateMultipartUploadResult",
        {
            **_encoding(call),
            "Bucket": upload.bucket,
            "Key": call.out(upload.key),
            "UploadId": upload.upload_id,
        },
    )


@operation("UploadPart")
async def upload_part(call: OssCall) -> web.StreamResponse:
    number = _part_number(call)
    upload = _upload(call)
    blob = await receive(call, MAX_OBJECT)
    part = call.oss.put_part(upload, number, blob)
    return empty_reply(
        call,
        headers={
            "ETag": quoted(part.etag),
            "x-oss-hash-crc64ecma": str(part.crc64),
            "Content-MD5": base64.b64encode(bytes.fromhex(part.etag)).decode(),
        },
    )


@operation("UploadPartCopy")
async def upload_part_copy(call: OssCall) -> web.StreamResponse:
    number = _part_number(call)
    upload = _upload(call)
    source = copy_source(call)
    said = call.headers.get("x-oss-copy-source-range")
    span = byte_range(said, source.size, standard=False) if said else None
    start, length = (span[0], span[1] - span[0] + 1) if span else (0, source.size)
    if length > MAX_OBJECT:
        raise E.ENTITY_TOO_LARGE(MaxSizeAllowed=MAX_OBJECT, ProposedSize=length)
    part = call.oss.put_part(upload, number, await call.oss.copy_range(source, start, length))
    return xml_reply(
        call,
        "CopyPartResult",
        {"LastModified": iso_date(part.modified), "ETag": quoted(part.etag)},
        headers={"x-oss-hash-crc64ecma": str(part.crc64), "ETag": quoted(part.etag)},
    )


@operation("ListParts")
async def list_parts(call: OssCall) -> web.StreamResponse:
    upload = _upload(call)
    marker = call.integer("part-number-marker", 0, 0, MAX_PARTS)
    limit = call.integer("max-parts", 1000, 1, 1000)
    parts = [p for p in call.oss.parts(upload) if p.number > marker]
    page, truncated = parts[:limit], len(parts) > limit
    data: dict[str, object] = {
        **_encoding(call),
        "Bucket": upload.bucket,
        "Key": call.out(upload.key),
        "UploadId": upload.upload_id,
        "PartNumberMarker": marker,
        "NextPartNumberMarker": page[-1].number if page else marker,
        "MaxParts": limit,
        "IsTruncated": truncated,
        "Part": [
            {
                "PartNumber": p.number,
                "LastModified": iso_date(p.modified),
                "ETag": quoted(p.etag),
                "HashCrc64ecma": p.crc64,
                "Size": p.size,
            }
            for p in page
        ],
    }
    return xml_reply(call, "ListPartsResult", data)


@operation("CompleteMultipartUpload")
async def complete(call: OssCall) -> web.StreamResponse:
    upload = _upload(call)
    if call.headers.get("x-oss-complete-all", "").lower() == "yes":
        chosen = [(p.number, p.etag) for p in call.oss.parts(upload)]
    else:
        request = await read_xml(call, "CompleteMultipartUpload")
        assert request is not None
        chosen = []
        for part in children(request, "Part"):
            said = text(part, "PartNumber")
            if not said.isdigit():
                raise E.MALFORMED_XML()
            chosen.append((int(said), text(part, "ETag")))
    info = await call.oss.complete(upload, chosen)
    location = f"http://{upload.bucket}.oss-{call.oss.bucket(upload.bucket).region}.aliyuncs.com/{upload.key}"
    return xml_reply(
        call,
        "CompleteMultipartUploadResult",
        {
            **_encoding(call),
            "Location": location,
            "Bucket": upload.bucket,
            "Key": call.out(upload.key),
            "ETag": quoted(info.etag),
        },
        headers={"x-oss-hash-crc64ecma": str(info.crc64), "ETag": quoted(info.etag)},
    )


@operation("AbortMultipartUpload")
async def abort(call: OssCall) -> web.StreamResponse:
    call.oss.abort(_upload(call))
    return empty_reply(call, 204)


@operation("ListMultipartUploads")
async def list_uploads(call: OssCall) -> web.StreamResponse:
    own_bucket(call)
    prefix = call.query.get("prefix", "")
    key_marker, id_marker = call.query.get("key-marker", ""), call.query.get("upload-id-marker", "")
    limit = call.integer("max-uploads", 1000, 1, 1000)
    found, truncated = call.oss.uploads(call.bucket_name, prefix, key_marker, id_marker, limit)
    data: dict[str, object] = {
        **_encoding(call),
        "Bucket": call.bucket_name,
        "KeyMarker": call.out(key_marker),
        "UploadIdMarker": id_marker,
        "NextKeyMarker": call.out(found[-1].key) if truncated else "",
        "NextUploadIdMarker": found[-1].upload_id if truncated else "",
        "Delimiter": "",
        "Prefix": call.out(prefix),
        "MaxUploads": limit,
        "IsTruncated": truncated,
        "Upload": [
            {"Key": call.out(u.key), "UploadId": u.upload_id, "Initiated": iso_date(u.initiated)}
            for u in found
        ],
    }
    return xml_reply(call, "ListMultipartUploadsResult", data)
