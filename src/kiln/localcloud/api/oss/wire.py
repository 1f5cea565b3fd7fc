"""What the OSS handlers share: the call they get, the table of operations, and OSS's wire formats
(XML bodies, the object headers, the two date formats, `encoding-type=url`)."""

from __future__ import annotations

import base64
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

from aiohttp import web
from multidict import CIMultiDictProxy

from kiln.localcloud import incoming
from kiln.localcloud import oss_errors as E
from kiln.localcloud.model.cloud import Cloud
from kiln.localcloud.model.oss import ACCOUNT_ID, ObjectInfo, OssStore
from kiln.localcloud.wire import render_xml


@dataclass
class OssCall:
    """One OSS request, addressed and authenticated."""

    request: web.Request
    cloud: Cloud
    operation: str
    bucket: str | None
    key: str | None
    query: dict[str, str]  # decoded; a name without `=` maps to ""
    host: str
    region: str | None  # the region the Host names (oss-REGION...), None for an address
    request_id: str
    signing_region: str | None = None  # a V4 signature's region
    reply: dict[str, str] = field(default_factory=dict)  # headers every answer carries

    @property
    def oss(self) -> OssStore:
        return self.cloud.oss

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self.request.headers

    @property
    def bucket_name(self) -> str:
        assert self.bucket is not None
        return self.bucket

    @property
    def key_name(self) -> str:
        assert self.key is not None
        return self.key

    def url_encoded(self) -> bool:
        return self.query.get("encoding-type", "").lower() == "url"

    def out(self, value: str) -> str:
        """A key or prefix as the answer writes it (`encoding-type=url` percent-encodes them)."""
        return quote(value, safe="") if self.url_encoded() else value

    def integer(self, name: str, default: int, low: int = 0, high: int = 1000) -> int:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise E.INVALID_ARGUMENT(
                f"Argument {name} must be an integer between {low} and {high}.",
                ArgumentName=name,
                ArgumentValue=raw,
            )
        return int(raw)


Handler = Callable[[OssCall], Awaitable[web.StreamResponse]]
OPERATIONS: dict[str, Handler] = {}


def operation(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        OPERATIONS[name] = handler
        return handler

    return register


# -- formats -------------------------------------------------------------------------------------------
def http_date(stamp: float) -> str:
    """`Wed, 02 Dec 2026 05:14:19 GMT` (Date, Last-Modified)."""
    return formatdate(stamp, usegmt=True)


def iso_date(stamp: float) -> str:
    """`2026-12-02T05:14:19.000Z` (dates inside XML bodies; OSS writes whole seconds, and oss2 reads no other)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(stamp))


def quoted(etag: str) -> str:
    return f'"{etag}"'


def owner() -> dict[str, str]:
    return {"ID": ACCOUNT_ID, "DisplayName": ACCOUNT_ID}


def endpoints(region: str) -> dict[str, str]:
    return {
        "ExtranetEndpoint": f"oss-{region}.aliyuncs.com",
        "IntranetEndpoint": f"oss-{region}-internal.aliyuncs.com",
        "Location": f"oss-{region}",
    }


def xml_reply(
    call: OssCall,
    root: str,
    data: Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        body=render_xml(root, dict(data)),
        headers={**call.reply, **(headers or {}), "Content-Type": "application/xml"},
    )


def empty_reply(call: OssCall, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, headers={**call.reply, **(headers or {})})


def object_headers(info: ObjectInfo) -> dict[str, str]:
    headers = {
        "ETag": quoted(info.etag),
        "Last-Modified": http_date(info.modified),
        "Content-Type": info.content_type,
        "x-oss-object-type": info.type,
        "x-oss-storage-class": "Standard",
        "x-oss-hash-crc64ecma": str(info.crc64),
        "Accept-Ranges": "bytes",
    }
    if info.type == "Normal" and "-" not in info.etag:
        headers["Content-MD5"] = base64.b64encode(bytes.fromhex(info.etag)).decode()
    headers.update({f"x-oss-meta-{k}": v for k, v in info.meta.items()})
    return headers


def metadata(call: OssCall) -> dict[str, str]:
    """The x-oss-meta-* headers of a write, names in lower case without the prefix."""
    return {
        name.lower().removeprefix("x-oss-meta-"): value
        for name, value in call.headers.items()
        if name.lower().startswith("x-oss-meta-")
    }


async def read_xml(call: OssCall, root: str, required: bool = True) -> ET.Element | None:
    """The request's XML body (bounded like every small body), its root checked; MalformedXML else."""
    return parse_xml(await incoming.read_body(call.request), root, required)


def parse_xml(body: bytes, root: str, required: bool = True) -> ET.Element | None:
    if not body.strip():
        if required:
            raise E.MALFORMED_XML()
        return None
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise E.MALFORMED_XML()
    try:
        element = ET.fromstring(body)
    except ET.ParseError:
        raise E.MALFORMED_XML() from None
    if element.tag.rpartition("}")[2] != root:
        raise E.MALFORMED_XML()
    return element


def children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if child.tag.rpartition("}")[2] == name]


def text(element: ET.Element, name: str, default: str = "") -> str:
    found = children(element, name)
    return (found[0].text or "") if found else default
