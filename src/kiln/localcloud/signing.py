"""The two request signatures of Alibaba Cloud's RPC APIs, computed the way the real gateway does.

V1 (HMAC-SHA1 over the sorted parameters, `Signature` in the query) is what aliyun-python-sdk-core
and Packer's Go SDK send; V3 (ACS3-HMAC-SHA256 in the Authorization header over a canonical request)
is the Tea SDKs' default. The same functions sign (localcloud's own tools) and verify (the server).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote

V3_ALGORITHM = "ACS3-HMAC-SHA256"


def percent_encode(value: str) -> str:
    """RFC 3986: unreserved characters kept (`~` too), everything else %XX in UTF-8; space is %20."""
    return quote(value, safe="~", encoding="utf-8")


def v1_canonical_query(params: Mapping[str, str]) -> str:
    keys = sorted(k for k in params if k != "Signature")
    return "&".join(f"{percent_encode(k)}={percent_encode(params[k])}" for k in keys)


def v1_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(v1_canonical_query(params))}"


def v1_signature(secret: str, string_to_sign: str) -> str:
    digest = hmac.new((secret + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def v3_canonical_query(query: Mapping[str, str]) -> str:
    return "&".join(f"{percent_encode(k)}={percent_encode(query[k])}" for k in sorted(query))


def v3_canonical_request(
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    signed_headers: list[str],
    hashed_payload: str,
) -> str:
    """`headers` maps lower-case names to values; only the signed ones are used, in sorted order."""
    names = sorted(h.lower() for h in signed_headers)
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in names)
    return "\n".join(
        [
            method.upper(),
            path or "/",
            v3_canonical_query(query),
            canonical_headers,
            ";".join(names),
            hashed_payload,
        ]
    )


def v3_string_to_sign(canonical_request: str) -> str:
    return f"{V3_ALGORITHM}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"


def v3_signature(secret: str, string_to_sign: str) -> str:
    return hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def parse_v3_authorization(value: str) -> tuple[str, list[str], str] | None:
    """`ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=a;b,Signature=hex` -> (AK, headers, signature)."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != V3_ALGORITHM:
        return None
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, val = part.strip().partition("=")
        if sep:
            fields[name] = val
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        return None
    return fields["Credential"], [h for h in fields["SignedHeaders"].split(";") if h], fields["Signature"]


def sign_v3(
    access_key_id: str,
    secret: str,
    method: str,
    query: Mapping[str, str],
    headers: dict[str, str],
    body: bytes = b"",
) -> None:
    """Add x-acs-content-sha256 and Authorization to `headers` (lower-case names, all of them signed)."""
    headers["x-acs-content-sha256"] = hashlib.sha256(body).hexdigest()
    names = sorted(headers)
    canonical = v3_canonical_request(method, "/", query, headers, names, headers["x-acs-content-sha256"])
    signature = v3_signature(secret, v3_string_to_sign(canonical))
    headers["authorization"] = (
        f"{V3_ALGORITHM} Credential={access_key_id},SignedHeaders={';'.join(names)},Signature={signature}"
    )


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
