"""Snapshots of system and data disks (an image's own, or taken with CreateSnapshot), and their files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.localcloud import errors
from kiln.localcloud.api import views
from kiln.localcloud.api.describe import AnyOf, Describe, Equals, Filter, Tags, Test, Where
from kiln.localcloud.api.registry import ECS, Json, action
from kiln.localcloud.api.request import Call
from kiln.localcloud.model import lifecycle
from kiln.localcloud.model.cloud import Cloud, Res
from kiln.localcloud.store import new_id


def new_snapshot(cloud: Cloud, region: str, file: str, disk_id: str, size: int, name: str = "") -> Res:
    sid = new_id("s-")
    return cloud.new(
        "snapshot",
        sid,
        region,
        SnapshotId=sid,
        SnapshotName=name,
        SourceDiskId=disk_id,
        SourceDiskSize=str(size),
        SourceDiskType="system",
        Progress="0%",
        Usage="none",
        Encrypted=False,
        Description="",
        Tags=[],
        _file=file,
    )


#: the instance statuses whose disk can be saved (a running one's as a point-in-time copy)
SAVING_ALLOWED = ("Stopped", "Running")


def drop_file(cloud: Cloud, file: str | None, ignore: set[str]) -> None:
    """Remove a disk file of state/images that no image or snapshot (but those in `ignore`) uses."""
    if not file or Path(file).parent != cloud.images_dir:
        return
    in_use = any(
        r.get("_file") == file and r["_id"] not in ignore
        for kind in ("image", "snapshot")
        for r in cloud.store.all(kind)
    )
    if not in_use:
        Path(file).unlink(missing_ok=True)


def snapshot_data_disk(cloud: Cloud, disk: Mapping[str, Any], name: str, seconds: float) -> Res:
    """A snapshot of a data disk, in progress until its file is copied (a point-in-time copy if its
    instance runs); stored and returned."""
    file = str(cloud.images_dir / f"{new_id('snap-', 12)}.img")
    snap = new_snapshot(cloud, disk["RegionId"], file, disk["DiskId"], disk["Size"], name)
    snap["SourceDiskType"] = "data"
    lifecycle.begin(snap, "progressing", "accomplished", seconds, wait="save")
    cloud.put(snap)
    cloud.save_data_disk(disk, [snap], Path(file))
    return snap


def _busy(cloud: Cloud, disk_id: str) -> None:
    if any(s["SourceDiskId"] == disk_id and s["Status"] == "progressing" for s in cloud.items("snapshot")):
        raise errors.DISK_CREATING_SNAPSHOT(disk_id)


@action("CreateSnapshot", ECS)
async def create_snapshot(cloud: Cloud, call: Call) -> Json:
    disk_id = call.require("DiskId")
    name = call.text("SnapshotName")
    inst = next((i for i in cloud.items("instance") if i["_disk_id"] == disk_id), None)
    if inst is None:
        disk = cloud.find("disk", disk_id, call.region)
        if disk["Status"] not in ("Available", "In_use"):
            raise errors.INCORRECT_DISK_STATUS(f"{disk_id} is {disk['Status']}")
        _busy(cloud, disk_id)
        snap = snapshot_data_disk(cloud, disk, name, cloud.profile.snapshot_create)
        snap["Tags"] = call.tags()
        cloud.put(snap)
        return {"SnapshotId": snap["SnapshotId"]}
    if inst["Status"] not in SAVING_ALLOWED:
        raise errors.INCORRECT_INSTANCE_STATUS(f"{inst['InstanceId']} is {inst['Status']}")
    _busy(cloud, disk_id)
    file = str(cloud.images_dir / f"{new_id('snap-', 12)}.img")
    snap = new_snapshot(cloud, inst["RegionId"], file, disk_id, inst["_disk_size"], name)
    snap["Tags"] = call.tags()
    lifecycle.begin(snap, "progressing", "accomplished", cloud.profile.snapshot_create, wait="save")
    cloud.put(snap)
    cloud.save_instance_disk(inst, [snap], Path(file))
    return {"SnapshotId": snap["SnapshotId"]}


@dataclass(frozen=True)
class _OfInstance(Filter):
    """InstanceId: the snapshots of that instance's disks (its system disk, the data disks on it)."""

    def test(self, cloud: Cloud, call: Call) -> Test | None:
        instance_id = call.get("InstanceId")
        if instance_id is None:
            return None
        inst = cloud.store.get("instance", instance_id)
        disks = {d["DiskId"] for d in cloud.data_disks_of(instance_id)}
        if inst is not None:
            disks.add(inst["_disk_id"])
        return lambda snap: snap["SourceDiskId"] in disks


action("DescribeSnapshots", ECS)(
    Describe(
        "Snapshots.Snapshot",
        kind="snapshot",
        filters=(
            AnyOf("SnapshotIds", "SnapshotId"),
            Equals("DiskId", "SourceDiskId"),
            Where("Status", lambda wanted, s: wanted in ("all", s["Status"])),
            Equals("SnapshotName"),
            Where("SourceDiskType", lambda wanted, s: wanted.lower() == s["SourceDiskType"]),
            Equals("Usage"),
            Where("SnapshotType", lambda wanted, s: wanted in ("all", "user")),
            _OfInstance(),
            Tags(),
        ),
        view=views.snapshot,
    )
)


@action("DeleteSnapshot", ECS)
async def delete_snapshot(cloud: Cloud, call: Call) -> Json:
    snap = cloud.find("snapshot", call.require("SnapshotId"), call.region)
    users = [i["ImageId"] for i in cloud.store.all("image") if snap["SnapshotId"] in i["_snapshots"]]
    if users:
        raise errors.SNAPSHOT_CREATED_IMAGE(users[0])
    if snap["Status"] == "progressing" and not call.flag("Force"):
        raise errors.INCORRECT_SNAPSHOT_STATUS(f"{snap['SnapshotId']} is being created")
    cloud.delete(snap)
    drop_file(cloud, snap["_file"], {snap["SnapshotId"]})
    return {}
