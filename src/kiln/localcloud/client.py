"""A minimal signed RPC client for localcloud's own tools (fault injection, request log, benchmarks).

Builders use the official SDK; this exists so that tests can send exactly the request they mean
(an old timestamp, a reused nonce, XML, GET with V1) and for the `Kiln*` actions no SDK knows.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from kiln.localcloud import signing

ECS_VERSION = "2014-05-26"
VPC_VERSION = "2016-04-28"
ADMIN_VERSION = "kiln-localcloud"


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


def v1_query(
    access_key_id: str,
    secret: str,
    method: str,
    params: dict[str, str],
    timestamp: str | None = None,
    nonce: str | None = None,
    security_token: str | None = None,
) -> dict[str, str]:
    """`params` plus the V1 common parameters and Signature."""
    signed = {
        "Format": "JSON",
        "AccessKeyId": access_key_id,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": nonce or str(uuid.uuid4()),
        "Timestamp": timestamp or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **params,
    }
    if security_token:
        signed["SecurityToken"] = security_token
    signed["Signature"] = signing.v1_signature(secret, signing.v1_string_to_sign(method, signed))
    return signed


def call(
    endpoint: str,
    access_key_id: str,
    secret: str,
    action: str,
    params: dict[str, str] | None = None,
    version: str = ECS_VERSION,
    signature: str = "v3",
    method: str = "POST",
    accept: str = "application/json",
    security_token: str | None = None,
    timeout: float = 30.0,
) -> Answer:
    """One signed call; errors come back as an Answer with their HTTP status, not as exceptions."""
    params = dict(params or {})
    base = endpoint if endpoint.startswith("http") else f"http://{endpoint}"
    host = urllib.parse.urlsplit(base).netloc
    headers: dict[str, str]
    if signature == "v1":
        query = v1_query(
            access_key_id,
            secret,
            method,
            {"Action": action, "Version": version, **params},
            security_token=security_token,
        )
        headers = {"accept": accept}
    else:
        query = params
        headers = {
            "host": host,
            "x-acs-action": action,
            "x-acs-version": version,
            "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "x-acs-signature-nonce": uuid.uuid4().hex,
            "accept": accept,
        }
        if security_token:
            headers["x-acs-security-token"] = security_token
        signing.sign_v3(access_key_id, secret, method, query, headers)
    url = f"{base}/?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}"
    request = urllib.request.Request(
        url, method=method, headers=headers, data=b"" if method == "POST" else None
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, response.read(), response.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as err:
        return Answer(err.code, err.read(), err.headers.get("Content-Type", ""))
