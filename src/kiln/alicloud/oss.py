"""OSS through the official alibabacloud-oss-v2 SDK: a client from kiln's access options, and the
deletes `kiln cleanup` and the import's cleanups share (objects, multipart uploads, buckets).

The endpoint is Alibaba's regional one (`https://oss-REGION.aliyuncs.com`, virtual-hosted
buckets) unless KILN_OSS_ENDPOINT names another (localcloud's, path-style). The credentials are the
access options' own (access key, STS token, profile, RAM role...), read through the same
credential client as the ECS API, so every kind the builder accepts works here too.

Journal ids: an object is `bucket/key`, a multipart upload `bucket/key?uploadId=ID`, a bucket its name.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from kiln.alicloud.access import AccessConfig, Endpoint, credential_client, parse_endpoint
from kiln.errors import CloudError

ENDPOINT_ENV = "KILN_OSS_ENDPOINT"
_UPLOAD_ID = "?uploadId="

_lock = threading.Lock()
_clients: dict[tuple[int, str], Any] = {}


def endpoint(region: str) -> Endpoint:
    text = os.environ.get(ENDPOINT_ENV, "")
    return parse_endpoint(text) if text else Endpoint("https", f"oss-{region}.aliyuncs.com")


def object_url(region: str, bucket: str, key: str) -> str:
    """Where the object lives, as the UI names it."""
    where = endpoint(region)
    if os.environ.get(ENDPOINT_ENV):
        return f"{where.url()}/{bucket}/{key}"
    return f"{where.protocol}://{bucket}.{where.host}/{key}"


def client(access: AccessConfig, region: str) -> Any:
    """An OSS SDK client of `region` for these access options (one per options and region)."""
    with _lock:
        found = _clients.get((id(access), region))
        if found is not None:
            return found
    import alibabacloud_oss_v2 as oss

    creds = credential_client(access)

    def current() -> Any:
        got = creds.get_credential()
        return oss.credentials.Credentials(
            got.get_access_key_id(), got.get_access_key_secret(), got.get_security_token() or None
        )

    where = endpoint(region)
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.CredentialsProviderFunc(current)
    cfg.region = region
    cfg.endpoint = where.url()
    cfg.use_path_style = bool(os.environ.get(ENDPOINT_ENV))
    cfg.retry_max_attempts = 1  # kiln retries a part itself, with its own backoff and log
    cfg.user_agent = "kiln"
    made = oss.Client(cfg)
    with _lock:
        _clients[(id(access), region)] = made
    return made


def error_code(exc: BaseException) -> str:
    """The OSS error code of an SDK exception ("" when the request got no OSS answer)."""
    seen: BaseException | None = exc
    while seen is not None:
        code = getattr(seen, "code", None)
        if isinstance(code, str) and code:
            return code
        seen = seen.__cause__ or getattr(seen, "error", None) or seen.__context__
    return ""


def describe(exc: BaseException) -> str:
    code = error_code(exc)
    message = ""
    seen: BaseException | None = exc
    while seen is not None and not message:
        message = str(getattr(seen, "message", "") or "")
        seen = seen.__cause__ or getattr(seen, "error", None)
    text = " ".join((message or str(exc)).split())
    return f"{code}: {text}" if code and code not in text else text


def split_object(rid: str) -> tuple[str, str]:
    bucket, _, key = rid.partition("/")
    return bucket, key


def split_upload(rid: str) -> tuple[str, str, str]:
    path, _, upload_id = rid.partition(_UPLOAD_ID)
    bucket, key = split_object(path)
    return bucket, key, upload_id


def upload_rid(bucket: str, key: str, upload_id: str) -> str:
    return f"{bucket}/{key}{_UPLOAD_ID}{upload_id}"


def _tolerate_missing(fn: Any) -> None:
    try:
        fn()
    except Exception as exc:
        if error_code(exc) not in ("NoSuchKey", "NoSuchBucket", "NoSuchUpload"):
            raise CloudError(describe(exc)) from None


def delete_object(access: AccessConfig, region: str, rid: str) -> None:
    import alibabacloud_oss_v2 as oss

    bucket, key = split_object(rid)
    _tolerate_missing(lambda: client(access, region).delete_object(oss.DeleteObjectRequest(bucket, key)))


def abort_upload(access: AccessConfig, region: str, rid: str) -> None:
    import alibabacloud_oss_v2 as oss

    bucket, key, upload_id = split_upload(rid)
    _tolerate_missing(
        lambda: client(access, region).abort_multipart_upload(
            oss.AbortMultipartUploadRequest(bucket=bucket, key=key, upload_id=upload_id)
        )
    )


def bucket_exists(access: AccessConfig, region: str, bucket: str) -> bool:
    try:
        return bool(client(access, region).is_bucket_exist(bucket))
    except Exception as exc:
        raise CloudError(f"cannot look up OSS bucket {bucket}: {describe(exc)}") from None


def create_bucket(access: AccessConfig, region: str, bucket: str) -> None:
    import alibabacloud_oss_v2 as oss

    try:
        client(access, region).put_bucket(oss.PutBucketRequest(bucket=bucket))
    except Exception as exc:
        raise CloudError(
            f"cannot create OSS bucket {bucket}: {describe(exc)}",
            "bucket names are global: choose another oss_bucket_name if it is taken",
        ) from None


def delete_bucket(access: AccessConfig, region: str, bucket: str) -> None:
    """Delete a bucket kiln made. Only an empty one: what others put in it since is never deleted
    (the run's own object and upload are journaled apart and deleted before it)."""
    import alibabacloud_oss_v2 as oss

    _tolerate_missing(lambda: client(access, region).delete_bucket(oss.DeleteBucketRequest(bucket=bucket)))
