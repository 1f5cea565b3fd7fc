"""Instances: create, start, stop, reboot, delete, describe."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping
from typing import Any

from kiln.localcloud import errors
from kiln.localcloud.actions.disks import MAX_DATA_DISKS, attach_new_disks, disk_spec, release_disks
from kiln.localcloud.actions.eips import NO_EIP, unbind_eip
from kiln.localcloud.api import views
from kiln.localcloud.api.describe import AnyOf, Describe, Equals, Glob, Overlaps, Tags, Where
from kiln.localcloud.api.registry import ECS, Json, action
from kiln.localcloud.api.request import Call
from kiln.localcloud.model import lifecycle
from kiln.localcloud.model.cloud import Cloud, Res
from kiln.localcloud.model.images import find_image
from kiln.localcloud.model.instance_types import DISK_CATEGORIES, TYPES
from kiln.localcloud.store import new_id

Item = Mapping[str, Any]


def _next_private_ip(cloud: Cloud, vsw: Res) -> str:
    net = ipaddress.IPv4Network(vsw["CidrBlock"])
    vsw["_next_ip"] = int(vsw["_next_ip"]) + 1
    cloud.put(vsw)
    hosts = max(net.num_addresses - 4, 1)
    return str(net.network_address + 1 + (vsw["_next_ip"] + 2) % hosts)


def _data_disks(cloud: Cloud, call: Call, region: str, image: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The data disks the instance is made with: its image's (from their snapshots), then DataDisk.N."""
    given = call.structs("DataDisk")
    mappings = image.get("_data_mappings") or []
    if len(given) + len(mappings) > MAX_DATA_DISKS:
        raise errors.invalid("DataDisk.N", f"allows at most {MAX_DATA_DISKS} data disks")
    specs = [
        disk_spec(
            cloud, {"SnapshotId": m["SnapshotId"], "Size": str(m["Size"]), "Device": m["Device"]}, region, ""
        )
        for m in mappings
    ]
    specs += [disk_spec(cloud, d, region, f"DataDisk.{n}.") for n, d in enumerate(given, 1)]
    devices = [s["Device"] for s in specs if s["Device"]]
    if len(devices) != len(set(devices)):
        raise errors.invalid("DataDisk.N.Device", "names a device twice")
    return specs


