"""The console page, rendered by headless Chromium: live lists, request log, no secret."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import urllib.request

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_vpc20160428 import models as vpcm
from alibabacloud_vpc20160428.client import Client as VpcClient

from kiln.localcloud import LocalCloudProcess

from .conftest import REGION
from .ossutil import oss2_bucket

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="apt-get install -y chromium")


def render(url: str) -> str:
    """The DOM after the page's scripts ran (fetch included)."""
    profile = tempfile.mkdtemp(prefix="kiln-chromium-")
    try:
        result = subprocess.run(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=4000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_console_shows_resources_live_and_no_secret(
    cloud: LocalCloudProcess, ecs3: EcsClient, vpc: VpcClient
) -> None:
    key = ecs3.create_key_pair(ecs.CreateKeyPairRequest(region_id=REGION, key_pair_name="console-pair")).body
    vpc_id = vpc.create_vpc(
        vpcm.CreateVpcRequest(region_id=REGION, cidr_block="10.8.0.0/16", vpc_name="console-vpc")
    ).body.vpc_id
    bucket = oss2_bucket(cloud, "kiln-console-bucket")
    bucket.create_bucket()
    bucket.put_object("shown", b"12345")
    page = render(cloud.url + "/console")
    bucket.delete_object("shown")
    bucket.delete_bucket()
    assert 'data-loaded="1"' in page
    for expected in (
        "kiln-console-bucket",
        "console-pair",
        vpc_id,
        "debian_12_x64_20G_kiln_20261128.vhd",
        "cn-beijing",
        "CreateVpc",
    ):
        assert expected in page, expected
    for secret in (cloud.secret, key.private_key_body.splitlines()[1], "PRIVATE KEY"):
        assert secret not in page
    eip = vpc.allocate_eip_address(vpcm.AllocateEipAddressRequest(region_id=REGION)).body
    assert eip.allocation_id in render(cloud.url + "/console")  # the page reflects the state of the moment


def test_console_state_is_read_only_without_signature(cloud: LocalCloudProcess) -> None:
    with urllib.request.urlopen(cloud.url + "/console/state", timeout=10) as answer:
        body = answer.read().decode()
    assert cloud.secret not in body and "_public_key" not in body and "UserData" not in body
    request = urllib.request.Request(cloud.url + "/console/state", method="POST", data=b"x=1")
    with pytest.raises(urllib.error.HTTPError) as failed:
        urllib.request.urlopen(request, timeout=10)
    assert failed.value.code >= 400
