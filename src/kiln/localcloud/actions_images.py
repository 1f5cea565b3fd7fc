"""Images (create, copy, share, delete) and snapshots."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

from kiln.localcloud.actions_network import match_tags, page, public, tags_view
from kiln.localcloud.cloud import REGIONS, Call, Cloud, action
from kiln.localcloud.images import PUBLIC_IMAGE_ID, family_latest, own_images, progress, public_image
from kiln.localcloud.store import new_id
from kiln.localcloud.wire import ApiError, incorrect_status, invalid, not_found

IMAGE_STATUSES = ("Creating", "Waiting", "Available", "UnAvailable", "CreateFailed", "Deprecated")
_IMAGE_NAME = re.compile(r"^[A-Za-z\u4e00-\u9fa5][\w.:\-\u4e00-\u9fa5]{1,127}$")
QUOTA_IMAGES = 500


def image_view(cloud: Cloud, image: dict[str, Any]) -> dict[str, Any]:
    out = public(image)
    out["Progress"] = progress(image)
    mappings = []
    for sid in image.get("_snapshots", []):
        snap = cloud.store.get("snapshot", sid)
        mappings.append(
            {
                "SnapshotId": sid,
                "Size": str(image.get("Size", 20)),
                "Device": "/dev/xvda",
                "Type": "system",
                "Format": "",
                "ImportOSSBucket": "",
                "ImportOSSObject": "",
                "Progress": (snap or {}).get("Progress", "100%"),
                "RemainTime": 0,
            }
        )
    out["DiskDeviceMappings"] = {"DiskDeviceMapping": mappings}
    out["Tags"] = tags_view(image)
    return out


def _visible(cloud: Cloud, region: str, owner: str | None) -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = []
    if owner in (None, "", "system"):
        images.append(public_image(region, cloud.backend.public_image_file()))
    if owner in (None, "", "self"):
        images.extend(own_images(cloud, region))
    return images


@action("DescribeImages")
async def describe_images(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    statuses = set((call.get("Status") or "Available").split(","))
    for status in statuses:
        if status not in IMAGE_STATUSES:
            raise invalid("Status", f"must be one of {', '.join(IMAGE_STATUSES)}")
    ids = set((call.get("ImageId") or "").split(",")) - {""}
    name, family = call.get("ImageName"), call.get("ImageFamily")
    os_type, arch = call.get("OSType"), call.get("Architecture")
    snapshot = call.get("SnapshotId")
    found = []
    for image in _visible(cloud, region, call.get("ImageOwnerAlias")):
        if image["Status"] not in statuses or (ids and image["ImageId"] not in ids):
            continue
        if name is not None and not fnmatch.fnmatchcase(image["ImageName"], name):
            continue
        if (family and image.get("ImageFamily") != family) or (os_type and image["OSType"] != os_type):
            continue
        if (arch and image["Architecture"] != arch) or (
            snapshot and snapshot not in image.get("_snapshots", [])
        ):
            continue
        if not match_tags(call, image):
            continue
        found.append(image)
    found.sort(key=lambda i: i["_created"], reverse=True)
    chunk, paging = page(call, found, high=100)
    return {"Images": {"Image": [image_view(cloud, i) for i in chunk]}, "RegionId": region, **paging}


@action("DescribeImageFromFamily")
async def describe_image_from_family(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    image = family_latest(cloud, region, call.require("ImageFamily"))
    return {"Image": image_view(cloud, image) if image else {}}


def _check_image_name(cloud: Cloud, region: str, name: str) -> None:
    if not _IMAGE_NAME.match(name) or name.lower().startswith(("aliyun", "acs:", "http://", "https://")):
        raise ApiError(400, "InvalidImageName.Malformed", f"The specified Image name is not valid. ({name})")
    if any(i["ImageName"] == name for i in own_images(cloud, region)):
        raise ApiError(400, "InvalidImageName.Duplicated", "The specified Image name has already been used.")
    if len(own_images(cloud, None)) >= QUOTA_IMAGES:
        raise ApiError(400, "QuotaExceed.Image", "The maximum number of images is exceeded.")


def _new_image(
    cloud: Cloud, call: Call, region: str, name: str, base: dict[str, Any] | None
) -> dict[str, Any]:
    image_id = new_id("m-")
    base = base or {}
    image = cloud.new(
        "image",
        image_id,
        region,
        ImageId=image_id,
        ImageName=name,
        ImageVersion=call.get("ImageVersion", ""),
        ImageFamily=call.get("ImageFamily", ""),
        Description=call.get("Description", ""),
        Progress="0%",
        OSType="linux",
        OSName=base.get("OSName", "Debian  12 64位"),
        OSNameEn=base.get("OSNameEn", "Debian  12 64 bit"),
        Platform=base.get("Platform", "Debian"),
        Architecture=call.get("Architecture", "x86_64"),
        Size=int(base.get("Size", 20)),
        ImageOwnerAlias="self",
        IsSupportCloudinit=True,
        IsSupportIoOptimized=True,
        Usage="none",
        BootMode=call.get("BootMode", "BIOS"),
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
    return image


def _new_snapshot(
    cloud: Cloud, region: str, file: str, disk_id: str, size: int, name: str = ""
) -> dict[str, Any]:
    sid = new_id("s-")
    snap = cloud.new(
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
    return snap


@action("CreateImage")
async def create_image(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    name = call.get("ImageName") or new_id("image-", 12)
    _check_image_name(cloud, region, name)
    instance_id = call.get("InstanceId")
    snapshot_id = call.get("SnapshotId") or next(
        (m.get("SnapshotId") for m in call.structs("DiskDeviceMapping") if m.get("SnapshotId")), None
    )
    if instance_id is not None:
        inst = cloud.find("instance", instance_id, region, "InstanceId")
        allowed = ("Stopped",) if cloud.backend.boots_machines else ("Stopped", "Running")
        if inst["Status"] not in allowed:
            raise incorrect_status(instance_id, inst["Status"])
        image = _new_image(
            cloud, call, region, name, {"Size": inst["_disk_size"], "OSName": inst.get("OSName")}
        )
        snap = _new_snapshot(
            cloud, region, image["_file"], inst["_disk_id"], inst["_disk_size"], f"auto_{image['ImageId']}"
        )
        snap["Usage"] = "image"
        image["_snapshots"] = [snap["SnapshotId"]]
        cloud.later(image, "Creating", "Available", cloud.profile.image_create, wait="save")
        cloud.later(snap, "progressing", "accomplished", cloud.profile.image_create, wait="save")
        cloud.put(snap)
        cloud.put(image)
        cloud.save_instance_disk(inst, [image, snap], Path(image["_file"]))
    elif snapshot_id is not None:
        snap = cloud.find("snapshot", snapshot_id, region, "SnapshotId")
        if snap["Status"] != "accomplished":
            raise ApiError(403, "IncorrectSnapshotStatus", "The snapshot is not ready.")
        image = _new_image(cloud, call, region, name, {"Size": int(snap["SourceDiskSize"])})
        image["_file"] = snap["_file"]
        image["_snapshots"] = [snap["SnapshotId"]]
        snap["Usage"] = "image"
        cloud.put(snap)
        cloud.later(image, "Creating", "Available", cloud.profile.image_create)
        cloud.put(image)
    else:
        raise ApiError(
            400,
            "MissingParameter",
            "One of InstanceId, SnapshotId or DiskDeviceMapping.N.SnapshotId is required.",
        )
    return {"ImageId": image["ImageId"]}


def _file_in_use(cloud: Cloud, file: str, ignore: set[str]) -> bool:
    return any(
        r.get("_file") == file and r["_id"] not in ignore
        for kind in ("image", "snapshot")
        for r in cloud.store.all(kind)
    )


def _drop_file(cloud: Cloud, file: str | None, ignore: set[str]) -> None:
    if file and Path(file).parent == cloud.images_dir and not _file_in_use(cloud, file, ignore):
        Path(file).unlink(missing_ok=True)


def _own(cloud: Cloud, call: Call, region: str | None) -> dict[str, Any]:
    image_id = call.require("ImageId")
    if image_id == PUBLIC_IMAGE_ID:
        raise ApiError(
            403, "InvalidImageId.NotFound", "The specified image is a public image and cannot be changed."
        )
    return cloud.find("image", image_id, region, "ImageId")


@action("DeleteImage")
async def delete_image(cloud: Cloud, call: Call) -> dict[str, Any]:
    image = _own(cloud, call, call.region)
    if image["Status"] in ("Creating", "Waiting"):
        raise ApiError(
            403, "IncorrectImageStatus", "The image is being created; wait or cancel the copy first."
        )
    if image.get("_share") and not call.flag("Force"):
        raise ApiError(
            403, "InvalidImageId.IsShared", "The image is shared with other accounts; use Force=true."
        )
    cloud.store.delete("image", image["ImageId"])
    for sid in image.get("_snapshots", []):
        snap = cloud.store.get("snapshot", sid)
        if snap is not None and not any(sid in i.get("_snapshots", []) for i in cloud.store.all("image")):
            snap["Usage"] = "none"
            cloud.put(snap)
    _drop_file(cloud, image.get("_file"), {image["ImageId"]})
    return {}


@action("CopyImage")
async def copy_image(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    source = _own(cloud, call, region)
    if source["Status"] != "Available":
        raise ApiError(403, "IncorrectImageStatus", "The source image is not Available.")
    dest_region = call.require("DestinationRegionId")
    if dest_region not in REGIONS:
        raise ApiError(
            404, "InvalidRegionId.NotFound", f"The specified RegionId does not exist. ({dest_region})"
        )
    name = call.get("DestinationImageName") or source["ImageName"]
    _check_image_name(cloud, dest_region, name)
    copy = _new_image(cloud, call, dest_region, name, source)
    copy.update(
        Description=call.get("DestinationDescription", source["Description"]),
        IsCopied=True,
        ImageFamily=source.get("ImageFamily", ""),
        ImageVersion=source.get("ImageVersion", ""),
        _copy_of=source["ImageId"],
    )
    snap = _new_snapshot(
        cloud, dest_region, copy["_file"], "", int(source["Size"]), f"copy_{copy['ImageId']}"
    )
    snap["Usage"] = "image"
    copy["_snapshots"] = [snap["SnapshotId"]]
    cloud.later(copy, "Creating", "Available", cloud.profile.image_copy, wait="copy")
    cloud.later(snap, "progressing", "accomplished", cloud.profile.image_copy, wait="copy")
    cloud.put(snap)
    cloud.put(copy)
    src_file = Path(source["_file"]) if source.get("_file") else None

    async def work() -> None:
        ok = True
        try:
            await cloud.backend.copy_image(src_file, Path(copy["_file"]))
        except Exception:  # any failure of the copy is the cloud's CreateFailed
            ok = False
        cloud.finish_targets([copy, snap], ok)

    cloud.spawn(work())
    return {"ImageId": copy["ImageId"]}


@action("CancelCopyImage")
async def cancel_copy_image(cloud: Cloud, call: Call) -> dict[str, Any]:
    image = _own(cloud, call, call.require_region())
    if not image.get("_copy_of") or image["Status"] not in ("Creating", "Waiting"):
        raise ApiError(403, "IncorrectImageStatus", "Only an image being copied can be cancelled.")
    cloud.store.delete("image", image["ImageId"])
    for sid in image.get("_snapshots", []):
        cloud.store.delete("snapshot", sid)
    _drop_file(cloud, image.get("_file"), set())
    return {}


@action("ModifyImageSharePermission")
async def modify_share(cloud: Cloud, call: Call) -> dict[str, Any]:
    image = _own(cloud, call, call.require_region())
    add, remove = call.values("AddAccount"), call.values("RemoveAccount")
    if len(add) > 10 or len(remove) > 10:
        raise invalid("AddAccount.N", "allows at most 10 accounts per call")
    shared = [a for a in image.get("_share", []) if a not in remove]
    shared.extend(a for a in add if a not in shared)
    image["_share"] = shared
    if call.get("IsPublic") is not None:
        image["IsPublic"] = call.flag("IsPublic")
    image["IsSelfShared"] = "True" if shared else ""
    cloud.put(image)
    return {}


@action("DescribeImageSharePermission")
async def describe_share(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    image = _own(cloud, call, region)
    accounts = [{"AliyunId": a} for a in image.get("_share", [])]
    chunk, paging = page(call, accounts, high=100)
    groups = [{"Group": "all"}] if image.get("IsPublic") else []
    return {
        "ImageId": image["ImageId"],
        "RegionId": region,
        "Accounts": {"Account": chunk},
        "ShareGroups": {"ShareGroup": groups},
        **paging,
    }


# snapshots --------------------------------------------------------------------------------------
@action("CreateSnapshot")
async def create_snapshot(cloud: Cloud, call: Call) -> dict[str, Any]:
    disk_id = call.require("DiskId")
    inst = next((i for i in cloud.items("instance") if i["_disk_id"] == disk_id), None)
    if inst is None:
        raise not_found("DiskId", disk_id)
    allowed = ("Stopped",) if cloud.backend.boots_machines else ("Stopped", "Running")
    if inst["Status"] not in allowed:
        raise incorrect_status(inst["InstanceId"], inst["Status"])
    sid_file = str(cloud.images_dir / f"{new_id('snap-', 12)}.img")
    snap = _new_snapshot(
        cloud, inst["RegionId"], sid_file, disk_id, inst["_disk_size"], call.get("SnapshotName", "") or ""
    )
    snap["Tags"] = call.tags()
    cloud.later(snap, "progressing", "accomplished", cloud.profile.snapshot_create, wait="save")
    cloud.put(snap)
    cloud.save_instance_disk(inst, [snap], Path(sid_file))
    return {"SnapshotId": snap["SnapshotId"]}


@action("DescribeSnapshots")
async def describe_snapshots(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    ids = set(call.values("SnapshotIds"))
    disk_id, status, name = call.get("DiskId"), call.get("Status"), call.get("SnapshotName")
    instance_id = call.get("InstanceId")
    disk_of = {i["InstanceId"]: i["_disk_id"] for i in cloud.items("instance", region)}
    found = []
    for snap in cloud.items("snapshot", region):
        if (ids and snap["SnapshotId"] not in ids) or (disk_id and snap["SourceDiskId"] != disk_id):
            continue
        if (status and status != "all" and snap["Status"] != status) or (
            name and snap["SnapshotName"] != name
        ):
            continue
        if instance_id and disk_of.get(instance_id) != snap["SourceDiskId"]:
            continue
        if not match_tags(call, snap):
            continue
        found.append(snap)
    chunk, paging = page(call, found, high=100)
    out = []
    for snap in chunk:
        item = public(snap)
        item["Progress"] = "100%" if snap["Status"] == "accomplished" else snap.get("Progress", "0%")
        item["Tags"] = tags_view(snap)
        out.append(item)
    return {"Snapshots": {"Snapshot": out}, **paging}


@action("DeleteSnapshot")
async def delete_snapshot(cloud: Cloud, call: Call) -> dict[str, Any]:
    snap = cloud.find("snapshot", call.require("SnapshotId"), call.region, "SnapshotId")
    users = [i["ImageId"] for i in cloud.store.all("image") if snap["SnapshotId"] in i.get("_snapshots", [])]
    if users:
        raise ApiError(
            403,
            "SnapshotCreatedImage",
            f"The snapshot has been used to create a user-defined image. ({users[0]})",
        )
    if snap["Status"] == "progressing" and not call.flag("Force"):
        raise ApiError(403, "IncorrectSnapshotStatus", "The snapshot is being created.")
    cloud.store.delete("snapshot", snap["SnapshotId"])
    _drop_file(cloud, snap.get("_file"), {snap["SnapshotId"]})
    return {}
