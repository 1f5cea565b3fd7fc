"""The seed's workflow driven by hand through the official Tea SDK (no kiln builder involved)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_vpc20160428 import models as vpcm
from alibabacloud_vpc20160428.client import Client as VpcClient

from kiln.localcloud.model.images import PUBLIC_IMAGE_ID
from kiln.localcloud.sdkcalls import instance_status, vpc_status, vswitch_status

REGION = "cn-beijing"
ALL_IMAGE_STATUSES = "Creating,Waiting,Available,UnAvailable,CreateFailed"


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 120.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def eip_status(vpc: VpcClient, allocation_id: str) -> str:
    return str(
        vpc.describe_eip_addresses(
            vpcm.DescribeEipAddressesRequest(region_id=REGION, allocation_id=allocation_id)
        )
        .body.eip_addresses.eip_address[0]
        .status
    )


@dataclass
class Built:
    key_pair: str
    private_key: str
    vpc_id: str
    vswitch_id: str
    group_id: str
    instance_id: str
    allocation_id: str
    address: str
    image_id: str = ""
    timings: dict[str, float] = field(default_factory=dict)


def build_up(
    client: EcsClient,
    vpc: VpcClient,
    suffix: str,
    image_name: str,
    user_data: str | None = None,
    data_disks: list[ecs.RunInstancesRequestDataDisk] | None = None,
) -> Built:
    """DescribeImages .. StartInstance, as Packer's alicloud-ecs builder does, waiting where it waits."""
    images = client.describe_images(
        ecs.DescribeImagesRequest(region_id=REGION, image_id=PUBLIC_IMAGE_ID, image_owner_alias="system")
    ).body
    assert images.total_count == 1 and images.images.image[0].status == "Available"
    taken = client.describe_images(
        ecs.DescribeImagesRequest(region_id=REGION, image_name=image_name, status=ALL_IMAGE_STATUSES)
    ).body
    assert taken.total_count == 0
    pair = client.create_key_pair(
        ecs.CreateKeyPairRequest(region_id=REGION, key_pair_name=f"packer_{suffix}")
    ).body
    assert pair.private_key_body.startswith("-----BEGIN RSA PRIVATE KEY-----")
    vpc_id = vpc.create_vpc(
        vpcm.CreateVpcRequest(region_id=REGION, cidr_block="172.16.0.0/16", vpc_name=f"vpc-{suffix}")
    ).body.vpc_id
    wait_for("VPC Available", lambda: vpc_status(vpc, vpc_id) == "Available")
    zones = client.describe_zones(ecs.DescribeZonesRequest(region_id=REGION)).body.zones.zone
    zone = next(z.zone_id for z in zones if "VSwitch" in z.available_resource_creation.resource_types)
    vsw_id = vpc.create_vswitch(
        vpcm.CreateVSwitchRequest(
            region_id=REGION,
            vpc_id=vpc_id,
            zone_id=zone,
            cidr_block="172.16.0.0/24",
            v_switch_name=f"vsw-{suffix}",
        )
    ).body.v_switch_id
    wait_for("vSwitch Available", lambda: vswitch_status(vpc, vsw_id) == "Available")
    group = client.create_security_group(
        ecs.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc_id, security_group_name=f"sg-{suffix}")
    ).body.security_group_id
    client.authorize_security_group_egress(
        ecs.AuthorizeSecurityGroupEgressRequest(
            region_id=REGION,
            security_group_id=group,
            ip_protocol="all",
            port_range="-1/-1",
            dest_cidr_ip="0.0.0.0/0",
            nic_type="internet",
        )
    )
    client.authorize_security_group(
        ecs.AuthorizeSecurityGroupRequest(
            region_id=REGION,
            security_group_id=group,
            ip_protocol="tcp",
            port_range="22/22",
            source_cidr_ip="0.0.0.0/0",
            nic_type="internet",
        )
    )
    began = time.monotonic()
    run = ecs.RunInstancesRequest(
        region_id=REGION,
        image_id=PUBLIC_IMAGE_ID,
        instance_type="ecs.t5-lc1m1.small",
        security_group_id=group,
        v_switch_id=vsw_id,
        zone_id=zone,
        internet_charge_type="PayByTraffic",
        internet_max_bandwidth_out=5,
        io_optimized="optimized",
        system_disk=ecs.RunInstancesRequestSystemDisk(category="cloud_efficiency", size=20),
        client_token=f"run-{suffix}",
        user_data=user_data,
        tag=[ecs.RunInstancesRequestTag(key="build", value=suffix)],
        data_disk=data_disks,
    )
    instance_id = client.run_instances(run).body.instance_id_sets.instance_id_set[0]
    wait_for("instance Running", lambda: instance_status(client, instance_id) == "Running", timeout=300)
    timings = {"first_running": time.monotonic() - began}
    client.stop_instance(ecs.StopInstanceRequest(instance_id=instance_id))
    wait_for("instance Stopped", lambda: instance_status(client, instance_id) == "Stopped", timeout=300)
    eip = vpc.allocate_eip_address(
        vpcm.AllocateEipAddressRequest(region_id=REGION, bandwidth="5", internet_charge_type="PayByTraffic")
    ).body
    vpc.associate_eip_address(
        vpcm.AssociateEipAddressRequest(
            region_id=REGION,
            allocation_id=eip.allocation_id,
            instance_id=instance_id,
            instance_type="EcsInstance",
        )
    )
    wait_for("EIP InUse", lambda: eip_status(vpc, eip.allocation_id) == "InUse")
    attached = client.attach_key_pair(
        ecs.AttachKeyPairRequest(
            region_id=REGION, key_pair_name=pair.key_pair_name, instance_ids=json.dumps([instance_id])
        )
    ).body
    assert attached.fail_count == "0"
    began = time.monotonic()
    client.start_instance(ecs.StartInstanceRequest(instance_id=instance_id))
    wait_for("instance Running", lambda: instance_status(client, instance_id) == "Running", timeout=300)
    timings["second_running"] = time.monotonic() - began
    described = client.describe_instances(
        ecs.DescribeInstancesRequest(region_id=REGION, instance_ids=json.dumps([instance_id]))
    ).body.instances.instance[0]
    assert described.eip_address.ip_address == eip.eip_address
    assert described.key_pair_name == pair.key_pair_name
    return Built(
        pair.key_pair_name,
        pair.private_key_body,
        vpc_id,
        vsw_id,
        group,
        instance_id,
        eip.allocation_id,
        eip.eip_address,
        timings=timings,
    )


