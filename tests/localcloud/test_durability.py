"""State survives a clean restart and a kill -9; running instances come back."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_vpc20160428 import models as vpcm
from alibabacloud_vpc20160428.client import Client as VpcClient

from kiln.errors import KilnError
from kiln.localcloud import start
from kiln.localcloud.images import PUBLIC_IMAGE_ID

from .conftest import REGION, config
from .workflow import instance_status, wait_for


@pytest.mark.parametrize("how", ["sigterm", "kill-9"])
def test_restart_loses_nothing(state_root: Path, how: str) -> None:
    state = state_root / f"durable-{how}"
    with start(state, runner="none") as first:
        client, vpc = EcsClient(config(first)), VpcClient(config(first))
        vpc_id = vpc.create_vpc(vpcm.CreateVpcRequest(region_id=REGION, cidr_block="10.0.0.0/16")).body.vpc_id
        wait_for(
            "vpc",
            lambda: (
                vpc.describe_vpcs(vpcm.DescribeVpcsRequest(region_id=REGION, vpc_id=vpc_id))
                .body.vpcs.vpc[0]
                .status
                == "Available"
            ),
        )
        vsw = vpc.create_vswitch(
            vpcm.CreateVSwitchRequest(
                region_id=REGION, vpc_id=vpc_id, zone_id="cn-beijing-a", cidr_block="10.0.0.0/24"
            )
        ).body.v_switch_id
        wait_for(
            "vsw",
            lambda: (
                vpc.describe_vswitches(vpcm.DescribeVSwitchesRequest(region_id=REGION, v_switch_id=vsw))
                .body.v_switches.v_switch[0]
                .status
                == "Available"
            ),
        )
        group = client.create_security_group(
            ecs.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc_id)
        ).body.security_group_id
        kept = client.run_instances(
            ecs.RunInstancesRequest(
                region_id=REGION,
                image_id=PUBLIC_IMAGE_ID,
                instance_type="ecs.g6.large",
                security_group_id=group,
                v_switch_id=vsw,
                client_token="durable-run",
            )
        ).body.instance_id_sets.instance_id_set[0]
        wait_for("Running", lambda: instance_status(client, kept) == "Running")
        stopped = client.run_instances(
            ecs.RunInstancesRequest(
                region_id=REGION,
                image_id=PUBLIC_IMAGE_ID,
                instance_type="ecs.g6.large",
                security_group_id=group,
                v_switch_id=vsw,
            )
        ).body.instance_id_sets.instance_id_set[0]
        wait_for("Running", lambda: instance_status(client, stopped) == "Running")
        client.stop_instance(ecs.StopInstanceRequest(instance_id=stopped))
        wait_for("Stopped", lambda: instance_status(client, stopped) == "Stopped")
        client.create_key_pair(ecs.CreateKeyPairRequest(region_id=REGION, key_pair_name="durable"))
        if how == "kill-9":
            first.kill()
        else:
            first.stop()
        assert not first.alive()
    with start(state, runner="none") as second:
        client, vpc = EcsClient(config(second)), VpcClient(config(second))
        assert (
            vpc.describe_vpcs(vpcm.DescribeVpcsRequest(region_id=REGION, vpc_id=vpc_id))
            .body.vpcs.vpc[0]
            .status
            == "Available"
        )
        assert (
            client.describe_key_pairs(
                ecs.DescribeKeyPairsRequest(region_id=REGION, key_pair_name="durable")
            ).body.total_count
            == 1
        )
        wait_for("comes back Running", lambda: instance_status(client, kept) == "Running")
        assert instance_status(client, stopped) == "Stopped"
        again = client.run_instances(
            ecs.RunInstancesRequest(
                region_id=REGION,
                image_id=PUBLIC_IMAGE_ID,
                instance_type="ecs.g6.large",
                security_group_id=group,
                v_switch_id=vsw,
                client_token="durable-run",
            )
        ).body
        assert again.instance_id_sets.instance_id_set == [kept]  # ClientToken remembered across the restart
    rows = sqlite3.connect(state / "localcloud.sqlite3").execute("SELECT data FROM resources").fetchall()
    assert all("PrivateKeyBody" not in json.loads(r[0]) for r in rows)


def test_second_server_on_same_state_is_refused(state_root: Path) -> None:
    state = state_root / "locked"
    with start(state, runner="none"):
        with pytest.raises(KilnError, match="exited at start"):
            start(state, runner="none", timeout=20)
        assert "another localcloud already serves" in (state / "server.log").read_text()
