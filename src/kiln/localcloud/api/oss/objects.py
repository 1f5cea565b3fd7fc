"""Objects: PutObject, GetObject (Range), HeadObject, DeleteObject, DeleteMultipleObjects, CopyObject,
ListObjects and ListObjectsV2; and how a request's body is received (streamed to disk, checked)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from kiln.localcloud import incoming
from kiln.localcloud import oss_errors as E
from kiln.localcloud.api.oss.buckets import own_bucket
from kiln.localcloud.api.oss.wire import (
    OssCall,
    children,
    empty_reply,
    iso_date,
    metadata,
    object_headers,
    operation,
    owner,
    parse_xml,
    quoted,
    text,
    xml_reply,
)
from kiln.localcloud.model.oss import MAX_OBJECT, ObjectInfo
from kiln.localcloud.model.oss_files import Blob

_CHUNK = 256 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


def expected_md5(call: OssCall) -> bytes | None:
    said = call.headers.get("Content-MD5")
    if said is None:
        return None
    try:
        digest = base64.b64decode(said, validate=True)
    except (binascii.Error, ValueError):
        raise E.INVALID_DIGEST(**{"Content-MD5": said}) from None
    if len(digest) != 16:
        raise E.INVALID_DIGEST(**{"Content-MD5": said})
    return digest


async def receive(call: OssCall, limit: int = MAX_OBJECT) -> Blob:
    """The request's body streamed to a file: its size, Content-MD5 and x-oss-content-sha256 checked."""
    declared = call.request.content_length
    if declared is not None and declared > limit:
        raise E.ENTITY_TOO_LARGE(MaxSizeAllowed=limit, ProposedSize=declared)
    md5 = expected_md5(call)
    sha256 = call.headers.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD")
    blob = await call.oss.files.receive(
        call.request.content.iter_chunked(_CHUNK),
        limit,
        None if sha256 == "UNSIGNED-PAYLOAD" else sha256.lower(),
    )
    if declared is not None and blob.size != declared:
        call.oss.files.discard(blob)
        raise E.INCOMPLETE_BODY()
    if md5 is not None and blob.md5 != md5:
        call.oss.files.discard(blob)
        raise E.BAD_DIGEST(
            ExpectedMD5=base64.b64encode(md5).decode(), CalculatedMD5=base64.b64encode(blob.md5).decode()
        )
    return blob


def content_type(call: OssCall) -> str:
    return call.headers.get("Content-Type") or "application/octet-stream"


@operation("PutObject")
async def put_object(call: OssCall) -> web.StreamResponse:
    own_bucket(call)
    if call.headers.get("x-oss-forbid-overwrite", "").lower() == "true":
        exists = call.oss.list_objects(call.bucket_name, prefix=call.key_name, limit=1)[0]
        if exists and exists[0].key == call.key_name:
            raise E.FILE_EXISTS(Key=call.key_name)
    blob = await receive(call)
    info = call.oss.put_object(call.bucket_name, call.key_name, blob, content_type(call), metadata(call))
    return empty_reply(call, headers=_write_headers(info))


def _write_headers(info: ObjectInfo) -> dict[str, str]:
    headers = {"ETag": quoted(info.etag), "x-oss-hash-crc64ecma": str(info.crc64)}
    if "-" not in info.etag:
        headers["Content-MD5"] = base64.b64encode(bytes.fromhex(info.etag)).decode()
    return headers


def byte_range(said: str | None, size: int, standard: bool) -> tuple[int, int] | None:
    """(first, last) byte asked for; None for the whole object (OSS ignores a range it cannot serve,
    unless `x-oss-range-behavior: standard` asks for InvalidRange when it starts past the end)."""
    found = _RANGE.fullmatch((said or "").strip())
    if found is None or found.group(1) == found.group(2) == "":
        return None
    first, last = found.group(1), found.group(2)
    if first == "":
        wanted = int(last)
        return (max(0, size - wanted), size - 1) if wanted and size else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size:
        if standard:
            raise E.INVALID_RANGE(RangeRequested=said or "", ActualObjectSize=size)
        return None
    if last and int(last) < start:
        return None
    return start, end