def start_from_image(client: EcsClient, built: Built, image_id: str) -> tuple[str, str]:
    """An instance of `image_id` in the built instance's vSwitch and security group, with its key pair,
    Running and with a public IP: (instance id, address)."""
    run = ecs.RunInstancesRequest(
        region_id=REGION,
        image_id=image_id,
        instance_type="ecs.t5-lc1m1.small",
        security_group_id=built.group_id,
        v_switch_id=built.vswitch_id,
        key_pair_name=built.key_pair,
    )
    instance = str(client.run_instances(run).body.instance_id_sets.instance_id_set[0])
    wait_for("Running", lambda: instance_status(client, instance) == "Running", timeout=300)
    address = client.allocate_public_ip_address(
        ecs.AllocatePublicIpAddressRequest(instance_id=instance)
    ).body.ip_address
    return instance, str(address)


def make_image(client: EcsClient, built: Built, image_name: str) -> str:
    client.stop_instance(ecs.StopInstanceRequest(instance_id=built.instance_id))
    wait_for("instance Stopped", lambda: instance_status(client, built.instance_id) == "Stopped", timeout=300)
    image_id = client.create_image(
        ecs.CreateImageRequest(region_id=REGION, instance_id=built.instance_id, image_name=image_name)
    ).body.image_id

    def available() -> bool:
        found = client.describe_images(
            ecs.DescribeImagesRequest(region_id=REGION, image_id=image_id, status=ALL_IMAGE_STATUSES)
        ).body.images.image
        assert found and found[0].status in ("Creating", "Available"), found
        return bool(found[0].status == "Available")

    wait_for("image Available", available, timeout=600)
    built.image_id = image_id
    return str(image_id)


