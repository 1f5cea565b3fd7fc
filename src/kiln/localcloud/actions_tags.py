"""Tags: AddTags / RemoveTags / DescribeTags (older) and TagResources / UntagResources / ListTagResources."""

from __future__ import annotations

from typing import Any

from kiln.localcloud.actions_network import page
from kiln.localcloud.cloud import Call, Cloud, action
from kiln.localcloud.wire import ApiError, invalid, not_found

# API resource type (lower case) -> (store kind, label for NotFound errors)
RESOURCE_TYPES = {
    "instance": ("instance", "InstanceId"),
    "image": ("image", "ImageId"),
    "snapshot": ("snapshot", "SnapshotId"),
    "securitygroup": ("sg", "SecurityGroupId"),
    "eip": ("eip", "AllocationId"),
    "vpc": ("vpc", "VpcId"),
    "vswitch": ("vswitch", "VSwitchId"),
    "keypair": ("keypair", "KeyPairName"),
}
MAX_TAGS = 20


def _kind(call: Call) -> tuple[str, str, str]:
    raw = call.require("ResourceType")
    name = raw.lower().replace("aliyun::ecs::", "").replace("aliyun::vpc::", "")
    if name not in RESOURCE_TYPES:
        raise invalid("ResourceType", f"must be one of {', '.join(RESOURCE_TYPES)}")
    kind, label = RESOURCE_TYPES[name]
    return name, kind, label


def _resource(cloud: Cloud, call: Call, kind: str, label: str, rid: str) -> dict[str, Any]:
    key = f"{call.require_region()}/{rid}" if kind == "keypair" else rid
    res = cloud.store.get(kind, key)
    if res is None or (call.region is not None and res["RegionId"] != call.region):
        raise not_found(label, rid)
    return res


def _apply(cloud: Cloud, res: dict[str, Any], tags: list[dict[str, str]]) -> None:
    current = {t["TagKey"]: t["TagValue"] for t in res.get("Tags", [])}
    for tag in tags:
        if tag["TagKey"].lower().startswith(("aliyun", "acs:")):
            raise ApiError(
                400, "InvalidTagKey.Malformed", f"The specified Tag.n.Key is not valid. ({tag['TagKey']})"
            )
        current[tag["TagKey"]] = tag["TagValue"]
    if len(current) > MAX_TAGS:
        raise ApiError(400, "InvalidTagCount", f"A resource can have at most {MAX_TAGS} tags.")
    res["Tags"] = [{"TagKey": k, "TagValue": v} for k, v in current.items()]
    cloud.put(res)


def _remove(cloud: Cloud, res: dict[str, Any], keys: set[str] | None) -> None:
    res["Tags"] = [t for t in res.get("Tags", []) if keys is not None and t["TagKey"] not in keys]
    cloud.put(res)


@action("AddTags")
async def add_tags(cloud: Cloud, call: Call) -> dict[str, Any]:
    _, kind, label = _kind(call)
    tags = call.tags()
    if not tags:
        raise ApiError(
            400,
            "MissingParameter",
            'The input parameter "Tag.N.Key" that is mandatory for processing this request is not supplied.',
        )
    _apply(cloud, _resource(cloud, call, kind, label, call.require("ResourceId")), tags)
    return {}


@action("RemoveTags")
async def remove_tags(cloud: Cloud, call: Call) -> dict[str, Any]:
    _, kind, label = _kind(call)
    keys = {t["TagKey"] for t in call.tags()}
    _remove(cloud, _resource(cloud, call, kind, label, call.require("ResourceId")), keys or None)
    return {}


@action("TagResources")
async def tag_resources(cloud: Cloud, call: Call) -> dict[str, Any]:
    _, kind, label = _kind(call)
    ids = call.values("ResourceId")
    tags = call.tags()
    if not ids or not tags:
        raise ApiError(400, "MissingParameter", "ResourceId.N and Tag.N.Key are required.")
    resources = [_resource(cloud, call, kind, label, rid) for rid in ids]
    for res in resources:
        _apply(cloud, res, tags)
    return {}


@action("UntagResources")
async def untag_resources(cloud: Cloud, call: Call) -> dict[str, Any]:
    _, kind, label = _kind(call)
    keys = set(call.values("TagKey"))
    for rid in call.values("ResourceId"):
        _remove(cloud, _resource(cloud, call, kind, label, rid), None if call.flag("All") else keys)
    return {}


def _tagged(cloud: Cloud, call: Call, type_name: str, kind: str) -> list[tuple[str, dict[str, Any]]]:
    region = call.require_region()
    out = []
    for res in cloud.items(kind, region):
        rid = res["KeyPairName"] if kind == "keypair" else res["_id"]
        out.append((rid, res))
    return out


@action("ListTagResources")
async def list_tag_resources(cloud: Cloud, call: Call) -> dict[str, Any]:
    type_name, kind, _ = _kind(call)
    ids = set(call.values("ResourceId"))
    wanted = call.tags()
    rows = []
    for rid, res in _tagged(cloud, call, type_name, kind):
        if ids and rid not in ids:
            continue
        for tag in res.get("Tags", []):
            if wanted and not any(
                w["TagKey"] == tag["TagKey"] and w["TagValue"] in ("", tag["TagValue"]) for w in wanted
            ):
                continue
            rows.append(
                {
                    "ResourceId": rid,
                    "ResourceType": type_name,
                    "TagKey": tag["TagKey"],
                    "TagValue": tag["TagValue"],
                }
            )
    start = int(call.get("NextToken", "0") or "0") if (call.get("NextToken") or "0").isdigit() else 0
    size = 50
    chunk = rows[start : start + size]
    next_token = str(start + size) if start + size < len(rows) else ""
    return {"TagResources": {"TagResource": chunk}, "NextToken": next_token}


@action("DescribeTags")
async def describe_tags(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    types = (
        [_kind(call)] if call.get("ResourceType") else [(n, k, lbl) for n, (k, lbl) in RESOURCE_TYPES.items()]
    )
    rid = call.get("ResourceId")
    wanted = call.tags()
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for type_name, kind, _ in types:
        for res in cloud.items(kind, region):
            res_id = res["KeyPairName"] if kind == "keypair" else res["_id"]
            if rid is not None and res_id != rid:
                continue
            for tag in res.get("Tags", []):
                if wanted and not any(
                    w["TagKey"] == tag["TagKey"] and w["TagValue"] in ("", tag["TagValue"]) for w in wanted
                ):
                    continue
                per_type = counts.setdefault((tag["TagKey"], tag["TagValue"]), {})
                per_type[type_name] = per_type.get(type_name, 0) + 1
    tags = [
        {"TagKey": k, "TagValue": v, "ResourceTypeCount": {t.capitalize(): n for t, n in c.items()}}
        for (k, v), c in counts.items()
    ]
    chunk, paging = page(call, tags, default=50, high=100)
    return {"Tags": {"Tag": chunk}, **paging}