def _preconditions(call: OssCall, info: ObjectInfo) -> int | None:
    """304 or 412 when a conditional header says so."""
    match, none_match = call.headers.get("If-Match"), call.headers.get("If-None-Match")
    if match is not None and match.strip('"').upper() != info.etag:
        raise E.PRECONDITION_FAILED(Condition="If-Match")
    if none_match is not None and none_match.strip('"').upper() == info.etag:
        return 304
    return None


async def _send(call: OssCall, head: bool) -> web.StreamResponse:
    info = call.oss.object(call.bucket_name, call.key_name)
    headers = object_headers(info)
    if _preconditions(call, info) == 304:
        return empty_reply(call, 304, {"ETag": headers["ETag"], "Last-Modified": headers["Last-Modified"]})
    standard = call.headers.get("x-oss-range-behavior", "").lower() == "standard"
    span = byte_range(call.headers.get("Range"), info.size, standard)
    for name, header in _OVERRIDES.items():
        if name in call.query and not head:
            headers[header] = call.query[name]
    status, start, length = 200, 0, info.size
    if span is not None:
        status, start, length = 206, span[0], span[1] - span[0] + 1
        headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{info.size}"
    source = info.file.open("rb")  # opened first: a concurrent replace or delete cannot pull it away
    try:
        response = web.StreamResponse(status=status, headers={**call.reply, **headers})
        response.content_length = length
        await response.prepare(call.request)
        if not head:
            source.seek(start)
            left = length
            while left > 0:
                chunk = await asyncio.to_thread(source.read, min(_CHUNK, left))
                if not chunk:
                    break
                await response.write(chunk)
                left -= len(chunk)
        await response.write_eof()
    finally:
        source.close()
    return response


@operation("GetObject")
async def get_object(call: OssCall) -> web.StreamResponse:
    own_bucket(call)
    return await _send(call, head=False)


@operation("HeadObject")
async def head_object(call: OssCall) -> web.StreamResponse:
    own_bucket(call)
    return await _send(call, head=True)


@operation("DeleteObject")
async def delete_object(call: OssCall) -> web.StreamResponse:
    own_bucket(call)
    call.oss.delete_object(call.bucket_name, call.key_name)
    return empty_reply(call, 204)


@operation("DeleteMultipleObjects")
async def delete_multiple_objects(call: OssCall) -> web.StreamResponse:
    own_bucket(call)
    body = await incoming.read_body(call.request)
    md5 = expected_md5(call)
    if md5 is not None and hashlib.md5(body).digest() != md5:
        raise E.BAD_DIGEST()
    request = parse_xml(body, "Delete")
    assert request is not None
    keys = [text(o, "Key") for o in children(request, "Object")]
    if not keys or len(keys) > 1000:
        raise E.MALFORMED_XML()
    if call.url_encoded():
        keys = [unquote(k) for k in keys]
    for key in keys:
        call.oss.delete_object(call.bucket_name, key)
    deleted = [] if text(request, "Quiet").lower() == "true" else [{"Key": call.out(k)} for k in keys]
    data: dict[str, object] = {"Deleted": deleted}
    if call.url_encoded():
        data["EncodingType"] = "url"
    return xml_reply(call, "DeleteResult", data)


def copy_source(call: OssCall) -> ObjectInfo:
    """The object `x-oss-copy-source` names (`/bucket/key`, the key percent-encoded)."""
    said = unquote(call.headers.get("x-oss-copy-source", "").partition("?")[0])
    bucket, _, key = said.removeprefix("/").partition("/")
    if not bucket or not key:
        raise E.INVALID_COPY_SOURCE()
    return call.oss.object(bucket, key)


