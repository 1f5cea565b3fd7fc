"""Who may call: signatures, keys, timestamps, nonces, STS tokens. Every failure is the gateway's error."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as EcsClient

from kiln.localcloud import LocalCloudProcess, client, signing, start
from kiln.localcloud.service import open_store
from kiln.localcloud.store import Store

from .conftest import config, error_of


@pytest.mark.parametrize("v1", [False, True], ids=["v3", "v1"])
def test_wrong_secret_is_signature_does_not_match(cloud: LocalCloudProcess, v1: bool) -> None:
    bad = EcsClient(config(cloud, v1=v1, secret="not-the-secret"))
    err = error_of(lambda: bad.describe_regions(ecs_models.DescribeRegionsRequest()))
    assert err.code == "SignatureDoesNotMatch"
    assert err.status_code == 400
    assert "server string to sign is:" in err.data["Message"]
    assert cloud.secret not in str(err.data)


@pytest.mark.parametrize("v1", [False, True], ids=["v3", "v1"])
def test_unknown_key_is_invalid_access_key_id(cloud: LocalCloudProcess, v1: bool) -> None:
    bad = EcsClient(config(cloud, v1=v1, key_id="LTAInobodyhasthiskey"))
    err = error_of(lambda: bad.describe_regions(ecs_models.DescribeRegionsRequest()))
    assert (err.code, err.status_code) == ("InvalidAccessKeyId.NotFound", 404)
    assert err.data["RequestId"] and err.data["HostId"] and err.data["Recommend"]


def _v1_url(cloud: LocalCloudProcess, **overrides: str) -> str:
    query = client.v1_query(
        cloud.access_key_id,
        cloud.secret,
        "GET",
        {"Action": "DescribeRegions", "Version": "2014-05-26"},
        **overrides,
    )
    return f"{cloud.url}/?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}"


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _v1_get_xml(cloud: LocalCloudProcess, action: str, region: str) -> client.Answer:
    return client.call(
        cloud.url,
        cloud.access_key_id,
        cloud.secret,
        action,
        {"RegionId": region, "Format": "XML"},
        signature="v1",
        method="GET",
    )


def test_old_timestamp_is_expired(cloud: LocalCloudProcess) -> None:
    old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 16 * 60))
    status, body = _get(_v1_url(cloud, timestamp=old))
    assert status == 400 and b"InvalidTimeStamp.Expired" in body
    recent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 10 * 60))
    assert _get(_v1_url(cloud, timestamp=recent))[0] == 200


def test_replayed_nonce_is_rejected(cloud: LocalCloudProcess) -> None:
    url = _v1_url(cloud)
    assert _get(url)[0] == 200
    status, body = _get(url)
    assert status == 400 and b"SignatureNonceUsed" in body


def test_unsigned_requests_get_errors_only(cloud: LocalCloudProcess) -> None:
    for path in ("/?Action=DescribeRegions&Version=2014-05-26&Format=JSON", "/"):
        status, body = _get(cloud.url + path)
        assert status == 400, path
        assert b"Regions" not in body
    status, body = _get(cloud.url + "/anything")  # a path but `/` is OSS's (path style): its own refusal
    assert status == 403 and b"<Code>AccessDenied</Code>" in body


def test_xml_is_the_default_and_errors_are_xml_too(cloud: LocalCloudProcess) -> None:
    query = client.v1_query(
        cloud.access_key_id, cloud.secret, "GET", {"Action": "DescribeRegions", "Version": "2014-05-26"}
    )
    del query["Format"]
    query["Signature"] = signing.v1_signature(cloud.secret, signing.v1_string_to_sign("GET", query))
    status, body = _get(f"{cloud.url}/?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}")
    assert status == 200
    root = ET.fromstring(body)
    assert root.tag == "DescribeRegionsResponse"
    assert "cn-beijing" in [r.findtext("RegionId") for r in root.find("Regions").findall("Region")]  # type: ignore[union-attr]
    answer = _v1_get_xml(cloud, "DescribeImages", "nowhere")
    error = ET.fromstring(answer.body)
    assert answer.status == 404 and error.tag == "Error"
    assert error.findtext("Code") == "InvalidRegionId.NotFound" and error.findtext("RequestId")


def test_form_body_parameters_are_signed_and_read(cloud: LocalCloudProcess) -> None:
    params = client.v1_query(
        cloud.access_key_id,
        cloud.secret,
        "POST",
        {"Action": "DescribeZones", "Version": "2014-05-26", "RegionId": "cn-hangzhou"},
    )
    request = urllib.request.Request(
        cloud.url + "/",
        method="POST",
        data=urllib.parse.urlencode(params).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        body = answer.read()
    assert b"cn-hangzhou-a" in body


def test_sts_key_needs_its_token(cloud: LocalCloudProcess) -> None:
    store = open_store(cloud.state_dir)
    key = store.create_key(sts=True)
    store.close()
    assert key.security_token
    without = EcsClient(config(cloud, key_id=key.access_key_id, secret=key.secret))
    assert (
        error_of(lambda: without.describe_regions(ecs_models.DescribeRegionsRequest())).code
        == "MissingSecurityToken"
    )
    wrong = EcsClient(config(cloud, key_id=key.access_key_id, secret=key.secret, token="forged"))
    assert (
        error_of(lambda: wrong.describe_regions(ecs_models.DescribeRegionsRequest())).code
        == "InvalidSecurityToken.MismatchWithAccessKey"
    )
    for v1 in (False, True):
        good = EcsClient(
            config(cloud, v1=v1, key_id=key.access_key_id, secret=key.secret, token=key.security_token)
        )
        assert good.describe_regions(ecs_models.DescribeRegionsRequest()).body.regions.region


def test_request_log_has_no_secret(cloud: LocalCloudProcess) -> None:
    answer = client.call(
        cloud.url,
        cloud.access_key_id,
        cloud.secret,
        "KilnDescribeRequestLog",
        {"Limit": "200"},
        version=client.ADMIN_VERSION,
    )
    assert answer.status == 200
    entries = answer.json()["Requests"]["Request"]
    assert entries and {"Action", "HttpStatus", "Code", "Millis"} <= entries[0].keys()
    assert cloud.secret not in answer.body.decode()
    unsigned = _get(cloud.url + "/?Action=KilnDescribeRequestLog&Version=kiln-localcloud")
    assert unsigned[0] == 400 and b"Requests" not in unsigned[1]


def test_xml_mirrors_nested_lists(cloud: LocalCloudProcess) -> None:
    answer = _v1_get_xml(cloud, "DescribeZones", "cn-shanghai")
    root = ET.fromstring(answer.body)
    zones = root.findall("./Zones/Zone")
    assert [z.findtext("ZoneId") for z in zones] == ["cn-shanghai-a", "cn-shanghai-b", "cn-shanghai-c"]
    kinds = [e.text for e in zones[0].findall("./AvailableResourceCreation/ResourceTypes")]
    assert "VSwitch" in kinds and root.findtext("RequestId")


def _send(
    cloud: LocalCloudProcess, query: dict[str, str], headers: dict[str, str], body: bytes = b""
) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"{cloud.url}/?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}",
        method="POST",
        headers=headers,
        data=body,
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _vpcs_named(cloud: LocalCloudProcess, vpc_name: str) -> int:
    answer = client.call(
        cloud.url,
        cloud.access_key_id,
        cloud.secret,
        "DescribeVpcs",
        {"RegionId": "cn-beijing", "VpcName": vpc_name},
        version=client.VPC_VERSION,
    )
    return int(answer.json()["TotalCount"])


def _v3_headers(cloud: LocalCloudProcess, action: str, version: str = client.ECS_VERSION) -> dict[str, str]:
    return {
        "host": urllib.parse.urlsplit(cloud.url).netloc,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "x-acs-signature-nonce": uuid.uuid4().hex,
        "accept": "application/json",
    }


@pytest.mark.parametrize("unsigned", ["x-acs-action", "x-acs-version"])
def test_v3_action_and_version_must_be_signed(cloud: LocalCloudProcess, unsigned: str) -> None:
    vpc_name = f"forged-{uuid.uuid4().hex[:8]}"
    query = {"RegionId": "cn-beijing", "VpcName": vpc_name}
    headers = _v3_headers(cloud, "CreateVpc", client.VPC_VERSION)
    added = headers.pop(unsigned)
    signing.sign_v3(cloud.access_key_id, cloud.secret, "POST", query, headers)
    headers[unsigned] = added  # sent, but not among the signed headers
    status, body = _send(cloud, query, headers)
    assert status == 400 and b"IncompleteSignature" in body and unsigned.encode() in body, body
    assert _vpcs_named(cloud, vpc_name) == 0


def test_v3_security_token_header_must_be_signed_when_sent(cloud: LocalCloudProcess) -> None:
    headers = _v3_headers(cloud, "DescribeRegions")
    signing.sign_v3(cloud.access_key_id, cloud.secret, "POST", {}, headers)
    headers["x-acs-security-token"] = "added-after-signing"
    status, body = _send(cloud, {}, headers)
    assert status == 400 and b"IncompleteSignature" in body and b"x-acs-security-token" in body


def test_v1_action_comes_from_the_signed_parameters_only(cloud: LocalCloudProcess) -> None:
    vpc_name = f"forged-{uuid.uuid4().hex[:8]}"
    signed = client.v1_query(
        cloud.access_key_id,
        cloud.secret,
        "POST",
        {"Version": client.VPC_VERSION, "RegionId": "cn-beijing", "VpcName": vpc_name},
    )
    status, body = _send(cloud, signed, {"x-acs-action": "CreateVpc", "x-acs-version": client.VPC_VERSION})
    error = json.loads(body)
    assert (status, error["Code"]) == (400, "MissingParameter") and '"Action"' in error["Message"], body
    assert _vpcs_named(cloud, vpc_name) == 0
    # Signed for DescribeRegions, an unsigned header asking for CreateVpc is not what runs.
    signed = client.v1_query(
        cloud.access_key_id,
        cloud.secret,
        "POST",
        {"Action": "DescribeVpcs", "Version": client.VPC_VERSION, "RegionId": "cn-beijing"},
    )
    status, body = _send(cloud, signed, {"x-acs-action": "CreateVpc"})
    assert status == 200 and b'"Vpcs"' in body, body


@pytest.mark.parametrize("how", ["sigterm", "kill-9"])
def test_nonce_is_remembered_across_a_restart(state_root: Path, how: str) -> None:
    state = state_root / f"nonces-{how}"
    vpc_name = f"replayed-{uuid.uuid4().hex[:8]}"
    with start(state, runner="none") as first:
        signed = client.v1_query(
            first.access_key_id,
            first.secret,
            "POST",
            {
                "Action": "CreateVpc",
                "Version": client.VPC_VERSION,
                "RegionId": "cn-beijing",
                "VpcName": vpc_name,
            },
        )
        assert _send(first, signed, {})[0] == 200
        if how == "kill-9":
            first.kill()
        else:
            first.stop()
    with start(state, runner="none") as second:
        status, body = _send(second, signed, {})
        assert status == 400 and b"SignatureNonceUsed" in body, body
        assert _vpcs_named(second, vpc_name) == 1


def test_nonces_are_kept_only_while_their_timestamp_is_accepted(tmp_path: Path) -> None:
    store = Store(tmp_path / "nonces.sqlite3")
    now = time.time()
    assert store.use_nonce("LTAIkey", "n-old", expires=now - 1)
    assert store.use_nonce("LTAIkey", "n-new", expires=now + 600)
    assert not store.use_nonce("LTAIkey", "n-new", expires=now + 600)
    assert store.use_nonce("LTAIother", "n-new", expires=now + 600)  # nonces are per access key
    assert store.forget_nonces(before=now) == 1
    assert store.use_nonce("LTAIkey", "n-old", expires=now + 600)  # it was forgotten
    store.close()
