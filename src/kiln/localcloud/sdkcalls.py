"""Calls through the official Tea SDK that localcloud's tests and benchmarks share: a network to run
instances in, RunInstances with the fields they all need, and the status probes they wait on.

Each caller keeps its own wait (a test fails with an AssertionError, a benchmark exits), so `network`
takes it: `wait(what, probe)` returns once `probe()` is true.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import NamedTuple

from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_vpc20160428 import models as vpcm
from alibabacloud_vpc20160428.client import Client as VpcClient

from kiln.localcloud.model.images import PUBLIC_IMAGE_ID

REGION = "cn-beijing"

Wait = Callable[[str, Callable[[], bool]], object]


class Network(NamedTuple):
    vpc_id: str
    vswitch_id: str
    group_id: str


def vpc_status(vpc: VpcClient, vpc_id: str) -> str:
    return str(
        vpc.describe_vpcs(vpcm.DescribeVpcsRequest(region_id=REGION, vpc_id=vpc_id)).body.vpcs.vpc[0].status
    )


def vswitch_status(vpc: VpcClient, vswitch_id: str) -> str:
    return str(
        vpc.describe_vswitches(vpcm.DescribeVSwitchesRequest(region_id=REGION, v_switch_id=vswitch_id))
        .body.v_switches.v_switch[0]
        .status
    )


def instance_status(client: EcsClient, instance_id: str) -> str:
    body = client.describe_instances(
        ecs.DescribeInstancesRequest(region_id=REGION, instance_ids=json.dumps([instance_id]))
    ).body
    return str(body.instances.instance[0].status)


def network(
    client: EcsClient,
    vpc: VpcClient,
    wait: Wait,
    *,
    cidr: str = "10.0.0.0/16",
    vswitch_cidr: str = "10.0.0.0/24",
    zone: str = "cn-beijing-a",
    name: str | None = None,
    vpc_id: str | None = None,
) -> Network:
    """VPC, wait Available, vSwitch, wait Available, security group. `vpc_id`: a VPC the caller has
    created already (to look at it while it is Pending); `cidr` and `name` are then not used."""
    created: str = (
        vpc.create_vpc(vpcm.CreateVpcRequest(region_id=REGION, cidr_block=cidr, vpc_name=name)).body.vpc_id
        if vpc_id is None
        else vpc_id
    )
    wait("vpc", lambda: vpc_status(vpc, created) == "Available")
    vswitch_id: str = vpc.create_vswitch(
        vpcm.CreateVSwitchRequest(region_id=REGION, vpc_id=created, zone_id=zone, cidr_block=vswitch_cidr)
    ).body.v_switch_id
    wait("vsw", lambda: vswitch_status(vpc, vswitch_id) == "Available")
    group_id: str = client.create_security_group(
        ecs.CreateSecurityGroupRequest(region_id=REGION, vpc_id=created)
    ).body.security_group_id
    return Network(created, vswitch_id, group_id)


def run_instances(client: EcsClient, vswitch_id: str, group_id: str, **extra: object) -> list[str]:
    """RunInstances of the public image (ecs.g6.large unless `extra` says otherwise); the new ids."""
    fields: dict[str, object] = {
        "region_id": REGION,
        "image_id": PUBLIC_IMAGE_ID,
        "instance_type": "ecs.g6.large",
        "security_group_id": group_id,
        "v_switch_id": vswitch_id,
        **extra,
    }
    request = ecs.RunInstancesRequest(**fields)  # type: ignore[arg-type]
    ids: list[str] = client.run_instances(request).body.instance_id_sets.instance_id_set
    return ids