def _new_instance(cloud: Cloud, call: Call, region: str) -> tuple[Res, list[dict[str, Any]]]:
    """The instance asked for, and the data disks it is to be made with (checked, not yet made)."""
    image = find_image(cloud, region, call.get("ImageId"), call.get("ImageFamily"))
    if image["Status"] != "Available":
        raise errors.IMAGE_NOT_AVAILABLE(image["ImageId"])
    instance_type = call.require("InstanceType")
    offered = TYPES.get(instance_type)
    if offered is None:
        raise errors.INSTANCE_TYPE_NOT_SUPPORTED(instance_type)
    vsw = cloud.find("vswitch", call.require("VSwitchId"), region)
    if vsw["Status"] != "Available":
        raise errors.INCORRECT_VSWITCH_STATUS(f"{vsw['VSwitchId']} is {vsw['Status']}")
    zone = call.get("ZoneId")
    if zone is not None and zone != vsw["ZoneId"]:
        raise errors.VSWITCH_NOT_IN_ZONE(vsw["VSwitchId"], zone=zone)
    group_ids = call.values("SecurityGroupIds") or [call.require("SecurityGroupId")]
    for gid in group_ids:
        group = cloud.find("sg", gid, region)
        if group["VpcId"] and group["VpcId"] != vsw["VpcId"]:
            raise errors.SECURITY_GROUP_NOT_IN_VPC(group=gid)
    key_name = call.get("KeyPairName")
    if key_name is not None:
        cloud.find("keypair", key_name, region)
    image_size = int(image.get("Size", 20))
    disk_size = call.integer("SystemDisk.Size", max(image_size, 20), low=20, high=2048)
    if disk_size < image_size:
        raise errors.SYSTEM_DISK_TOO_SMALL(f"{disk_size} GB < {image_size} GB")
    if call.text("SystemDisk.Category", "cloud_efficiency") not in DISK_CATEGORIES:
        raise errors.SYSTEM_DISK_CATEGORY_NOT_SUPPORTED(call.text("SystemDisk.Category"))
    user_data = call.user_data()
    bandwidth = call.integer("InternetMaxBandwidthOut", 0, low=0, high=1024)
    tags = call.tags()
    data_disks = _data_disks(cloud, call, region, image)
    # Everything is checked: only now may the request take a private address of the vSwitch.
    private_ip = _next_private_ip(cloud, vsw)
    iid = new_id("i-")
    return (
        cloud.new(
            "instance",
            iid,
            region,
            CreationTime=time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),  # minutes, as documented
            InstanceId=iid,
            InstanceName=call.text("InstanceName", iid),
            HostName=call.text("HostName", f"iZ{iid[2:]}Z"),
            Description=call.text("Description"),
            ZoneId=vsw["ZoneId"],
            Status="Pending",
            InstanceType=instance_type,
            Cpu=offered.cpus,
            Memory=int(offered.memory_gib * 1024),
            ImageId=image["ImageId"],
            OSType="linux",
            OSName=image.get("OSName", "Debian 12"),
            KeyPairName=key_name or "",
            SecurityGroupIds={"SecurityGroupId": group_ids},
            VpcAttributes={
                "VpcId": vsw["VpcId"],
                "VSwitchId": vsw["VSwitchId"],
                "PrivateIpAddress": {"IpAddress": [private_ip]},
                "NatIpAddress": "",
            },
            PublicIpAddress=[],
            EipAddress=dict(NO_EIP),
            InternetChargeType=call.text("InternetChargeType", "PayByTraffic"),
            InternetMaxBandwidthOut=bandwidth,
            IoOptimized=True,
            InstanceChargeType=call.text("InstanceChargeType", "PostPaid"),
            InstanceNetworkType="vpc",
            StoppedMode="Not-applicable",
            Tags=tags,
            StartTime="",
            ExpiredTime="2099-12-31T15:59Z",
            _image_file=image.get("_file"),
            _user_data=user_data,
            _disk_id=new_id("d-"),
            _disk_size=disk_size,
            _disk_category=call.text("SystemDisk.Category", "cloud_efficiency"),
            _has_password=call.get("Password") is not None,
        ),
        data_disks,
    )


@action("RunInstances", ECS)
async def run_instances(cloud: Cloud, call: Call) -> Json:
    region = call.require_region()
    amount = call.integer("Amount", 1, low=1, high=100)
    ids = []
    for _ in range(amount):
        inst, data_disks = _new_instance(cloud, call, region)
        inst["StartTime"] = inst["CreationTime"]
        cloud.put(inst)
        attach_new_disks(cloud, inst, data_disks)
        cloud.start_instance(inst, extra_seconds=cloud.profile.instance_create)
        ids.append(inst["InstanceId"])
    return {"InstanceIdSets": {"InstanceIdSet": ids}, "OrderId": "", "TradePrice": 0.0}


@action("CreateInstance", ECS)
async def create_instance(cloud: Cloud, call: Call) -> Json:
    region = call.require_region()
    inst, data_disks = _new_instance(cloud, call, region)
    lifecycle.begin(inst, "Pending", "Stopped", cloud.profile.instance_create)
    cloud.put(inst)
    attach_new_disks(cloud, inst, data_disks)
    return {"InstanceId": inst["InstanceId"], "OrderId": "", "TradePrice": 0.0}


def _instance(cloud: Cloud, call: Call, *allowed: str) -> Res:
    """The call's InstanceId, which must be in one of the `allowed` statuses."""
    inst = cloud.find("instance", call.require("InstanceId"), call.region)
    if allowed and inst["Status"] not in allowed:
        raise errors.INCORRECT_INSTANCE_STATUS(f"{inst['InstanceId']} is {inst['Status']}")
    return inst


