"""Views: a stored resource as the API shows it. Internal fields never appear; lists are wrapped
the way the real API wraps them (`{"Tag": [...]}`), and the VPC API names tag fields Key/Value."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kiln.localcloud.model.images import progress
from kiln.localcloud.model.kinds import KINDS

if TYPE_CHECKING:
    from kiln.localcloud.model.cloud import Cloud

Res = Mapping[str, Any]


def public(res: Res) -> dict[str, Any]:
    """The API fields of `res`, as its kind declares them."""
    return KINDS[res["_kind"]].public(res)


def without(fields: dict[str, Any], *names: str) -> dict[str, Any]:
    """`fields` but `names` (the fields an action does not show)."""
    return {name: value for name, value in fields.items() if name not in names}


def tags(res: Res) -> dict[str, Any]:
    return {"Tag": list(res.get("Tags", []))}


def vpc_tags(res: Res) -> dict[str, Any]:
    """The VPC API names tag fields Key/Value where ECS says TagKey/TagValue."""
    return {"Tag": [{"Key": t["TagKey"], "Value": t["TagValue"]} for t in res.get("Tags", [])]}


def has_tags(res: Res, wanted: list[dict[str, str]]) -> bool:
    """Every wanted tag is on `res` (a wanted tag without a value matches any value)."""
    have = {(t["TagKey"], t["TagValue"]) for t in res.get("Tags", [])}
    keys = {t["TagKey"] for t in res.get("Tags", [])}
    return all((t["TagKey"], t["TagValue"]) in have if t["TagValue"] else t["TagKey"] in keys for t in wanted)


def instance_status(inst: Res) -> str:
    """Pending while the instance is being created, though it is already on its way to Running."""
    status = str(inst["Status"])
    if status == "Starting" and inst.get("_pending_until", 0) > time.time():
        return "Pending"
    return status


def instance(cloud: Cloud, inst: Res) -> dict[str, Any]:
    out = public(inst)
    out["Status"] = instance_status(inst)
    out["PublicIpAddress"] = {"IpAddress": list(inst.get("PublicIpAddress", []))}
    out["Tags"] = tags(inst)
    return out


def instance_attribute(cloud: Cloud, inst: Res) -> dict[str, Any]:
    """DescribeInstanceAttribute: fewer fields than DescribeInstances, IoOptimized a string."""
    out = without(instance(cloud, inst), "KeyPairName", "OSName", "OSType", "StartTime", "Tags")
    out["IoOptimized"] = "optimized" if inst["IoOptimized"] else "none"
    return out


def instance_status_row(cloud: Cloud, inst: Res) -> dict[str, Any]:
    return {"InstanceId": inst["InstanceId"], "Status": instance_status(inst)}


def image(cloud: Cloud, img: Res) -> dict[str, Any]:
    out = public(img)
    out["Progress"] = progress(img)
    mappings = []
    source = img.get("_import") or {}
    data = {m["SnapshotId"]: m for m in img.get("_data_mappings", [])}
    for sid in img.get("_snapshots", []):
        snap = cloud.store.get("snapshot", sid) or {}
        mapping = data.get(sid)
        mappings.append(
            {
                "SnapshotId": sid,
                "Size": str(mapping["Size"] if mapping else img.get("Size", 20)),
                "Device": mapping["Device"] if mapping else "/dev/xvda",
                "Type": "data" if mapping else "system",
                "Format": source.get("Format", ""),
                "ImportOSSBucket": source.get("OSSBucket", ""),
                "ImportOSSObject": source.get("OSSObject", ""),
                "Progress": snap.get("Progress", "100%"),
                "RemainTime": 0,
            }
        )
    out["DiskDeviceMappings"] = {"DiskDeviceMapping": mappings}
    out["Tags"] = tags(img)
    del out["RegionId"]  # the answer's, not each image's
    return out


def image_of_family(cloud: Cloud, img: Res) -> dict[str, Any]:
    """DescribeImageFromFamily documents fewer fields than DescribeImages."""
    out = without(image(cloud, img), "BootMode", "IsPublic", "LoginAsNonRootSupported", "OSNameEn")
    for mapping in out["DiskDeviceMappings"]["DiskDeviceMapping"]:
        del mapping["Progress"], mapping["RemainTime"]
    return out


def snapshot(cloud: Cloud, snap: Res) -> dict[str, Any]:
    out = public(snap)
    out["Progress"] = "100%" if snap["Status"] == "accomplished" else snap.get("Progress", "0%")
    out["Tags"] = tags(snap)
    return out


def vpc(cloud: Cloud, res: Res) -> dict[str, Any]:
    """DescribeVpcs shows no RouteTableId (CreateVpc answers it)."""
    switches = [s["VSwitchId"] for s in cloud.items("vswitch", res["RegionId"]) if s["VpcId"] == res["VpcId"]]
    out = {**public(res), "VSwitchIds": {"VSwitchId": switches}, "Tags": vpc_tags(res)}
    del out["RouteTableId"]
    return out


def vswitch(cloud: Cloud, res: Res) -> dict[str, Any]:
    """Its own fields but the region (DescribeVSwitches does not show it), tags the VPC API's way."""
    out = {**public(res), "Tags": vpc_tags(res)}
    del out["RegionId"]
    return out


def eip(cloud: Cloud, res: Res) -> dict[str, Any]:
    """Its own fields, tags the VPC API's way; its time is AllocationTime (no CreationTime shown)."""
    out = {**public(res), "Tags": vpc_tags(res)}
    del out["CreationTime"]
    return out


def with_tags(cloud: Cloud, res: Res) -> dict[str, Any]:
    """Security groups and key pairs: their own fields, tags the ECS API's way."""
    return {**public(res), "Tags": tags(res)}


def security_group(cloud: Cloud, sg: Res) -> dict[str, Any]:
    """DescribeSecurityGroups: its fields but the region (the answer's), tags the ECS API's way."""
    return without(with_tags(cloud, sg), "RegionId")


def key_pair(cloud: Cloud, pair: Res) -> dict[str, Any]:
    """DescribeKeyPairs shows no KeyPairId (CreateKeyPair answers it) nor region."""
    return without(with_tags(cloud, pair), "KeyPairId", "RegionId")


def security_group_attribute(cloud: Cloud, sg: Res) -> dict[str, Any]:
    """DescribeSecurityGroupAttribute documents no type, tags nor creation time."""
    out = without(public(sg), "SecurityGroupType", "CreationTime", "Tags")
    return {**out, "Permissions": {"Permission": list(sg["_rules"])}, "InnerAccessPolicy": "Accept"}
