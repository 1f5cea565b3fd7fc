"""Tags: AddTags / RemoveTags / DescribeTags (older) and TagResources / UntagResources / ListTagResources."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kiln.localcloud import errors
from kiln.localcloud.api.describe import Describe
from kiln.localcloud.api.registry import ECS, VPC, Json, action
from kiln.localcloud.api.request import Call
from kiln.localcloud.model.cloud import Cloud, Res

# API resource type (lower case) -> store kind
RESOURCE_TYPES = {
    "instance": "instance",
    "image": "image",
    "snapshot": "snapshot",
    "securitygroup": "sg",
    "eip": "eip",
    "vpc": "vpc",
    "vswitch": "vswitch",
    "keypair": "keypair",
}
MAX_TAGS = 20


def _type(call: Call) -> tuple[str, str]:
    """(API type name, store kind) of the call's ResourceType."""
    raw = call.require("ResourceType")
    name = raw.lower().replace("aliyun::ecs::", "").replace("aliyun::vpc::", "")
    if name not in RESOURCE_TYPES:
        raise errors.invalid("ResourceType", f"must be one of {', '.join(RESOURCE_TYPES)}")
    return name, RESOURCE_TYPES[name]


def _resource(cloud: Cloud, call: Call, kind: str, rid: str) -> Res:
    return cloud.find(kind, rid, call.require_region() if kind == "keypair" else call.region)


def _apply(cloud: Cloud, res: Res, tags: list[dict[str, str]]) -> None:
    current = {t["TagKey"]: t["TagValue"] for t in res["Tags"]}
    for tag in tags:
        if tag["TagKey"].lower().startswith(("aliyun", "acs:")):
            raise errors.TAG_KEY_MALFORMED(tag["TagKey"])
        current[tag["TagKey"]] = tag["TagValue"]
    if len(current) > MAX_TAGS:
        raise errors.TAG_COUNT(limit=MAX_TAGS)
    res["Tags"] = [{"TagKey": k, "TagValue": v} for k, v in current.items()]
    cloud.put(res)


def _remove(cloud: Cloud, res: Res, keys: set[str] | None) -> None:
    res["Tags"] = [t for t in res["Tags"] if keys is not None and t["TagKey"] not in keys]
    cloud.put(res)


@action("AddTags", ECS)
async def add_tags(cloud: Cloud, call: Call) -> Json:
    _, kind = _type(call)
    tags = call.tags()
    if not tags:
        raise errors.missing("Tag.N.Key")
    _apply(cloud, _resource(cloud, call, kind, call.require("ResourceId")), tags)
    return {}


@action("RemoveTags", ECS)
async def remove_tags(cloud: Cloud, call: Call) -> Json:
    _, kind = _type(call)
    keys = {t["TagKey"] for t in call.tags()}
    _remove(cloud, _resource(cloud, call, kind, call.require("ResourceId")), keys or None)
    return {}


@action("TagResources", ECS, VPC)
async def tag_resources(cloud: Cloud, call: Call) -> Json:
    _, kind = _type(call)
    ids, tags = call.values("ResourceId"), call.tags()
    if not ids:
        raise errors.missing("ResourceId.N")
    if not tags:
        raise errors.missing("Tag.N.Key")
    for res in [_resource(cloud, call, kind, rid) for rid in ids]:
        _apply(cloud, res, tags)
    return {}


@action("UntagResources", ECS)
async def untag_resources(cloud: Cloud, call: Call) -> Json:
    _, kind = _type(call)
    keys = None if call.flag("All") else set(call.values("TagKey"))
    for rid in call.values("ResourceId"):
        _remove(cloud, _resource(cloud, call, kind, rid), keys)
    return {}


def _api_id(res: Mapping[str, Any]) -> str:
    return str(res["KeyPairName"] if res["_kind"] == "keypair" else res["_id"])


def _wanted(call: Call, tag: Mapping[str, str]) -> bool:
    """A tag matches the call's Tag.N when it gives none, or names its key (and value, if it gives one)."""
    wanted = call.tags()
    return not wanted or any(
        w["TagKey"] == tag["TagKey"] and w["TagValue"] in ("", tag["TagValue"]) for w in wanted
    )


def _tag_rows(cloud: Cloud, call: Call, region: str | None) -> list[Mapping[str, Any]]:
    """ListTagResources: one row per tag of each resource of the type (the ids asked for)."""
    type_name, kind = _type(call)
    ids = set(call.values("ResourceId"))
    return [
        {
            "ResourceId": _api_id(res),
            "ResourceType": type_name,
            "TagKey": t["TagKey"],
            "TagValue": t["TagValue"],
        }
        for res in cloud.items(kind, region)
        if not ids or _api_id(res) in ids
        for t in res["Tags"]
        if _wanted(call, t)
    ]


action("ListTagResources", ECS, VPC)(
    Describe("TagResources.TagResource", source=_tag_rows, paging="token", page_size=50)
)


def _tag_counts(cloud: Cloud, call: Call, region: str | None) -> list[Mapping[str, Any]]:
    """DescribeTags: each tag (key and value) with how many resources of each type carry it."""
    types = [_type(call)] if call.get("ResourceType") else list(RESOURCE_TYPES.items())
    rid = call.get("ResourceId")
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for type_name, kind in types:
        for res in cloud.items(kind, region):
            if rid is not None and _api_id(res) != rid:
                continue
            for tag in res["Tags"]:
                if _wanted(call, tag):
                    per_type = counts.setdefault((tag["TagKey"], tag["TagValue"]), {})
                    per_type[type_name] = per_type.get(type_name, 0) + 1
    return [
        {"TagKey": k, "TagValue": v, "ResourceTypeCount": {t.capitalize(): n for t, n in c.items()}}
        for (k, v), c in counts.items()
    ]


action("DescribeTags", ECS)(Describe("Tags.Tag", source=_tag_counts, page_size=50))