@operation("CopyObject")
async def copy_object(call: OssCall) -> web.StreamResponse:
    own_bucket(call)
    source = copy_source(call)
    directive = call.headers.get("x-oss-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise E.INVALID_ARGUMENT(ArgumentName="x-oss-metadata-directive", ArgumentValue=directive)
    blob = await call.oss.copy_range(source, 0, source.size)
    if directive == "COPY":
        kind, meta = source.content_type, source.meta
    else:
        kind, meta = content_type(call), metadata(call)
    info = call.oss.put_object(call.bucket_name, call.key_name, blob, kind, meta)
    return xml_reply(
        call,
        "CopyObjectResult",
        {"ETag": quoted(info.etag), "LastModified": iso_date(info.modified)},
        headers={"x-oss-hash-crc64ecma": str(info.crc64), "ETag": quoted(info.etag)},
    )


def _content(call: OssCall, info: ObjectInfo, with_owner: bool) -> dict[str, object]:
    entry: dict[str, object] = {
        "Key": call.out(info.key),
        "LastModified": iso_date(info.modified),
        "ETag": quoted(info.etag),
        "Type": info.type,
        "Size": info.size,
        "StorageClass": "Standard",
    }
    if with_owner:
        entry["Owner"] = owner()
    return entry


@dataclass
class _Page:
    """One page of a bucket's keys as both listings write it."""

    contents: list[dict[str, object]]
    prefixes: list[dict[str, str]]
    following: str | None  # the last key or prefix of a truncated page

    def head(self, call: OssCall) -> dict[str, object]:
        return {"Name": call.bucket_name, "Prefix": call.out(call.query.get("prefix", ""))}

    def tail(self, call: OssCall, limit: int) -> dict[str, object]:
        data: dict[str, object] = {"MaxKeys": limit, "Delimiter": call.out(call.query.get("delimiter", ""))}
        if call.url_encoded():
            data["EncodingType"] = "url"
        data["IsTruncated"] = self.following is not None
        return data


def _page(call: OssCall, after: str, limit: int, with_owner: bool) -> _Page:
    prefix, delimiter = call.query.get("prefix", ""), call.query.get("delimiter", "")
    objects, prefixes, following = call.oss.list_objects(call.bucket_name, prefix, after, delimiter, limit)
    return _Page(
        [_content(call, o, with_owner) for o in objects],
        [{"Prefix": call.out(p)} for p in prefixes],
        following,
    )


@operation("ListObjects")
async def list_objects(call: OssCall) -> web.StreamResponse:
    own_bucket(call)
    marker, limit = call.query.get("marker", ""), call.integer("max-keys", 100, 0, 1000)
    page = _page(call, marker, limit, with_owner=True)
    data = {**page.head(call), "Marker": call.out(marker), **page.tail(call, limit)}
    if page.following is not None:
        data["NextMarker"] = call.out(page.following)
    data.update({"Contents": page.contents, "CommonPrefixes": page.prefixes})
    return xml_reply(call, "ListBucketResult", data)


def _token(marker: str) -> str:
    return base64.urlsafe_b64encode(marker.encode()).decode()


@operation("ListObjectsV2")
async def list_objects_v2(call: OssCall) -> web.StreamResponse:
    own_bucket(call)
    limit = call.integer("max-keys", 100, 0, 1000)
    token, start_after = call.query.get("continuation-token") or None, call.query.get("start-after", "")
    after = start_after  # (an empty token, which oss2 sends on the first page, is no token)
    if token is not None:
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise E.INVALID_ARGUMENT(
                "The continuation token provided is incorrect",
                ArgumentName="continuation-token",
                ArgumentValue=token,
            ) from None
    page = _page(call, after, limit, with_owner=call.query.get("fetch-owner", "false") == "true")
    data = page.head(call)
    if start_after:
        data["StartAfter"] = call.out(start_after)
    if token is not None:
        data["ContinuationToken"] = token
    data.update(page.tail(call, limit))
    if page.following is not None:
        data["NextContinuationToken"] = _token(page.following)
    data.update(
        {
            "KeyCount": len(page.contents) + len(page.prefixes),
            "Contents": page.contents,
            "CommonPrefixes": page.prefixes,
        }
    )
    return xml_reply(call, "ListBucketResult", data)
