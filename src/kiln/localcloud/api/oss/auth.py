"""Who is calling OSS: the V1 (`OSS ak:signature`) and V4 (`OSS4-HMAC-SHA256`) signatures, in the
Authorization header or in a presigned URL's query, checked against localcloud's access keys.

V1 signs METHOD, Content-MD5, Content-Type, Date (Expires in a URL), the x-oss-* headers and the
resource `/bucket/key?sub-resources`. V4 signs a canonical request (the percent-encoded resource,
every query parameter, the x-oss-* headers, Content-Type, Content-MD5 and the AdditionalHeaders)
with a key derived from the secret, the date, the region and `oss`. A temporary (STS) key also needs
its security token, in `x-oss-security-token` or the URL's `security-token` / `x-oss-security-token`.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from urllib.parse import quote

from kiln.localcloud import oss_errors as E
from kiln.localcloud.auth import Caller
from kiln.localcloud.signing import constant_time_equal
from kiln.localcloud.store import AccessKey, Store

MAX_SKEW = 15 * 60
V4 = "OSS4-HMAC-SHA256"
# The query parameters V1 signs (the sub-resources), as OSS and both official Python SDKs list them.
SUBRESOURCES = frozenset(
    [
        "acl",
        "uploads",
        "location",
        "cors",
        "logging",
        "website",
        "referer",
        "lifecycle",
        "delete",
        "append",
        "tagging",
        "objectMeta",
        "uploadId",
        "partNumber",
        "security-token",
        "position",
        "img",
        "style",
        "styleName",
        "replication",
        "replicationProgress",
        "replicationLocation",
        "cname",
        "bucketInfo",
        "comp",
        "qos",
        "live",
        "status",
        "vod",
        "startTime",
        "endTime",
        "symlink",
        "x-oss-process",
        "response-content-type",
        "x-oss-traffic-limit",
        "response-content-language",
        "response-expires",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "udf",
        "udfName",
        "udfImage",
        "udfId",
        "udfImageDesc",
        "udfApplication",
        "udfApplicationLog",
        "restore",
        "callback",
        "callback-var",
        "qosInfo",
        "policy",
        "stat",
        "encryption",
        "versions",
        "versioning",
        "versionId",
        "requestPayment",
        "x-oss-request-payer",
        "sequential",
        "inventory",
        "inventoryId",
        "continuation-token",
        "asyncFetch",
        "worm",
        "wormId",
        "wormExtend",
        "withHashContext",
        "x-oss-enable-md5",
        "x-oss-enable-sha1",
        "x-oss-enable-sha256",
        "x-oss-hash-ctx",
        "x-oss-md5-ctx",
        "transferAcceleration",
        "regionList",
        "cloudboxes",
        "x-oss-ac-source-ip",
        "x-oss-ac-subnet-mask",
        "x-oss-ac-vpc-id",
        "x-oss-ac-forward-allow",
        "metaQuery",
        "resourceGroup",
        "rtc",
        "accessPoint",
        "accessPointPolicy",
        "httpsConfig",
        "publicAccessBlock",
        "policyStatus",
        "redundancyTransition",
        "dataRedundancyType",
        "targetRedundancyType",
        "redundancyTransitionTaskid",
        "objectWorm",
    ]
)


def _canonical_oss_headers(headers: Mapping[str, str]) -> str:
    names = sorted(name for name in headers if name.startswith("x-oss-"))
    return "".join(f"{name}:{headers[name].strip()}\n" for name in names)


def v1_resource(bucket: str | None, key: str | None, query: Mapping[str, str]) -> str:
    path = "/" if bucket is None else f"/{bucket}/{key or ''}"
    signed = sorted((k, v) for k, v in query.items() if k in SUBRESOURCES)
    if not signed:
        return path
    return path + "?" + "&".join(f"{k}={v}" if v else k for k, v in signed)


def v1_string_to_sign(method: str, headers: Mapping[str, str], date: str, resource: str) -> str:
    return "\n".join(
        [
            method,
            headers.get("content-md5", ""),
            headers.get("content-type", ""),
            date,
            _canonical_oss_headers(headers) + resource,
        ]
    )


def v1_signature(secret: str, string_to_sign: str) -> str:
    return base64.b64encode(
        hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    ).decode()


def _encode(value: str) -> str:
    return quote(value, safe="")


def v4_canonical_request(
    method: str,
    bucket: str | None,
    key: str | None,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    additional: list[str],
    payload: str,
) -> str:
    uri = "/" if bucket is None else f"/{bucket}/{key or ''}"
    pairs = sorted((_encode(k), _encode(v)) for k, v in query.items() if k != "x-oss-signature")
    canonical_query = "&".join(f"{k}={v}" if v else k for k, v in pairs)
    names = sorted(
        n
        for n in headers
        if n.startswith("x-oss-") or n in ("content-type", "content-md5") or n in additional
    )
    canonical_headers = "".join(f"{n}:{headers[n].strip()}\n" for n in names)
    return "\n".join(
        [method, quote(uri, safe="/"), canonical_query, canonical_headers, ";".join(additional), payload]
    )


def v4_string_to_sign(stamp: str, scope: str, canonical: str) -> str:
    return f"{V4}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"


def v4_signature(secret: str, date: str, region: str, product: str, string_to_sign: str) -> str:
    key = ("aliyun_v4" + secret).encode()
    for part in (date, region, product, "aliyun_v4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _http_time(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _iso_time(value: str) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(value, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        return None


def _check_skew(stamp: float | None, said: str) -> None:
    now = time.time()
    if stamp is None:
        raise E.ACCESS_DENIED("Invalid date format.", RequestTime=said)
    if abs(now - stamp) > MAX_SKEW:
        raise E.TIME_SKEWED(
            RequestTime=said,
            ServerTime=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now)),
            MaxAllowedSkewMilliseconds=MAX_SKEW * 1000,
        )


class OssAuthenticator:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _key(self, access_key_id: str) -> AccessKey:
        key = self.store.key(access_key_id) if access_key_id else None
        if key is None:
            raise E.INVALID_ACCESS_KEY_ID(OSSAccessKeyId=access_key_id)
        return key

    @staticmethod
    def _check_token(key: AccessKey, token: str | None) -> None:
        if key.security_token is None:
            return
        if not token:
            raise E.SECURITY_TOKEN_MISSING(OSSAccessKeyId=key.access_key_id)
        if not constant_time_equal(token, key.security_token):
            raise E.INVALID_SECURITY_TOKEN(OSSAccessKeyId=key.access_key_id)

    @staticmethod
    def _mismatch(key: AccessKey, string_to_sign: str, provided: str, v4: bool = False) -> E.OssError:
        return (E.SIGNATURE_MISMATCH_V4 if v4 else E.SIGNATURE_MISMATCH)(
            OSSAccessKeyId=key.access_key_id,
            SignatureProvided=provided,
            StringToSign=string_to_sign,
            StringToSignBytes=" ".join(f"{b:02X}" for b in string_to_sign.encode()),
        )

    def verify(
        self,
        method: str,
        bucket: str | None,
        key: str | None,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        operation: str,
    ) -> tuple[Caller, str | None]:
        """(the caller, the region a V4 signature names). `headers` has lower-case names."""
        authorization = headers.get("authorization", "")
        if authorization.startswith(V4 + " ") or query.get("x-oss-signature-version") == V4:
            return self._v4(method, bucket, key, query, headers, authorization, operation)
        if authorization.startswith("OSS ") or "OSSAccessKeyId" in query:
            return self._v1(method, bucket, key, query, headers, authorization, operation), None
        if authorization:
            raise E.INVALID_AUTHORIZATION()
        raise (
            E.ANONYMOUS() if bucket else E.ACCESS_DENIED("Anonymous access is forbidden for this operation.")
        )

    def _v1(
        self,
        method: str,
        bucket: str | None,
        key_name: str | None,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        authorization: str,
        operation: str,
    ) -> Caller:
        resource = v1_resource(bucket, key_name, query)
        if authorization:
            access_key_id, sep, provided = authorization[4:].strip().rpartition(":")
            if not sep:
                raise E.INVALID_AUTHORIZATION()
            key = self._key(access_key_id)
            dates = [d for d in (headers.get("date"), headers.get("x-oss-date")) if d]
            if not dates:
                raise E.ACCESS_DENIED("OSS authentication requires a valid Date.")
            for date in dates:
                string_to_sign = v1_string_to_sign(method, headers, date, resource)
                if constant_time_equal(v1_signature(key.secret, string_to_sign), provided):
                    break
            else:
                raise self._mismatch(key, v1_string_to_sign(method, headers, dates[0], resource), provided)
            _check_skew(_http_time(dates[-1]), dates[-1])
            token = headers.get("x-oss-security-token") or headers.get("security-token")
            self._check_token(key, token)
            return Caller(key, "oss-v1", operation, "oss")
        key = self._key(query.get("OSSAccessKeyId", ""))
        expires, provided = query.get("Expires", ""), query.get("Signature", "")
        string_to_sign = v1_string_to_sign(method, headers, expires, resource)
        if not constant_time_equal(v1_signature(key.secret, string_to_sign), provided):
            raise self._mismatch(key, string_to_sign, provided)
        if not expires.isdigit() or int(expires) < time.time():
            raise E.EXPIRED(Expires=expires, ServerTime=str(int(time.time())))
        self._check_token(key, query.get("security-token"))
        return Caller(key, "oss-v1", operation, "oss")

    def _v4(
        self,
        method: str,
        bucket: str | None,
        key_name: str | None,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        authorization: str,
        operation: str,
    ) -> tuple[Caller, str]:
        presigned = not authorization.startswith(V4 + " ")
        if presigned:
            credential = query.get("x-oss-credential", "")
            additional = [h for h in query.get("x-oss-additional-headers", "").split(";") if h]
            provided, stamp = query.get("x-oss-signature", ""), query.get("x-oss-date", "")
            payload = "UNSIGNED-PAYLOAD"
        else:
            fields: dict[str, str] = {}
            for part in authorization[len(V4) :].split(","):
                name, _, value = part.strip().partition("=")
                fields[name] = value
            credential, provided = fields.get("Credential", ""), fields.get("Signature", "")
            additional = [h for h in fields.get("AdditionalHeaders", "").split(";") if h]
            stamp = headers.get("x-oss-date", "")
            payload = headers.get("x-oss-content-sha256", "")
            if not payload:
                raise E.INVALID_ARGUMENT("Missing x-oss-content-sha256.", ArgumentName="x-oss-content-sha256")
        scope = credential.split("/")
        if len(scope) != 5 or scope[3] != "oss" or scope[4] != "aliyun_v4_request" or not provided:
            raise E.INVALID_AUTHORIZATION(f"Invalid credential in Authorization: {credential}.")
        access_key_id, date, region = scope[0], scope[1], scope[2]
        key = self._key(access_key_id)
        canonical = v4_canonical_request(method, bucket, key_name, query, headers, additional, payload)
        string_to_sign = v4_string_to_sign(stamp, "/".join(scope[1:]), canonical)
        if not stamp.startswith(date) or not constant_time_equal(
            v4_signature(key.secret, date, region, "oss", string_to_sign), provided
        ):
            raise self._mismatch(key, string_to_sign, provided, v4=True)
        signed_at = _iso_time(stamp)
        if presigned:
            expires = query.get("x-oss-expires", "")
            if signed_at is None or not expires.isdigit() or signed_at + int(expires) < time.time():
                raise E.EXPIRED(Expires=expires, ServerTime=str(int(time.time())))
            self._check_token(key, query.get("x-oss-security-token"))
        else:
            _check_skew(signed_at, stamp)
            self._check_token(key, headers.get("x-oss-security-token"))
        return Caller(key, "oss-v4", operation, "oss"), region
