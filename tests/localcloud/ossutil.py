"""The two official OSS SDKs (oss2 and alibabacloud-oss-v2) pointed at a localcloud, path style."""

from __future__ import annotations

import alibabacloud_oss_v2 as oss
import oss2
import requests

from kiln.localcloud import LocalCloudProcess

REGION = "cn-beijing"


def oss2_auth(
    v4: bool = False, key_id: str = "", secret: str = "", token: str | None = None
) -> oss2.AuthBase:
    if token:
        return oss2.StsAuth(key_id, secret, token, auth_version="v4" if v4 else "v1")
    if v4:
        return oss2.ProviderAuthV4(oss2.credentials.StaticCredentialsProvider(key_id, secret))
    return oss2.Auth(key_id, secret)


def oss2_bucket(
    cloud: LocalCloudProcess,
    name: str,
    v4: bool = False,
    key_id: str | None = None,
    secret: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> oss2.Bucket:
    auth = oss2_auth(v4, key_id or cloud.access_key_id, secret or cloud.secret, token)
    return oss2.Bucket(auth, endpoint or cloud.url, name, region=REGION, connect_timeout=10)


def oss2_service(cloud: LocalCloudProcess, v4: bool = False) -> oss2.Service:
    return oss2.Service(oss2_auth(v4, cloud.access_key_id, cloud.secret), cloud.url, region=REGION)


def v2_client(
    cloud: LocalCloudProcess,
    v1: bool = False,
    key_id: str | None = None,
    secret: str | None = None,
    token: str | None = None,
) -> oss.Client:
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        key_id or cloud.access_key_id, secret or cloud.secret, token
    )
    cfg.region = REGION
    cfg.endpoint = cloud.url
    if v1:
        cfg.signature_version = "v1"
    return oss.Client(cfg)


def signed_request(
    cloud: LocalCloudProcess,
    method: str,
    bucket: str,
    key: str = "",
    params: dict[str, str] | None = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """A path-style request oss2's V1 signer signs but that the SDKs would not send as it is
    (a name they refuse, parts out of order): what the server does with it."""
    url = f"{cloud.url}/{bucket}/{key}"
    req = oss2.http.Request(method, url, data=body, params=params or {}, headers=headers or {})
    oss2.Auth(cloud.access_key_id, cloud.secret)._sign_request(req, bucket, key)
    return requests.request(method, url, params=req.params, data=body, headers=dict(req.headers), timeout=30)
