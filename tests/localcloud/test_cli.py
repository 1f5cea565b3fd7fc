"""`kiln localcloud env | keys` and the latency profile."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_vpc20160428 import models as vpcm
from alibabacloud_vpc20160428.client import Client as VpcClient

from kiln.errors import KilnError
from kiln.localcloud import LatencyProfile, LocalCloudProcess, start
from kiln.localcloud.sdkcalls import instance_status, network, run_instances, vpc_status

from .conftest import REGION, config
from .workflow import wait_for


def kiln(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kiln", "localcloud", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_env_prints_what_a_shell_needs(cloud: LocalCloudProcess) -> None:
    done = kiln("env", "--state", str(cloud.state_dir))
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith("export ALICLOUD_ACCESS_KEY=")
    fields = dict(part.split("=", 1) for part in line.removeprefix("export ").split())
    assert (
        fields["ALICLOUD_ACCESS_KEY"] == cloud.access_key_id and fields["ALICLOUD_SECRET_KEY"] == cloud.secret
    )
    assert fields["ALICLOUD_REGION"] == "cn-beijing" and fields["HTTP_PROXY"] == cloud.url
    assert fields["KILN_OSS_ENDPOINT"] == cloud.url  # OSS answers at the same address (path style)


def test_keys_create_makes_a_working_key(cloud: LocalCloudProcess) -> None:
    done = kiln("keys", "create", "--state", str(cloud.state_dir))
    assert done.returncode == 0
    lines = dict(line.split(": ", 1) for line in done.stdout.strip().splitlines())
    client = EcsClient(config(cloud, key_id=lines["access key id"], secret=lines["secret"]))
    assert client.describe_regions(ecs.DescribeRegionsRequest()).body.regions.region
    listed = kiln("keys", "list", "--state", str(cloud.state_dir)).stdout
    assert lines["access key id"] in listed and lines["secret"] not in listed


def test_bad_arguments_are_one_line_errors(tmp_path: Path) -> None:
    done = kiln("serve", "--state", str(tmp_path), "--profile", "instance_start=soon")
    assert done.returncode == 1 and "instance_start" in done.stderr and "Traceback" not in done.stderr
    assert kiln("serve", "--listen", "nonsense").returncode == 1


def test_profile_parse() -> None:
    profile = LatencyProfile.parse("call=0.1,instance_start=10,image_create=20")
    assert (profile.call, profile.instance_start, profile.image_create) == (0.1, 10.0, 20.0)
    assert LatencyProfile.parse(profile.render()) == profile
    assert LatencyProfile.parse("cloud").instance_start == 10.0
    with pytest.raises(KilnError, match="unknown setting"):
        LatencyProfile.parse("warp=1")


def test_profile_slows_transitions_and_calls(state_root: Path) -> None:
    with start(
        state_root / "slow", runner="none", profile="call=0.05,instance_start=1.5,network_create=0.3"
    ) as cloud:
        client, vpc = EcsClient(config(cloud)), VpcClient(config(cloud))
        began = time.monotonic()
        client.describe_regions(ecs.DescribeRegionsRequest())
        assert time.monotonic() - began >= 0.05
        vpc_id = vpc.create_vpc(vpcm.CreateVpcRequest(region_id=REGION, cidr_block="10.0.0.0/16")).body.vpc_id
        assert vpc_status(vpc, vpc_id) == "Pending"
        _, vsw, group = network(client, vpc, wait_for, vpc_id=vpc_id)
        iid = run_instances(client, vsw, group)[0]
        began = time.monotonic()
        wait_for("Running", lambda: instance_status(client, iid) == "Running")
        assert time.monotonic() - began >= 1.2


def test_fault_and_log_commands(cloud: LocalCloudProcess) -> None:
    state = str(cloud.state_dir)
    added = kiln(
        "fault",
        "add",
        "--action",
        "DescribeRegions",
        "--code",
        "ServiceUnavailable",
        "--count",
        "1",
        "--state",
        state,
    )
    assert added.returncode == 0, added.stderr
    assert '"Code": "ServiceUnavailable"' in kiln("fault", "list", "--state", state).stdout
    client = EcsClient(config(cloud))
    try:
        client.describe_regions(ecs.DescribeRegionsRequest())
        raise AssertionError("the injected fault did not fire")
    except Exception as err:
        assert getattr(err, "code", None) == "ServiceUnavailable"
    assert client.describe_regions(ecs.DescribeRegionsRequest()).body.regions.region
    assert kiln("fault", "clear", "--state", state).returncode == 0
    log = kiln("log", "--limit", "20", "--state", state).stdout
    assert "DescribeRegions" in log and "ServiceUnavailable" in log and cloud.secret not in log


@pytest.mark.parametrize(
    "argv", [["serve", "-help"], ["serve", "--help"], ["keys", "create", "-h"], ["-help"]]
)
def test_help_after_a_subcommand_prints_the_usage_only(argv: list[str]) -> None:
    done = kiln(*argv)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("Usage: kiln localcloud")


def test_a_bad_argument_is_one_line_naming_it() -> None:
    done = kiln("serve", "--runner", "nonsense")
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) <= 2 and "--runner" in lines[0] and "nonsense" in lines[0], done.stderr
    assert "usage:" not in done.stderr