@action("StartInstance", ECS)
async def start_instance(cloud: Cloud, call: Call) -> Json:
    inst = _instance(cloud, call, "Stopped")
    inst["StartTime"] = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())
    cloud.start_instance(inst)
    return {}


@action("StopInstance", ECS)
async def stop_instance(cloud: Cloud, call: Call) -> Json:
    inst = _instance(cloud, call, "Running")
    inst["StoppedMode"] = call.text("StoppedMode", "KeepCharging")
    cloud.stop_instance(inst, force=call.flag("ForceStop"))
    return {}


@action("RebootInstance", ECS)
async def reboot_instance(cloud: Cloud, call: Call) -> Json:
    inst = _instance(cloud, call, "Running")
    cloud.stop_instance(inst, force=call.flag("ForceStop"))
    cloud.start_instance(inst)
    return {}


async def _delete(cloud: Cloud, inst: Res, force: bool) -> None:
    if views.instance_status(inst) == "Pending":
        raise errors.INSTANCE_INITIALIZING(inst["InstanceId"])
    if inst["Status"] != "Stopped" and not force:
        raise errors.INCORRECT_INSTANCE_STATUS(f"{inst['InstanceId']} is {inst['Status']}")
    if inst["EipAddress"].get("AllocationId"):
        eip = cloud.get("eip", inst["EipAddress"]["AllocationId"])
        if eip is not None:
            await unbind_eip(cloud, eip, timed=False)
    for address in inst.get("PublicIpAddress", []):
        await cloud.forwarder.close(address)
    cloud.delete(inst)
    cloud.destroy_instance(inst)
    release_disks(cloud, inst)


@action("DeleteInstance", ECS)
async def delete_instance(cloud: Cloud, call: Call) -> Json:
    await _delete(cloud, _instance(cloud, call), call.flag("Force"))
    return {}


@action("DeleteInstances", ECS)
async def delete_instances(cloud: Cloud, call: Call) -> Json:
    region = call.require_region()
    found = [cloud.find("instance", iid, region) for iid in call.values("InstanceId")]
    if not found:
        raise errors.missing("InstanceId")
    for inst in found:
        await _delete(cloud, inst, call.flag("Force"))
    return {}


def _in(path: tuple[str, ...]) -> Where:
    """The instance's nested field at `path` equals the parameter named by its last part."""

    def rule(wanted: str, inst: Item) -> bool:
        value: Any = inst
        for part in path:
            value = value[part]
        return bool(wanted in value) if isinstance(value, list) else bool(value == wanted)

    return Where(path[-1], rule)


action("DescribeInstances", ECS)(
    Describe(
        "Instances.Instance",
        kind="instance",
        filters=(
            AnyOf("InstanceIds", "InstanceId"),
            Equals("ZoneId"),
            Equals("ImageId"),
            Equals("InstanceType"),
            Equals("KeyPairName"),
            Where("Status", lambda wanted, i: views.instance_status(i) == wanted),
            Glob("InstanceName"),
            _in(("VpcAttributes", "VpcId")),
            _in(("VpcAttributes", "VSwitchId")),
            _in(("SecurityGroupIds", "SecurityGroupId")),
            Overlaps("EipAddresses", lambda i: [i["EipAddress"].get("IpAddress")]),
            Overlaps("PublicIpAddresses", lambda i: i.get("PublicIpAddress", [])),
            Tags(),
        ),
        view=views.instance,
        extra=lambda cloud, call, region: {"NextToken": ""},
    )
)

action("DescribeInstanceStatus", ECS)(
    Describe(
        "InstanceStatuses.InstanceStatus",
        kind="instance",
        filters=(AnyOf("InstanceId"), Equals("ZoneId")),
        view=views.instance_status_row,
        max_page_size=50,
    )
)


@action("DescribeInstanceAttribute", ECS)
async def describe_instance_attribute(cloud: Cloud, call: Call) -> Json:
    return views.instance_attribute(cloud, _instance(cloud, call))
