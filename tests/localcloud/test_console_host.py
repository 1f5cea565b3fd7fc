"""The console answers only to this machine's loopback names and its listen address (no DNS rebinding)."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from alibabacloud_vpc20160428 import models as vpcm
from alibabacloud_vpc20160428.client import Client as VpcClient

from kiln.localcloud import LocalCloudProcess
from kiln.localcloud.console import host_allowed

from .conftest import REGION


def get(cloud: LocalCloudProcess, path: str, host: str) -> tuple[int, str]:
    request = urllib.request.Request(cloud.url + path, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.mark.parametrize("path", ["/console", "/console/", "/console/state"])
@pytest.mark.parametrize(
    "name", ["rebind.attacker.example", "localhost.attacker.example", "127.0.0.1.nip.io", "10.9.8.7"]
)
def test_a_foreign_host_name_gets_nothing(
    cloud: LocalCloudProcess, vpc: VpcClient, path: str, name: str
) -> None:
    vpc.create_vpc(
        vpcm.CreateVpcRequest(region_id=REGION, cidr_block="10.7.0.0/16", vpc_name="rebind-target")
    )
    status, body = get(cloud, path, f"{name}:{cloud.port}")
    assert status == 403, body[:200]
    assert "rebind-target" not in body and "RegionId" not in body and "<script" not in body
    assert name in body  # says which host name it refused


@pytest.mark.parametrize(
    "name", ["127.0.0.1", "localhost", "LocalHost", "[::1]", "127.0.0.5", "ui.localhost"]
)
def test_loopback_names_get_the_console(cloud: LocalCloudProcess, name: str) -> None:
    status, body = get(cloud, "/console/state", f"{name}:{cloud.port}")
    assert status == 200 and '"Regions"' in body


def test_the_listen_address_is_accepted() -> None:
    assert host_allowed("build-host.example:8720", "build-host.example")
    assert host_allowed("[2001:db8::5]:8720", "2001:db8::5")
    assert host_allowed("192.0.2.10:8720", "0.0.0.0")  # any address of this machine when it listens on all
    assert not host_allowed("rebind.example:8720", "0.0.0.0")  # but never a name
    assert not host_allowed("192.0.2.10:8720", "127.0.0.1")
    assert not host_allowed("", "127.0.0.1")
