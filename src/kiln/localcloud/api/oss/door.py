"""The OSS front door: OSS's REST API on localcloud's port, beside the RPC one.

A request is OSS's when its Host is an OSS name (`oss-REGION[-internal].aliyuncs.com`, or
`BUCKET.oss-REGION[-internal].aliyuncs.com` for virtual-hosted style), when it carries an OSS
signature (`Authorization: OSS ...` / `OSS4-HMAC-SHA256 ...`, or a presigned URL's query), or when
its path is not `/` (path style: `/BUCKET/KEY`; RPC calls are all on `/`). The door finds the bucket,
the key and the operation, checks the signature, applies the latency profile and the injected
faults (TargetAction is the operation's name, e.g. `UploadPart`), runs the handler and logs the call
in the request log like an RPC call; every failure is OSS's XML error with its RequestId.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
import uuid
from urllib.parse import unquote

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from kiln.localcloud import oss_errors as E
from kiln.localcloud.api import requestlog
from kiln.localcloud.api.oss import buckets, multipart, objects  # noqa: F401 - they register the operations
from kiln.localcloud.api.oss.auth import V4, OssAuthenticator
from kiln.localcloud.api.oss.wire import OPERATIONS, OssCall
from kiln.localcloud.auth import Caller
from kiln.localcloud.errors import ApiError
from kiln.localcloud.model.cloud import Cloud
from kiln.localcloud.wire import render_xml

log = logging.getLogger("kiln.localcloud")

#: OSS's public host names; `bucket` is set for virtual-hosted style.
OSS_HOST = re.compile(
    r"^(?:(?P<bucket>[a-z0-9][a-z0-9-]{1,61}[a-z0-9])\.)?oss-(?P<region>[a-z0-9]+(?:-[a-z0-9]+)*?)"
    r"(?:-internal)?\.aliyuncs\.com$"
)


def host_name(request: web.Request) -> str:
    host = request.headers.get("Host", "").lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if ":" in host else host


def is_oss(request: web.Request) -> bool:
    """Whether this request is for OSS (the rule the server routes by)."""
    if OSS_HOST.match(host_name(request)):
        return True
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith(("OSS ", V4 + " ")):
        return True
    query = request.rel_url.query
    if "OSSAccessKeyId" in query or "x-oss-signature-version" in query:
        return True
    return request.path != "/"


def parse_query(raw: str) -> dict[str, str]:
    """Decoded parameters; `+` stays `+` (OSS's clients write a space as %20)."""
    query: dict[str, str] = {}
    for pair in raw.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            query[unquote(name)] = unquote(value)
    return query


#: a presigned URL's own parameters, which name no operation
SIGNING_PARAMETERS = frozenset(
    [
        "OSSAccessKeyId",
        "Expires",
        "Signature",
        "security-token",
        "x-oss-signature-version",
        "x-oss-credential",
        "x-oss-date",
        "x-oss-expires",
        "x-oss-signature",
        "x-oss-additional-headers",
        "x-oss-security-token",
    ]
)


def operation_of(method: str, bucket: str | None, key: str | None, query: dict[str, str], copy: bool) -> str:
    """The operation a request asks for, "" for one this door does not have."""
    query = {k: v for k, v in query.items() if k not in SIGNING_PARAMETERS}
    if bucket is None:
        return {"GET": "ListBuckets"}.get(method, "")
    if key is None:
        if method == "PUT":
            return "PutBucket" if not set(query) - {"encoding-type"} else ""
        if method == "DELETE":
            return "DeleteBucket" if not query else ""
        if method == "POST":
            return "DeleteMultipleObjects" if "delete" in query else ""
        if method in ("GET", "HEAD"):
            for name, op in (
                ("bucketInfo", "GetBucketInfo"),
                ("location", "GetBucketLocation"),
                ("uploads", "ListMultipartUploads"),
                ("acl", "GetBucketAcl"),
            ):
                if name in query:
                    return op
            return "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
        return ""
    if method == "PUT":
        if "partNumber" in query and "uploadId" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        return "CopyObject" if copy else "PutObject"
    if method == "GET":
        return "ListParts" if "uploadId" in query else "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "POST":
        if "uploads" in query:
            return "InitiateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        return ""
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    return ""


class OssFrontDoor:
    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.auth = OssAuthenticator(cloud.store)

    def _address(self, request: web.Request) -> tuple[str | None, str | None, str | None]:
        """(bucket, key, the region the Host names)."""
        path = unquote(request.rel_url.raw_path)
        found = OSS_HOST.match(host_name(request))
        if found and found.group("bucket"):
            return found.group("bucket"), path[1:] or None, found.group("region")
        region = found.group("region") if found else None
        bucket, _, key = path[1:].partition("/")
        return bucket or None, key or None, region

    async def handle(self, request: web.Request) -> web.StreamResponse:
        began = time.monotonic()
        request_id = uuid.uuid4().hex[:24].upper()
        caller: Caller | None = None
        host = request.headers.get("Host", "localcloud")
        call: OssCall | None = None
        operation = "-"
        status, code = 200, ""
        reply = {"x-oss-request-id": request_id, "Server": "AliyunOSS"}
        try:
            bucket, key, region = self._address(request)
            query = parse_query(request.rel_url.raw_query_string)
            copy = "x-oss-copy-source" in request.headers
            operation = operation_of(request.method, bucket, key, query, copy) or "-"
            call = OssCall(
                request, self.cloud, operation, bucket, key, query, host, region, request_id, reply=reply
            )
            headers = {k.lower(): v for k, v in request.headers.items()}
            caller, call.signing_region = self.auth.verify(
                request.method, bucket, key, query, headers, operation
            )
            if operation == "-" or operation not in OPERATIONS:
                if request.method not in ("GET", "HEAD", "PUT", "POST", "DELETE"):
                    raise E.METHOD_NOT_ALLOWED(
                        Method=request.method, ResourceType="Object" if key else "Bucket"
                    )
                raise E.NOT_IMPLEMENTED(
                    "This operation is not implemented by localcloud.", Method=request.method
                )
            delay, fault = self.cloud.faults.match(operation)
            delay += self.cloud.profile.call
            if delay:
                await asyncio.sleep(delay)
            if fault is not None:
                raise fault
            response = await OPERATIONS[operation](call)
            status = response.status
        except ApiError as err:
            status, code = err.status, err.code
            response = self._error(err, request_id, host, reply, request.method == "HEAD")
        except (ConnectionError, HttpProcessingError):  # the client went away, or its body stopped short
            status, code = 400, "IncompleteBody"
            log.info("OSS %s %s: the request's body was cut off", operation, request_id)
            response = self._error(E.INCOMPLETE_BODY(), request_id, host, reply, request.method == "HEAD")
        except OSError as err:  # the state's disk (a full one): no byte of the write is kept
            log.warning(
                "OSS %s %s failed on the state's disk: %s", operation, request_id, err.strerror or err
            )
            status, code = 500, "InternalError"
            response = self._error(E.INTERNAL_ERROR(), request_id, host, reply, request.method == "HEAD")
        except Exception as err:  # a bug must still answer as OSS does, with a RequestId
            log.exception("OSS %s failed", operation)
            status, code = 500, "InternalError"
            response = self._error(E.INTERNAL_ERROR(), request_id, host, reply, request.method == "HEAD")
            del err
        requestlog.record(self.cloud, request_id, operation, caller, status, code, began)
        return response

    @staticmethod
    def _error(err: ApiError, request_id: str, host: str, reply: dict[str, str], head: bool) -> web.Response:
        data: dict[str, str] = {
            "Code": err.code,
            "Message": err.message,
            "RequestId": request_id,
            "HostId": host,
        }
        data.update(getattr(err, "fields", {}))
        headers = {**reply, "Content-Type": "application/xml"}
        ec = getattr(err, "ec", "")
        if ec:
            data.update({"EC": ec, "RecommendDoc": f"https://api.aliyun.com/troubleshoot?q={ec}"})
            headers["x-oss-ec"] = ec
        if head:  # a HEAD answer has no body: the code travels in a header
            # (base64 of the error body, which the SDKs decode)
            encoded = base64.b64encode(render_xml("Error", data)).decode()
            return web.Response(status=err.status, headers={**headers, "x-oss-err": encoded})
        return web.Response(status=err.status, body=render_xml("Error", data), headers=headers)
