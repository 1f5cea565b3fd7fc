"""Who is calling: V1 and V3 signatures checked against the stored access keys, with the gateway's errors.

Nothing past this point runs for a caller whose signature does not verify, and what runs is what was
signed: the action and version come from the V1 parameters (all signed) or from V3 headers that the
signature covers (the V3 rule: every common request header sent, Authorization aside, is signed).
"""

from __future__ import annotations

import calendar
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

from kiln.localcloud import errors, signing
from kiln.localcloud.store import AccessKey, Store

MAX_SKEW = 15 * 60
# A nonce is kept (in the state's SQLite file, so a restart does not forget it) while a request
# bearing it could still pass the timestamp check: until its timestamp + MAX_SKEW, plus a margin.
NONCE_MARGIN = 60
# The V3 common request headers that must be signed, and those that must be when they are sent.
V3_SIGNED = (
    "host",
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
)
V3_SIGNED_IF_SENT = ("x-acs-security-token",)


@dataclass(frozen=True)
class Caller:
    key: AccessKey
    signature: str  # "v1" or "v3"
    action: str  # as signed
    version: str  # as signed


def _parse_time(value: str) -> float:
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return float(calendar.timegm(time.strptime(value, fmt)))
        except ValueError:
            continue
    raise errors.TIMESTAMP_MALFORMED(value)


class Authenticator:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._pruned = 0.0

    def _check_time_and_nonce(self, key: AccessKey, stamp: str | None, nonce: str | None, name: str) -> None:
        if not stamp:
            raise errors.missing(name)
        stamped = _parse_time(stamp)
        if abs(time.time() - stamped) > MAX_SKEW:
            raise errors.TIMESTAMP_EXPIRED(stamp)
        if not nonce:
            raise errors.missing("SignatureNonce")
        now = time.time()
        if now - self._pruned > 60:
            self.store.forget_nonces(before=now)
            self._pruned = now
        if not self.store.use_nonce(key.access_key_id, nonce, stamped + MAX_SKEW + NONCE_MARGIN):
            raise errors.NONCE_USED()

    def _key(self, access_key_id: str | None) -> AccessKey:
        if not access_key_id:
            raise errors.missing("AccessKeyId")
        key = self.store.key(access_key_id)
        if key is None:
            raise errors.ACCESS_KEY_NOT_FOUND()
        return key

    @staticmethod
    def _check_token(key: AccessKey, token: str | None) -> None:
        if key.security_token is None:
            return
        if not token:
            raise errors.SECURITY_TOKEN_MISSING()
        if not signing.constant_time_equal(token, key.security_token):
            raise errors.SECURITY_TOKEN_MISMATCH()

    def verify(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        params: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Caller:
        """`headers` has lower-case names; `params` = query plus form body."""
        authorization = headers.get("authorization", "")
        if authorization.startswith("ACS3-"):
            return self._verify_v3(method, path, query, headers, body, authorization)
        if "Signature" in params:
            return self._verify_v1(method, params)
        raise errors.missing("Signature")

    def _verify_v1(self, method: str, params: Mapping[str, str]) -> Caller:
        key = self._key(params.get("AccessKeyId"))
        if params.get("SignatureMethod", "HMAC-SHA1") != "HMAC-SHA1":
            raise errors.invalid("SignatureMethod", "is not valid (HMAC-SHA1 only)")
        string_to_sign = signing.v1_string_to_sign(method, params)
        expected = signing.v1_signature(key.secret, string_to_sign)
        if not signing.constant_time_equal(expected, params["Signature"]):
            raise errors.SIGNATURE_MISMATCH_V1(string_to_sign=string_to_sign)
        self._check_time_and_nonce(key, params.get("Timestamp"), params.get("SignatureNonce"), "Timestamp")
        self._check_token(key, params.get("SecurityToken"))
        return Caller(key, "v1", params.get("Action", ""), params.get("Version", ""))

    def _verify_v3(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        authorization: str,
    ) -> Caller:
        parsed = signing.parse_v3_authorization(authorization)
        if parsed is None:
            raise errors.SIGNATURE_INCOMPLETE()
        access_key_id, signed_headers, signature = parsed
        key = self._key(access_key_id)
        lowered = [h.lower() for h in signed_headers]
        sent = [h for h in V3_SIGNED_IF_SENT if h in headers]
        for required in (*V3_SIGNED, *sent):
            if required not in lowered:
                raise errors.SIGNATURE_INCOMPLETE(f"{required} is not signed")
        payload = headers.get("x-acs-content-sha256", "")
        if payload != hashlib.sha256(body).hexdigest():
            raise errors.CONTENT_HASH_MISMATCH()
        canonical = signing.v3_canonical_request(method, path, query, headers, lowered, payload)
        string_to_sign = signing.v3_string_to_sign(canonical)
        if not signing.constant_time_equal(signing.v3_signature(key.secret, string_to_sign), signature):
            raise errors.SIGNATURE_MISMATCH_V3(string_to_sign=string_to_sign)
        self._check_time_and_nonce(
            key, headers.get("x-acs-date"), headers.get("x-acs-signature-nonce"), "x-acs-date"
        )
        self._check_token(key, headers.get("x-acs-security-token") or query.get("SecurityToken"))
        return Caller(key, "v3", headers.get("x-acs-action", ""), headers.get("x-acs-version", ""))
