"""Who may call OSS: presigned URLs (V1 and V4) used by curl, STS tokens, clock skew, expiry, and
virtual-hosted style (the Host names the bucket and the region), as the two SDKs send them."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path

import alibabacloud_oss_v2 as oss
import oss2
import pytest
import requests

from kiln.localcloud import LocalCloudProcess
from kiln.localcloud.api.oss import auth as oss_auth
from kiln.localcloud.service import open_store

from .oss_fixtures import new_bucket
from .ossutil import REGION, oss2_bucket, signed_request, v2_client
from .test_proxy import run_python, shell_env

__all__ = ["new_bucket"]


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", "--max-time", "30", *args], capture_output=True, check=False)


@pytest.mark.parametrize("v4", [False, True], ids=["v1", "v4"])
def test_presigned_put_and_get_with_curl(
    cloud: LocalCloudProcess, new_bucket: Callable[[], str], tmp_path: Path, v4: bool
) -> None:
    bucket = oss2_bucket(cloud, new_bucket(), v4=v4)
    data = os.urandom(2 * 1024 * 1024 + 3)
    source = tmp_path / "disk.raw"
    source.write_bytes(data)
    put_url = bucket.sign_url("PUT", "up/disk.raw", 600, slash_safe=True)
    assert ("x-oss-signature=" in put_url) == v4 and ("OSSAccessKeyId=" in put_url) != v4
    put = curl("-f", "-T", str(source), "-D", "-", put_url)
    assert put.returncode == 0, put.stderr
    assert b"x-oss-hash-crc64ecma" in put.stdout.lower()
    target = tmp_path / "back"
    got = curl("-f", "-o", str(target), bucket.sign_url("GET", "up/disk.raw", 600, slash_safe=True))
    assert got.returncode == 0, got.stderr
    assert target.read_bytes() == data
    tampered = bucket.sign_url("GET", "up/disk.raw", 600, slash_safe=True).replace("up/disk.raw", "up/other")
    refused = curl("-o", "-", "-w", "%{http_code}", tampered)
    assert refused.stdout.endswith(b"403") and b"<Code>SignatureDoesNotMatch</Code>" in refused.stdout


def test_v2_presign_get(cloud: LocalCloudProcess, new_bucket: Callable[[], str]) -> None:
    client, name = v2_client(cloud), new_bucket()
    client.put_object(oss.PutObjectRequest(bucket=name, key="k", body=b"presigned"))
    signed = client.presign(oss.GetObjectRequest(bucket=name, key="k"), expires=datetime.timedelta(minutes=5))
    assert requests.get(signed.url, timeout=10).content == b"presigned"


def test_expired_presigned_url(cloud: LocalCloudProcess, new_bucket: Callable[[], str]) -> None:
    bucket = oss2_bucket(cloud, new_bucket())
    bucket.put_object("k", b"x")
    expired = bucket.sign_url("GET", "k", -10)
    answer = requests.get(expired, timeout=10)
    assert answer.status_code == 403 and b"<Code>AccessDenied</Code>" in answer.content
    assert b"Request has expired." in answer.content


def test_clock_skew_is_refused(
    cloud: LocalCloudProcess, new_bucket: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = oss2_bucket(cloud, new_bucket())
    bucket.put_object("k", b"x")
    with monkeypatch.context() as late, pytest.raises(oss2.exceptions.ServerError) as skewed:
        late.setattr(oss2.utils, "http_date", lambda *_: formatdate(time.time() - 3600, usegmt=True))
        bucket.get_object("k")  # from a client whose clock is an hour late
    assert (skewed.value.status, skewed.value.code) == (403, "RequestTimeTooSkewed")
    assert skewed.value.details["MaxAllowedSkewMilliseconds"] == "900000"


@pytest.mark.parametrize("v4", [False, True], ids=["v1", "v4"])
def test_sts_key_needs_its_token(cloud: LocalCloudProcess, new_bucket: Callable[[], str], v4: bool) -> None:
    store = open_store(cloud.state_dir)
    key = store.create_key(sts=True)
    store.close()
    assert key.security_token
    name = new_bucket()
    with_token = oss2_bucket(
        cloud, name, v4=v4, key_id=key.access_key_id, secret=key.secret, token=key.security_token
    )
    with_token.put_object("sts", b"temporary")
    assert with_token.get_object("sts").read() == b"temporary"
    url = with_token.sign_url("GET", "sts", 60)
    assert "security-token=" in url
    assert requests.get(url, timeout=10).content == b"temporary"
    forged = oss2_bucket(cloud, name, v4=v4, key_id=key.access_key_id, secret=key.secret, token="forged")
    with pytest.raises(oss2.exceptions.ServerError) as wrong:
        forged.get_object("sts")
    assert (wrong.value.status, wrong.value.code) == (403, "InvalidSecurityToken")
    without = oss2_bucket(cloud, name, v4=v4, key_id=key.access_key_id, secret=key.secret)
    with pytest.raises(oss2.exceptions.ServerError) as missing:
        without.get_object("sts")
    assert missing.value.status == 403
    v2 = v2_client(cloud, key_id=key.access_key_id, secret=key.secret, token=key.security_token)
    assert v2.get_object(oss.GetObjectRequest(bucket=name, key="sts")).body.read() == b"temporary"


@pytest.mark.parametrize("v4", [False, True], ids=["v1", "v4"])
def test_virtual_hosted_style(cloud: LocalCloudProcess, new_bucket: Callable[[], str], v4: bool) -> None:
    """What a client pointed at oss-REGION.aliyuncs.com sends (through a proxy): Host BUCKET.oss-REGION...."""
    name = new_bucket()
    endpoint = f"http://oss-{REGION}.aliyuncs.com"
    bucket = oss2_bucket(cloud, name, v4=v4, endpoint=endpoint)
    session = requests.Session()
    session.proxies = {"http": cloud.url}  # localcloud reads the Host header, as behind the proxy
    bucket.session = oss2.Session()
    bucket.session.session = session
    bucket.put_object("vhost/key", b"virtual")
    assert bucket.get_object("vhost/key").read() == b"virtual"
    assert (
        oss2_bucket(cloud, name).get_object("vhost/key").read() == b"virtual"
    )  # the same object, path style
    internal = requests.get(
        f"{cloud.url}/vhost/key", headers={"Host": f"{name}.oss-{REGION}-internal.aliyuncs.com"}, timeout=10
    )
    assert internal.status_code == 403  # unsigned: OSS's refusal, so the name was routed to OSS
    assert b"<Code>AccessDenied</Code>" in internal.content
    elsewhere = oss2_bucket(cloud, name, v4=v4, endpoint="http://oss-cn-shanghai.aliyuncs.com")
    elsewhere.session = bucket.session
    with pytest.raises(oss2.exceptions.AccessDenied) as wrong_region:
        elsewhere.get_object("vhost/key")
    assert wrong_region.value.details["Endpoint"] == f"oss-{REGION}.aliyuncs.com"


def test_both_sdks_over_https_through_the_proxy(cloud: LocalCloudProcess) -> None:
    """The SDKs' own default endpoint (https://BUCKET.oss-cn-beijing.aliyuncs.com, virtual-hosted
    style) with only what `kiln localcloud env` exports: the proxy routes the names to OSS."""
    code = """if True:
        import json, os, uuid
        import oss2
        import alibabacloud_oss_v2 as oss
        ak, sk = os.environ["ALICLOUD_ACCESS_KEY"], os.environ["ALICLOUD_SECRET_KEY"]
        name = "kiln-proxy-" + uuid.uuid4().hex[:10]
        bucket = oss2.Bucket(oss2.Auth(ak, sk), "https://oss-cn-beijing.aliyuncs.com", name)
        bucket.create_bucket()
        bucket.put_object("k", b"through the proxy")
        cfg = oss.config.load_default()
        cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(ak, sk)
        cfg.region = "cn-beijing"
        client = oss.Client(cfg)
        got = client.get_object(oss.GetObjectRequest(bucket=name, key="k")).body.read().decode()
        data = os.urandom(3 * 1024 * 1024)
        path = "/tmp/" + name
        open(path, "wb").write(data)
        client.uploader(part_size=1024 * 1024).upload_file(oss.PutObjectRequest(bucket=name, key="big"), filepath=path)
        os.unlink(path)
        same = bucket.get_object("big").read() == data
        for key in ("k", "big"):
            bucket.delete_object(key)
        bucket.delete_bucket()
        print(json.dumps({"got": got, "same": same, "url": bucket._make_url(name, "k")}))
    """
    done = run_python(code, shell_env(cloud))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["got"] == "through the proxy" and result["same"]
    assert (
        result["url"].startswith("https://kiln-proxy-") and ".oss-cn-beijing.aliyuncs.com/" in result["url"]
    )


def test_v4_signed_payload_hash_is_checked(cloud: LocalCloudProcess, new_bucket: Callable[[], str]) -> None:
    """A V4 request may sign the body's SHA-256 (x-oss-content-sha256) instead of UNSIGNED-PAYLOAD; the
    SDKs never do, so it is signed here with localcloud's own V4 functions."""
    name = new_bucket()

    def put(body: bytes, said: bytes) -> requests.Response:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        headers = {"x-oss-date": stamp, "x-oss-content-sha256": hashlib.sha256(said).hexdigest()}
        scope = f"{stamp[:8]}/{REGION}/oss/aliyun_v4_request"
        canonical = oss_auth.v4_canonical_request(
            "PUT", name, "k", {}, headers, [], headers["x-oss-content-sha256"]
        )
        signature = oss_auth.v4_signature(
            cloud.secret, stamp[:8], REGION, "oss", oss_auth.v4_string_to_sign(stamp, scope, canonical)
        )
        headers["Authorization"] = (
            f"OSS4-HMAC-SHA256 Credential={cloud.access_key_id}/{scope},Signature={signature}"
        )
        return requests.put(f"{cloud.url}/{name}/k", data=body, headers=headers, timeout=10)

    assert put(b"signed body", b"signed body").status_code == 200
    refused = put(b"other body", b"signed body")
    assert refused.status_code == 400 and b"x-oss-content-sha256" in refused.content
    assert oss2_bucket(cloud, name).get_object("k").read() == b"signed body"


def test_presigned_bucket_operations_and_what_is_not_implemented(cloud: LocalCloudProcess) -> None:
    name = f"kiln-presigned-{os.urandom(4).hex()}"
    auth = oss2.Auth(cloud.access_key_id, cloud.secret)

    def presigned(method: str, params: dict[str, str] | None = None) -> str:
        # oss2 presigns objects only; its V1 signer signs a bucket's URL the same way
        return str(
            auth._sign_url(oss2.http.Request(method, f"{cloud.url}/{name}/", params=params), name, "", 60)
        )

    assert requests.put(presigned("PUT"), timeout=10).status_code == 200  # PutBucket
    bucket = oss2_bucket(cloud, name)
    assert bucket.get_bucket_info().name == name
    acl = signed_request(cloud, "PUT", name, params={"acl": ""})  # PutBucketAcl: not emulated
    assert acl.status_code == 501 and b"<Code>NotImplemented</Code>" in acl.content
    assert requests.delete(presigned("DELETE"), timeout=10).status_code == 204  # DeleteBucket
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        bucket.get_bucket_info()
