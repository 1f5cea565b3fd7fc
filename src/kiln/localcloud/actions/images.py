"""Images: create (from an instance or a snapshot), describe, copy, share, delete."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.localcloud import errors
from kiln.localcloud.actions.snapshots import SAVING_ALLOWED, drop_file, new_snapshot, snapshot_data_disk
from kiln.localcloud.api import views
from kiln.localcloud.api.describe import Describe, Equals, Filter, Fuzzy, Overlaps, Tags, Test
from kiln.localcloud.api.registry import ECS, Json, action
from kiln.localcloud.api.request import Call
from kiln.localcloud.model import lifecycle
from kiln.localcloud.model.cloud import Cloud, Res
from kiln.localcloud.model.images import PUBLIC_IMAGE_ID, family_latest, visible
from kiln.localcloud.model.regions import REGIONS
from kiln.localcloud.store import new_id

IMAGE_STATUSES = ("Creating", "Waiting", "Available", "UnAvailable", "CreateFailed", "Deprecated")
_IMAGE_NAME = re.compile(r"^[A-Za-z\u4e00-\u9fa5][\w.:\-\u4e00-\u9fa5]{1,127}$")
QUOTA_IMAGES = 500
BEING_MADE = ("Creating", "Waiting")


@dataclass(frozen=True)
class _Statuses(Filter):
    """Status: a comma list of the documented statuses; Available when not given, as on the cloud."""

    def test(self, cloud: Cloud, call: Call) -> Test | None:
        statuses = set(call.text("Status", "Available").split(","))
        for status in statuses:
            if status not in IMAGE_STATUSES:
                raise errors.invalid("Status", f"must be one of {', '.join(IMAGE_STATUSES)}")
        return lambda image: image["Status"] in statuses


def _visible(cloud: Cloud, call: Call, region: str | None) -> list[Mapping[str, Any]]:
    assert region is not None
    return visible(cloud, region, call.get("ImageOwnerAlias"))


def _region_field(cloud: Cloud, call: Call, region: str | None) -> Json:
    return {"RegionId": region}


action("DescribeImages", ECS)(
    Describe(
        "Images.Image",
        source=_visible,
        filters=(
            _Statuses(),
            Overlaps("ImageId", lambda i: [i["ImageId"]]),
            Fuzzy("ImageName"),
            Equals("ImageFamily"),
            Equals("OSType"),
            Equals("Architecture"),
            Overlaps("SnapshotId", lambda i: i["_snapshots"]),
            Tags(),
        ),
        view=views.image,
        newest_first=True,
        extra=_region_field,
    )
)


@action("DescribeImageFromFamily", ECS)
async def describe_image_from_family(cloud: Cloud, call: Call) -> Json:
    region = call.require_region()
    image = family_latest(cloud, region, call.require("ImageFamily"))
    return {"Image": views.image_of_family(cloud, image) if image else {}}


def check_image_name(cloud: Cloud, region: str, name: str) -> None:
    if not _IMAGE_NAME.match(name) or name.lower().startswith(("aliyun", "acs:", "http://", "https://")):
        raise errors.IMAGE_NAME_MALFORMED(name)
    if any(i["ImageName"] == name for i in cloud.items("image", region)):
        raise errors.IMAGE_NAME_DUPLICATED(name)
    if len(cloud.store.all("image")) >= QUOTA_IMAGES:
        raise errors.IMAGE_QUOTA_EXCEEDED()


def new_image(cloud: Cloud, call: Call, region: str, name: str, base: Mapping[str, Any]) -> Res:
    image_id = new_id("m-")
    return cloud.new(
        "image",
        image_id,
        region,
        ImageId=image_id,
        ImageName=name,
        ImageVersion=call.text("ImageVersion"),
        ImageFamily=call.text("ImageFamily"),
        Description=call.text("Description"),
        Progress="0%",
        OSType="linux",
        OSName=base.get("OSName") or "Debian  12 64位",
        OSNameEn=base.get("OSNameEn") or "Debian  12 64 bit",
        Platform=base.get("Platform") or "Debian",
        Architecture=call.text("Architecture", "x86_64"),
        Size=int(base.get("Size", 20)),
        ImageOwnerAlias="self",
        IsSupportCloudinit=True,
        IsSupportIoOptimized=True,
        Usage="none",
        BootMode=call.text("BootMode", "BIOS"),
        IsCopied=False,
        IsSelfShared="",
        IsPublic=False,
        IsSubscribed=False,
        ProductCode="",
        LoginAsNonRootSupported=False,
        Tags=call.tags(),
        _file=str(cloud.image_file(image_id)),
        _snapshots=[],
        _share=[],
    )


def being_made(cloud: Cloud, image: Res, disk_id: str, snapshot_name: str, work: str) -> Res:
    """Store `image` and the snapshot it is made of, both in progress until `work` ("save" of an
    instance's disk, "copy" or "import") is done; the snapshot is returned."""
    snap = new_snapshot(cloud, image["RegionId"], image["_file"], disk_id, image["Size"], snapshot_name)
    snap["Usage"] = "image"
    image["_snapshots"] = [snap["SnapshotId"]]
    profile = cloud.profile
    seconds = {"save": profile.image_create, "import": profile.image_import}.get(work, profile.image_copy)
    lifecycle.begin(image, "Creating", "Available", seconds, wait=work)
    lifecycle.begin(snap, "progressing", "accomplished", seconds, wait=work)
    cloud.put(snap)
    cloud.put(image)
    return snap


@action("CreateImage", ECS)
async def create_image(cloud: Cloud, call: Call) -> Json:
    region = call.require_region()
    name = call.get("ImageName") or new_id("image-", 12)
    check_image_name(cloud, region, name)
    instance_id = call.get("InstanceId")
    mappings = [m for m in call.structs("DiskDeviceMapping") if m.get("SnapshotId")]
    data = [m for m in mappings if m.get("DiskType") == "data"]
    mapped = (m["SnapshotId"] for m in mappings if m.get("DiskType", "system") == "system")
    snapshot_id = call.get("SnapshotId") or next(mapped, None)
    if instance_id is not None:
        inst = cloud.find("instance", instance_id, region)
        if inst["Status"] not in SAVING_ALLOWED:
            raise errors.INCORRECT_INSTANCE_STATUS(f"{instance_id} is {inst['Status']}")
        image = new_image(cloud, call, region, name, {"Size": inst["_disk_size"], "OSName": inst["OSName"]})
        # the data disks' copies are queued first: the system disk's, last, makes the image Available
        disks = cloud.data_disks_of(instance_id)
        prefix = f"auto_{image['ImageId']}"
        data_snaps = [snapshot_data_disk(cloud, d, f"{prefix}_{d['Device'][-4:]}", 0.0) for d in disks]
        snap = being_made(cloud, image, inst["_disk_id"], prefix, "save")
        _with_data(cloud, image, [(s, d["Device"]) for s, d in zip(data_snaps, disks, strict=True)])
        cloud.save_instance_disk(inst, [image, snap], Path(image["_file"]))
    elif snapshot_id is not None:
        snap = cloud.find("snapshot", snapshot_id, region)
        if snap["Status"] != "accomplished":
            raise errors.INCORRECT_SNAPSHOT_STATUS(f"{snapshot_id} is {snap['Status']}")
        extra = []
        for n, m in enumerate(data):
            data_snap = cloud.find("snapshot", m["SnapshotId"], region)
            if data_snap["Status"] != "accomplished":
                raise errors.INCORRECT_SNAPSHOT_STATUS(f"{data_snap['SnapshotId']} is {data_snap['Status']}")
            extra.append((data_snap, m.get("Device") or f"/dev/xvd{chr(ord('b') + n)}"))
        image = new_image(cloud, call, region, name, {"Size": int(snap["SourceDiskSize"])})
        image["_file"] = snap["_file"]
        image["_snapshots"] = [snap["SnapshotId"]]
        snap["Usage"] = "image"
        cloud.put(snap)
        _with_data(cloud, image, extra)
        lifecycle.begin(image, "Creating", "Available", cloud.profile.image_create)
        cloud.put(image)
    else:
        raise errors.missing("InstanceId")
    return {"ImageId": image["ImageId"]}


def _with_data(cloud: Cloud, image: Res, snaps: list[tuple[Res, str]]) -> None:
    """The image's data disks: each (snapshot, device) is a data disk mapping of it, the snapshot in use."""
    mappings = []
    for snap, device in snaps:
        current = cloud.get("snapshot", snap["SnapshotId"]) or snap
        current["Usage"] = "image"
        cloud.put(current)
        image["_snapshots"] = [*image["_snapshots"], snap["SnapshotId"]]
        mappings.append(
            {"SnapshotId": snap["SnapshotId"], "Device": device, "Size": int(snap["SourceDiskSize"])}
        )
    if mappings:
        image["_data_mappings"] = mappings
        cloud.put(image)


def _own(cloud: Cloud, call: Call, region: str | None) -> Res:
    image_id = call.require("ImageId")
    if image_id == PUBLIC_IMAGE_ID:
        raise errors.PUBLIC_IMAGE_READ_ONLY(image_id)
    return cloud.find("image", image_id, region)


@action("DeleteImage", ECS)
async def delete_image(cloud: Cloud, call: Call) -> Json:
    image = _own(cloud, call, call.region)
    if image["Status"] in BEING_MADE and image.get("_import"):
        raise errors.IMAGE_IS_IMPORTING(image["ImageId"])
    if image["Status"] in BEING_MADE:
        raise errors.INCORRECT_IMAGE_STATUS(f"{image['ImageId']} is {image['Status']}")
    if image["_share"] and not call.flag("Force"):
        raise errors.IMAGE_IS_SHARED(image["ImageId"])
    cloud.delete(image)
    for sid in image["_snapshots"]:
        snap = cloud.get("snapshot", sid)
        if snap is not None and not any(sid in i["_snapshots"] for i in cloud.store.all("image")):
            snap["Usage"] = "none"
            cloud.put(snap)
    drop_file(cloud, image["_file"], {image["ImageId"]})
    return {}


@action("CopyImage", ECS)
async def copy_image(cloud: Cloud, call: Call) -> Json:
    region = call.require_region()
    source = _own(cloud, call, region)
    if source["Status"] != "Available":
        raise errors.INCORRECT_IMAGE_STATUS(f"{source['ImageId']} is {source['Status']}")
    dest_region = call.require("DestinationRegionId")
    if dest_region not in REGIONS:
        raise errors.REGION_NOT_FOUND(dest_region)
    name = call.get("DestinationImageName") or source["ImageName"]
    check_image_name(cloud, dest_region, name)
    copy = new_image(cloud, call, dest_region, name, source)
    copy.update(
        Description=call.text("DestinationDescription", source["Description"]),
        IsCopied=True,
        ImageFamily=source["ImageFamily"],
        ImageVersion=source["ImageVersion"],
        _copy_of=source["ImageId"],
    )
    snap = being_made(cloud, copy, "", f"copy_{copy['ImageId']}", "copy")
    src_file = Path(source["_file"]) if source["_file"] else None
    targets = [dict(copy), dict(snap)]

    async def work() -> None:
        ok = True
        try:
            await cloud.backend.copy_image(src_file, Path(copy["_file"]))
        except Exception:  # any failure of the copy is the cloud's CreateFailed
            ok = False
        cloud.finish_targets(targets, ok)

    cloud.spawn(work())
    return {"ImageId": copy["ImageId"]}


@action("CancelCopyImage", ECS)
async def cancel_copy_image(cloud: Cloud, call: Call) -> Json:
    image = _own(cloud, call, call.require_region())
    if not image.get("_copy_of") or image["Status"] not in BEING_MADE:
        raise errors.INCORRECT_IMAGE_STATUS(f"{image['ImageId']} is not being copied")
    cloud.delete(image)
    for sid in image["_snapshots"]:
        cloud.store.delete("snapshot", sid)
    drop_file(cloud, image["_file"], set())
    return {}


@action("ModifyImageSharePermission", ECS)
async def modify_share(cloud: Cloud, call: Call) -> Json:
    image = _own(cloud, call, call.require_region())
    add, remove = call.values("AddAccount"), call.values("RemoveAccount")
    if len(add) > 10 or len(remove) > 10:
        raise errors.invalid("AddAccount.N", "allows at most 10 accounts per call")
    shared = [a for a in image["_share"] if a not in remove]
    shared.extend(a for a in add if a not in shared)
    image["_share"] = shared
    if call.get("IsPublic") is not None:
        image["IsPublic"] = call.flag("IsPublic")
    image["IsSelfShared"] = "True" if shared else ""
    cloud.put(image)
    return {}


def _accounts(cloud: Cloud, call: Call, region: str | None) -> list[Mapping[str, Any]]:
    return [{"AliyunId": a} for a in _own(cloud, call, region)["_share"]]


def _share_fields(cloud: Cloud, call: Call, region: str | None) -> Json:
    image = _own(cloud, call, region)
    groups = [{"Group": "all"}] if image["IsPublic"] else []
    return {"ImageId": image["ImageId"], "RegionId": region, "ShareGroups": {"ShareGroup": groups}}


action("DescribeImageSharePermission", ECS)(
    Describe("Accounts.Account", source=_accounts, extra=_share_fields)
)
