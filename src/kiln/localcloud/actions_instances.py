"""Instances, their disks, and key pairs."""

from __future__ import annotations

import fnmatch
import ipaddress
import time
from collections.abc import Callable
from typing import Any

from kiln.localcloud.actions_network import match_tags, page, public, tags_view, unbind_eip
from kiln.localcloud.cloud import Call, Cloud, action
from kiln.localcloud.images import find_image
from kiln.localcloud.store import new_id
from kiln.localcloud.wire import ApiError, incorrect_status, invalid

INSTANCE_SIZES = {"small": (1, 1024), "medium": (1, 2048), "large": (2, 2048), "xlarge": (4, 4096)}


def _size_of(instance_type: str) -> tuple[int, int]:
    """(cpus, memory MB) from the type's last word; kept small because these are real machines."""
    return INSTANCE_SIZES.get(instance_type.rsplit(".", 1)[-1], (1, 1024))


def _next_private_ip(cloud: Cloud, vsw: dict[str, Any]) -> str:
    net = ipaddress.IPv4Network(vsw["CidrBlock"])
    vsw["_next_ip"] = int(vsw.get("_next_ip", 0)) + 1
    cloud.put(vsw)
    hosts = max(net.num_addresses - 4, 1)
    return str(net.network_address + 1 + (vsw["_next_ip"] + 2) % hosts)


def _data_disks(call: Call) -> list[dict[str, Any]]:
    disks = []
    for n, d in enumerate(call.structs("DataDisk")[:16]):
        size = d.get("Size") or "20"
        if not size.isdigit() or int(size) < 1:
            raise invalid(f"DataDisk.{n + 1}.Size", "must be a positive integer")
        disks.append(
            {
                "DiskId": new_id("d-"),
                "Size": int(size),
                "Category": d.get("Category", "cloud_efficiency"),
                "DeleteWithInstance": d.get("DeleteWithInstance", "true").lower() != "false",
                "DiskName": d.get("DiskName", ""),
                "Device": f"/dev/xvd{chr(ord('b') + n)}",
            }
        )
    return disks


def view(cloud: Cloud, inst: dict[str, Any]) -> dict[str, Any]:
    out = public(inst)
    if out["Status"] == "Starting" and inst.get("_pending_until", 0) > time.time():
        out["Status"] = "Pending"
    out["PublicIpAddress"] = {"IpAddress": list(inst.get("PublicIpAddress", []))}
    out["Tags"] = tags_view(inst)
    return out


def _new_instance(cloud: Cloud, call: Call, region: str) -> dict[str, Any]:
    image = find_image(cloud, region, call.get("ImageId"), call.get("ImageFamily"))
    if image["Status"] != "Available":
        raise ApiError(
            400, "InvalidImageId.NotFound", f"The specified ImageId is not available. ({image['ImageId']})"
        )
    instance_type = call.require("InstanceType")
    if not instance_type.startswith("ecs."):
        raise ApiError(
            400,
            "InvalidInstanceType.ValueNotSupported",
            f"The specified InstanceType does not exist or is not supported. ({instance_type})",
        )
    vsw = cloud.find("vswitch", call.require("VSwitchId"), region, "VSwitchId")
    if vsw["Status"] != "Available":
        raise ApiError(
            400,
            "IncorrectVSwitchStatus",
            "The current status of the vSwitch does not support this operation.",
        )
    zone = call.get("ZoneId")
    if zone is not None and zone != vsw["ZoneId"]:
        raise ApiError(
            400, "InvalidVSwitchId.NotBelongToZone", f"The specified vSwitch is not in zone {zone}."
        )
    group_ids = call.values("SecurityGroupIds") or [call.require("SecurityGroupId")]
    for gid in group_ids:
        group = cloud.find("sg", gid, region, "SecurityGroupId")
        if group["VpcId"] and group["VpcId"] != vsw["VpcId"]:
            raise ApiError(
                400,
                "InvalidSecurityGroupId.NotBelongToVpc",
                f"The security group {gid} is not in the vSwitch's VPC.",
            )
    key_name = call.get("KeyPairName")
    if key_name is not None and cloud.store.get("keypair", f"{region}/{key_name}") is None:
        raise ApiError(
            404, "InvalidKeyPairName.NotFound", f"The specified KeyPairName does not exist. ({key_name})"
        )
    disk_size = call.integer("SystemDisk.Size", max(int(image.get("Size", 20)), 20), low=20, high=2048)
    if disk_size < int(image.get("Size", 20)):
        raise ApiError(
            400, "InvalidSystemDiskSize.ImageNotSupported", "The system disk is smaller than the image."
        )
    user_data = call.user_data()
    bandwidth = call.integer("InternetMaxBandwidthOut", 0, low=0, high=1024)
    tags = call.tags()
    data_disks = _data_disks(call)
    # Everything is checked: only now may the request take a private address of the vSwitch.
    private_ip = _next_private_ip(cloud, vsw)
    cpus, memory = _size_of(instance_type)
    iid = new_id("i-")
    name = call.get("InstanceName", iid) or iid
    return cloud.new(
        "instance",
        iid,
        region,
        InstanceId=iid,
        InstanceName=name,
        HostName=call.get("HostName", f"iZ{iid[2:]}Z"),
        Description=call.get("Description", ""),
        ZoneId=vsw["ZoneId"],
        Status="Pending",
        InstanceType=instance_type,
        Cpu=cpus,
        Memory=memory,
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
        EipAddress={"AllocationId": "", "IpAddress": "", "Bandwidth": 0, "InternetChargeType": ""},
        InternetChargeType=call.get("InternetChargeType", "PayByTraffic"),
        InternetMaxBandwidthOut=bandwidth,
        IoOptimized=True,
        InstanceChargeType=call.get("InstanceChargeType", "PostPaid"),
        InstanceNetworkType="vpc",
        StoppedMode="Not-applicable",
        Tags=tags,
        StartTime="",
        ExpiredTime="2099-12-31T15:59Z",
        _image_file=image.get("_file"),
        _user_data=user_data,
        _disk_id=new_id("d-"),
        _disk_size=disk_size,
        _disk_category=call.get("SystemDisk.Category", "cloud_efficiency"),
        _data_disks=data_disks,
        _has_password=call.get("Password") is not None,
    )