def tear_down(client: EcsClient, vpc: VpcClient, built: Built, delete_image: bool = True) -> None:
    """Packer's cleanup order, then the image and its snapshot (what `-force` deletes)."""
    client.detach_key_pair(
        ecs.DetachKeyPairRequest(
            region_id=REGION, key_pair_name=built.key_pair, instance_ids=json.dumps([built.instance_id])
        )
    )
    vpc.unassociate_eip_address(
        vpcm.UnassociateEipAddressRequest(
            region_id=REGION, allocation_id=built.allocation_id, instance_id=built.instance_id
        )
    )
    wait_for("EIP Available", lambda: eip_status(vpc, built.allocation_id) == "Available")
    vpc.release_eip_address(
        vpcm.ReleaseEipAddressRequest(region_id=REGION, allocation_id=built.allocation_id)
    )
    client.delete_instance(ecs.DeleteInstanceRequest(instance_id=built.instance_id, force=True))
    client.delete_security_group(
        ecs.DeleteSecurityGroupRequest(region_id=REGION, security_group_id=built.group_id)
    )
    vpc.delete_vswitch(vpcm.DeleteVSwitchRequest(region_id=REGION, v_switch_id=built.vswitch_id))
    vpc.delete_vpc(vpcm.DeleteVpcRequest(region_id=REGION, vpc_id=built.vpc_id))
    client.delete_key_pairs(
        ecs.DeleteKeyPairsRequest(region_id=REGION, key_pair_names=json.dumps([built.key_pair]))
    )
    if delete_image and built.image_id:
        image = client.describe_images(
            ecs.DescribeImagesRequest(region_id=REGION, image_id=built.image_id)
        ).body.images.image[0]
        snapshots = [m.snapshot_id for m in image.disk_device_mappings.disk_device_mapping]
        client.delete_image(ecs.DeleteImageRequest(region_id=REGION, image_id=built.image_id, force=True))
        for sid in snapshots:
            client.delete_snapshot(ecs.DeleteSnapshotRequest(snapshot_id=sid))


def leftovers(client: EcsClient, vpc: VpcClient, built: Built) -> list[str]:
    """Every resource of this build that still exists, by id."""
    left: list[str] = []
    if client.describe_instances(
        ecs.DescribeInstancesRequest(region_id=REGION, instance_ids=json.dumps([built.instance_id]))
    ).body.instances.instance:
        left.append(built.instance_id)
    if vpc.describe_vpcs(vpcm.DescribeVpcsRequest(region_id=REGION, vpc_id=built.vpc_id)).body.vpcs.vpc:
        left.append(built.vpc_id)
    if vpc.describe_vswitches(
        vpcm.DescribeVSwitchesRequest(region_id=REGION, v_switch_id=built.vswitch_id)
    ).body.v_switches.v_switch:
        left.append(built.vswitch_id)
    groups = client.describe_security_groups(
        ecs.DescribeSecurityGroupsRequest(region_id=REGION, security_group_id=built.group_id)
    ).body
    if groups.security_groups.security_group:
        left.append(built.group_id)
    if vpc.describe_eip_addresses(
        vpcm.DescribeEipAddressesRequest(region_id=REGION, allocation_id=built.allocation_id)
    ).body.eip_addresses.eip_address:
        left.append(built.allocation_id)
    if client.describe_key_pairs(
        ecs.DescribeKeyPairsRequest(region_id=REGION, key_pair_name=built.key_pair)
    ).body.key_pairs.key_pair:
        left.append(built.key_pair)
    if (
        built.image_id
        and client.describe_images(
            ecs.DescribeImagesRequest(region_id=REGION, image_id=built.image_id, status=ALL_IMAGE_STATUSES)
        ).body.images.image
    ):
        left.append(built.image_id)
    snaps = client.describe_snapshots(
        ecs.DescribeSnapshotsRequest(region_id=REGION, disk_id=None, instance_id=None)
    ).body.snapshots.snapshot
    left.extend(s.snapshot_id for s in snaps if s.snapshot_name == f"auto_{built.image_id}")
    return left
