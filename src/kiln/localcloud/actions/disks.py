"""Data disks: real raw files under state/disks that an instance sees as block devices from its next
start on (CreateDisk, AttachDisk, DetachDisk, DeleteDisk), RunInstances' DataDisk.N and an image's
data disk mappings; DescribeDisks lists them with the instances' system disks."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kiln.localcloud import errors
from kiln.localcloud.api import views
from kiln.localcloud.api.describe import AnyOf, Describe, Equals, Tags, Where
from kiln.localcloud.api.registry import ECS, Json, action
from kiln.localcloud.api.request import Call
from kiln.localcloud.backend import copy_sparse
from kiln.localcloud.model import lifecycle
from kiln.localcloud.model.cloud import Cloud, Res
from kiln.localcloud.model.instance_types import DATA_DISK_GB, DISK_CATEGORIES
from kiln.localcloud.model.regions import zones_of
from kiln.localcloud.store import new_id

Item = Mapping[str, Any]
MAX_DATA_DISKS = 16
ATTACH_SECONDS = 0.5  # Attaching and Detaching last this long (the machine sees the change at its next start)
GIB = 1 << 30


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def disk_spec(cloud: Cloud, given: Mapping[str, str], region: str, where: str) -> dict[str, Any]:
    """A data disk asked for (CreateDisk's own fields, or a DataDisk.N), checked: Size, Category,
    SnapshotId, DeleteWithInstance, Device, DiskName, Description."""
    snapshot_id = given.get("SnapshotId") or ""
    from_size = 0
    if snapshot_id:
        snap = cloud.find("snapshot", snapshot_id, region)
        if snap["Status"] != "accomplished":
            raise errors.INCORRECT_SNAPSHOT_STATUS(f"{snapshot_id} is {snap['Status']}")
        from_size = int(snap["SourceDiskSize"])
    raw = given.get("Size") or str(from_size or DATA_DISK_GB[0])
    low, high = DATA_DISK_GB
    if not raw.isdigit() or not max(low, from_size) <= int(raw) <= high:
        why = f"must be an integer between {max(low, from_size)} and {high} (GiB)"
        raise (
            errors.DATA_DISK_SIZE_NOT_SUPPORTED(f"{where}Size {why}")
            if where
            else errors.invalid("Size", why)
        )
    category = given.get("Category") or given.get("DiskCategory") or "cloud_efficiency"
    if category not in DISK_CATEGORIES:
        why = f"{category}: one of {', '.join(DISK_CATEGORIES)}"
        raise (
            errors.DATA_DISK_CATEGORY_NOT_SUPPORTED(why) if where else errors.DISK_CATEGORY_NOT_SUPPORTED(why)
        )
    device = given.get("Device") or ""
    if device and not (device.startswith("/dev/xvd") and len(device) == 9 and "b" <= device[-1] <= "z"):
        raise errors.invalid(f"{where}Device", "must be /dev/xvdb .. /dev/xvdz")
    return {
        "Size": int(raw),
        "Category": category,
        "SourceSnapshotId": snapshot_id,
        "DeleteWithInstance": (given.get("DeleteWithInstance") or "true").lower() != "false",
        "Device": device,
        "DiskName": given.get("DiskName") or "",
        "Description": given.get("Description") or "",
    }


def new_disk(
    cloud: Cloud, spec: Mapping[str, Any], region: str, zone: str, tags: list[dict[str, str]]
) -> Res:
    disk_id = new_id("d-")
    return cloud.new(
        "disk",
        disk_id,
        region,
        DiskId=disk_id,
        DiskName=spec["DiskName"],
        Description=spec["Description"],
        Type="data",
        Category=spec["Category"],
        Size=spec["Size"],
        Status="Creating",
        InstanceId="",
        Device="",
        DeleteWithInstance=spec["DeleteWithInstance"],
        ZoneId=zone,
        Portable=True,
        Encrypted=False,
        ImageId="",
        SourceSnapshotId=spec["SourceSnapshotId"],
        DiskChargeType="PostPaid",
        AttachedTime="",
        DetachedTime="",
        Tags=tags,
        _file=str(cloud.disks_dir / f"{disk_id}.img"),
    )


def make_file(cloud: Cloud, disk: Mapping[str, Any]) -> None:
    """The disk's raw file: a copy of its snapshot's, or empty (sparse), of the disk's size."""
    file = Path(disk["_file"])
    snap = cloud.store.get("snapshot", disk["SourceSnapshotId"]) if disk["SourceSnapshotId"] else None
    if snap is not None and snap["_file"] and Path(snap["_file"]).exists():
        copy_sparse(Path(snap["_file"]), file)
    else:
        file.touch()
    if file.stat().st_size < disk["Size"] * GIB:
        os.truncate(file, disk["Size"] * GIB)


def free_device(cloud: Cloud, instance_id: str, wanted: str = "") -> str:
    """The device name a disk attached to the instance gets: `wanted` if free, else the first free one."""
    taken = {d["Device"] for d in cloud.items("disk") if d["InstanceId"] == instance_id}
    if wanted:
        if wanted in taken:
            raise errors.invalid("Device", f"{wanted} is taken on {instance_id}")
        return wanted
    for letter in "bcdefghijklmnopqrstuvwxyz":
        if f"/dev/xvd{letter}" not in taken:
            return f"/dev/xvd{letter}"
    raise errors.invalid("DiskId", f"{instance_id} has {MAX_DATA_DISKS} data disks already")


def attach_new_disks(cloud: Cloud, inst: Mapping[str, Any], specs: list[dict[str, Any]]) -> None:
    """Disks made with an instance (DataDisk.N, its image's data disks): attached at once, their files
    made before the instance first starts."""
    made = []
    for spec in specs:
        disk = new_disk(cloud, spec, inst["RegionId"], inst["ZoneId"], [])
        disk.update(
            Status="In_use",
            InstanceId=inst["InstanceId"],
            Device=free_device(cloud, inst["InstanceId"], spec["Device"]),
            AttachedTime=_now(),
        )
        cloud.put(disk)
        made.append(disk)

    async def work() -> None:
        for disk in made:
            make_file(cloud, disk)

    if made:
        cloud.instance_op(inst["InstanceId"], work)


def release_disks(cloud: Cloud, inst: Mapping[str, Any]) -> None:
    """The instance is deleted: its DeleteWithInstance disks go with it (after its machine), the others
    are Available again."""
    doomed = []
    for listed in cloud.data_disks_of(inst["InstanceId"]):
        disk = cloud.find("disk", listed["DiskId"], None)
        if disk["DeleteWithInstance"]:
            cloud.delete(disk)
            doomed.append(Path(disk["_file"]))
        else:
            disk.update(InstanceId="", Device="", DetachedTime=_now())
            lifecycle.reach(disk, "Available")
            cloud.put(disk)

    async def work() -> None:
        for file in doomed:
            file.unlink(missing_ok=True)

    if doomed:
        cloud.instance_op(inst["InstanceId"], work)


@action("CreateDisk", ECS)
async def create_disk(cloud: Cloud, call: Call) -> Json:
    region = call.require_region()
    instance_id = call.get("InstanceId")
    inst = cloud.find("instance", instance_id, region) if instance_id else None
    zone = inst["ZoneId"] if inst is not None else call.require("ZoneId")
    if zone not in zones_of(region):
        raise errors.ZONE_NOT_FOUND(zone)
    spec = disk_spec(cloud, call.params, region, "")
    if inst is not None:  # made and attached at once (a subscription instance's disk)
        spec["DeleteWithInstance"] = True
        attach_new_disks(cloud, inst, [spec])
        return {"DiskId": cloud.data_disks_of(inst["InstanceId"])[-1]["DiskId"], "OrderId": ""}
    spec["DeleteWithInstance"] = False  # AttachDisk says
    disk = new_disk(cloud, spec, region, zone, call.tags())
    lifecycle.begin(disk, "Creating", "Available", 0.0, wait="create")
    cloud.put(disk)
    targets = [dict(disk)]

    async def work() -> None:
        ok = True
        try:
            make_file(cloud, disk)
        except OSError:
            ok = False
        cloud.finish_targets(targets, ok)

    cloud.spawn(work())
    return {"DiskId": disk["DiskId"], "OrderId": ""}


def _disk(cloud: Cloud, call: Call, *allowed: str) -> Res:
    disk = cloud.find("disk", call.require("DiskId"), call.region)
    if allowed and disk["Status"] not in allowed:
        raise errors.INCORRECT_DISK_STATUS(f"{disk['DiskId']} is {disk['Status']}")
    return disk


def _not_a_system_disk(cloud: Cloud, call: Call, error: errors.Error = errors.DISK_NOT_PORTABLE) -> None:
    disk_id = call.get("DiskId")
    if disk_id and any(i["_disk_id"] == disk_id for i in cloud.items("instance")):
        raise error(disk_id)


@action("AttachDisk", ECS)
async def attach_disk(cloud: Cloud, call: Call) -> Json:
    _not_a_system_disk(cloud, call)
    disk = _disk(cloud, call, "Available")
    inst = cloud.find("instance", call.require("InstanceId"), disk["RegionId"])
    if inst["Status"] not in ("Running", "Stopped"):
        raise errors.INCORRECT_INSTANCE_STATUS(f"{inst['InstanceId']} is {inst['Status']}")
    if inst["ZoneId"] != disk["ZoneId"]:
        raise errors.invalid(
            "DiskId", f"{disk['DiskId']} is in {disk['ZoneId']}, the instance in {inst['ZoneId']}"
        )
    if len(cloud.data_disks_of(inst["InstanceId"])) >= MAX_DATA_DISKS:
        raise errors.invalid("InstanceId", f"{inst['InstanceId']} has {MAX_DATA_DISKS} data disks already")
    disk.update(
        InstanceId=inst["InstanceId"],
        Device=free_device(cloud, inst["InstanceId"], call.text("Device")),
        AttachedTime=_now(),
    )
    disk["DeleteWithInstance"] = call.flag("DeleteWithInstance")  # false unless given, as documented
    lifecycle.begin(disk, "Attaching", "In_use", ATTACH_SECONDS)
    cloud.put(disk)
    return {}


@action("DetachDisk", ECS)
async def detach_disk(cloud: Cloud, call: Call) -> Json:
    _not_a_system_disk(cloud, call, errors.DISK_IS_SYSTEM)
    disk = _disk(cloud, call)
    instance_id = call.require("InstanceId")
    if disk["Status"] == "Available":
        raise errors.DISK_DETACHED_ALREADY(disk["DiskId"])
    if disk["InstanceId"] != instance_id:
        raise errors.DISK_NOT_ON_INSTANCE(f"{disk['DiskId']} is on {disk['InstanceId'] or 'no instance'}")
    if disk["Status"] != "In_use":
        raise errors.INCORRECT_DISK_STATUS(f"{disk['DiskId']} is {disk['Status']}")
    if call.get("DeleteWithInstance") is not None:
        disk["DeleteWithInstance"] = call.flag("DeleteWithInstance")
    disk.update(InstanceId="", Device="", DetachedTime=_now())
    lifecycle.begin(disk, "Detaching", "Available", ATTACH_SECONDS)
    cloud.put(disk)
    return {}


@action("DeleteDisk", ECS)
async def delete_disk(cloud: Cloud, call: Call) -> Json:
    _not_a_system_disk(cloud, call)
    if cloud.get("disk", call.require("DiskId")) is None:
        return {}  # "If the specified DiskId parameter does not exist, the request is ignored."
    disk = _disk(cloud, call, "Available")
    if any(
        s["SourceDiskId"] == disk["DiskId"] and s["Status"] == "progressing" for s in cloud.items("snapshot")
    ):
        raise errors.DISK_CREATING_SNAPSHOT(disk["DiskId"])
    cloud.delete(disk)
    Path(disk["_file"]).unlink(missing_ok=True)
    return {}


def _listed(cloud: Cloud, call: Call, region: str | None) -> list[Item]:
    """The instances' system disks, then the data disks, as DescribeDisks shows them."""
    disks: list[Item] = []
    for inst in cloud.items("instance", region):
        disks.append(
            {
                "DiskId": inst["_disk_id"],
                "DiskName": "",
                "Description": "",
                "Type": "system",
                "Category": inst["_disk_category"],
                "Size": inst["_disk_size"],
                "Status": "In_use",
                "InstanceId": inst["InstanceId"],
                "Device": "/dev/xvda",
                "DeleteWithInstance": True,
                "ZoneId": inst["ZoneId"],
                "RegionId": inst["RegionId"],
                "Portable": False,
                "Encrypted": False,
                "ImageId": inst["ImageId"],
                "SourceSnapshotId": "",
                "DiskChargeType": "PostPaid",
                "CreationTime": inst["CreationTime"],
                "AttachedTime": inst["CreationTime"],
                "DetachedTime": "",
                "Tags": {"Tag": []},
            }
        )
    disks.extend(
        {**views.public(d), "Tags": views.tags(d), "Status": d["Status"]} for d in cloud.items("disk", region)
    )
    return disks


def _disk_type(wanted: str, disk: Item) -> bool:
    return wanted.lower() in ("all", disk["Type"])


action("DescribeDisks", ECS)(
    Describe(
        "Disks.Disk",
        source=_listed,
        filters=(
            Equals("InstanceId"),
            AnyOf("DiskIds", "DiskId"),
            Where("DiskType", _disk_type),
            Equals("ZoneId"),
            Equals("Status"),
            Equals("Category"),
            Equals("DiskName"),
            Equals("SnapshotId", "SourceSnapshotId"),
            Tags(),
        ),
        max_page_size=100,
    )
)