@action("RunInstances")
async def run_instances(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    amount = call.integer("Amount", 1, low=1, high=100)
    ids = []
    for _ in range(amount):
        inst = _new_instance(cloud, call, region)
        inst["StartTime"] = inst["CreationTime"]
        cloud.put(inst)
        cloud.start_instance(inst, extra_seconds=cloud.profile.instance_create)
        ids.append(inst["InstanceId"])
    return {"InstanceIdSets": {"InstanceIdSet": ids}, "OrderId": "", "TradePrice": 0.0}


@action("CreateInstance")
async def create_instance(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    inst = _new_instance(cloud, call, region)
    cloud.later(inst, "Pending", "Stopped", cloud.profile.instance_create)
    cloud.put(inst)
    return {"InstanceId": inst["InstanceId"], "OrderId": "", "TradePrice": 0.0}


def _instance(cloud: Cloud, call: Call) -> dict[str, Any]:
    return cloud.find("instance", call.require("InstanceId"), call.region, "InstanceId")


@action("StartInstance")
async def start_instance(cloud: Cloud, call: Call) -> dict[str, Any]:
    inst = _instance(cloud, call)
    if inst["Status"] != "Stopped":
        raise incorrect_status(inst["InstanceId"], inst["Status"])
    inst["StartTime"] = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())
    cloud.start_instance(inst)
    return {}


@action("StopInstance")
async def stop_instance(cloud: Cloud, call: Call) -> dict[str, Any]:
    inst = _instance(cloud, call)
    if inst["Status"] != "Running":
        raise incorrect_status(inst["InstanceId"], inst["Status"])
    inst["StoppedMode"] = call.get("StoppedMode", "KeepCharging")
    cloud.stop_instance(inst, force=call.flag("ForceStop"))
    return {}


@action("RebootInstance")
async def reboot_instance(cloud: Cloud, call: Call) -> dict[str, Any]:
    inst = _instance(cloud, call)
    if inst["Status"] != "Running":
        raise incorrect_status(inst["InstanceId"], inst["Status"])
    cloud.stop_instance(inst, force=call.flag("ForceStop"))
    cloud.start_instance(inst)
    return {}


async def _delete(cloud: Cloud, inst: dict[str, Any], force: bool) -> None:
    status = inst["Status"]
    if status == "Pending" or (status == "Starting" and inst.get("_pending_until", 0) > time.time()):
        raise ApiError(
            403, "IncorrectInstanceStatus.Initializing", "The instance is being initialized; try again later."
        )
    if status != "Stopped" and not force:
        raise incorrect_status(inst["InstanceId"], status)
    if inst["EipAddress"].get("AllocationId"):
        eip = cloud.store.get("eip", inst["EipAddress"]["AllocationId"])
        if eip is not None:
            await unbind_eip(cloud, eip, timed=False)
    for address in inst.get("PublicIpAddress", []):
        await cloud.forwarder.close(address)
    cloud.store.delete("instance", inst["InstanceId"])
    cloud.destroy_instance(inst)


@action("DeleteInstance")
async def delete_instance(cloud: Cloud, call: Call) -> dict[str, Any]:
    await _delete(cloud, _instance(cloud, call), call.flag("Force"))
    return {}


@action("DeleteInstances")
async def delete_instances(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    found = [cloud.find("instance", iid, region, "InstanceId") for iid in call.values("InstanceId")]
    if not found:
        raise ApiError(
            400,
            "MissingParameter",
            'The input parameter "InstanceId" that is mandatory for processing this request is not supplied.',
        )
    for inst in found:
        await _delete(cloud, inst, call.flag("Force"))
    return {}


def _filtered(cloud: Cloud, call: Call, region: str) -> list[dict[str, Any]]:
    """Only the filters the request gives are checked: listing 1,000 instances stays cheap."""
    checks: list[Callable[[dict[str, Any]], bool]] = []
    ids = set(call.values("InstanceIds"))
    if ids:
        checks.append(lambda i: i["InstanceId"] in ids)
    for key in ("ZoneId", "ImageId", "InstanceType", "KeyPairName"):
        wanted = call.get(key)
        if wanted is not None:
            checks.append(lambda i, k=key, w=wanted: i.get(k) == w)  # type: ignore[misc]
    status, name = call.get("Status"), call.get("InstanceName")
    if status is not None:
        checks.append(lambda i: view(cloud, i)["Status"] == status)
    if name is not None:
        checks.append(lambda i: fnmatch.fnmatchcase(i["InstanceName"], name))
    vpc_id, vsw_id, sg_id = call.get("VpcId"), call.get("VSwitchId"), call.get("SecurityGroupId")
    if vpc_id:
        checks.append(lambda i: i["VpcAttributes"]["VpcId"] == vpc_id)
    if vsw_id:
        checks.append(lambda i: i["VpcAttributes"]["VSwitchId"] == vsw_id)
    if sg_id:
        checks.append(lambda i: sg_id in i["SecurityGroupIds"]["SecurityGroupId"])
    eips, publics = set(call.values("EipAddresses")), set(call.values("PublicIpAddresses"))
    if eips:
        checks.append(lambda i: i["EipAddress"].get("IpAddress") in eips)
    if publics:
        checks.append(lambda i: bool(publics & set(i.get("PublicIpAddress", []))))
    if call.tags():
        checks.append(lambda i: match_tags(call, i))
    return [i for i in cloud.items("instance", region) if all(check(i) for check in checks)]


@action("DescribeInstances")
async def describe_instances(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    chunk, paging = page(call, _filtered(cloud, call, region), high=100)
    return {"Instances": {"Instance": [view(cloud, i) for i in chunk]}, **paging, "NextToken": ""}


@action("DescribeInstanceStatus")
async def describe_instance_status(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    ids = set(call.values("InstanceId"))
    found = [i for i in cloud.items("instance", region) if not ids or i["InstanceId"] in ids]
    zone = call.get("ZoneId")
    found = [i for i in found if zone is None or i["ZoneId"] == zone]
    chunk, paging = page(call, found, high=50)
    statuses = [{"InstanceId": i["InstanceId"], "Status": view(cloud, i)["Status"]} for i in chunk]
    return {"InstanceStatuses": {"InstanceStatus": statuses}, **paging}


@action("DescribeInstanceAttribute")
async def describe_instance_attribute(cloud: Cloud, call: Call) -> dict[str, Any]:
    return view(cloud, _instance(cloud, call))


@action("DescribeDisks")
async def describe_disks(cloud: Cloud, call: Call) -> dict[str, Any]:
    """System disks, and data disks as records (the machine underneath has its system disk only)."""
    region = call.require_region()
    wanted_instance = call.get("InstanceId")
    ids = set(call.values("DiskIds"))
    disk_type = (call.get("DiskType", "all") or "all").lower()
    disks = []
    for inst in cloud.items("instance", region):
        if wanted_instance is not None and inst["InstanceId"] != wanted_instance:
            continue
        system = {
            "DiskId": inst["_disk_id"],
            "DiskName": "",
            "Type": "system",
            "Category": inst["_disk_category"],
            "Size": inst["_disk_size"],
            "Device": "/dev/xvda",
            "DeleteWithInstance": True,
            "ImageId": inst["ImageId"],
        }
        data = [{**d, "Type": "data", "ImageId": ""} for d in inst.get("_data_disks", [])]
        for disk in [system, *data]:
            if disk_type not in ("all", disk["Type"]) or (ids and disk["DiskId"] not in ids):
                continue
            disks.append(
                {
                    **disk,
                    "InstanceId": inst["InstanceId"],
                    "Status": "In_use",
                    "Portable": disk["Type"] == "data",
                    "RegionId": region,
                    "ZoneId": inst["ZoneId"],
                    "CreationTime": inst["CreationTime"],
                    "Encrypted": False,
                    "Tags": {"Tag": []},
                }
            )
    chunk, paging = page(call, disks, high=100)
    return {"Disks": {"Disk": chunk}, **paging}
