"""DescribeRegions and DescribeZones."""

from __future__ import annotations

from kiln.localcloud.api.registry import ECS, VPC, Json, action
from kiln.localcloud.api.request import Call
from kiln.localcloud.model.cloud import Cloud
from kiln.localcloud.model.instance_types import DISK_CATEGORIES, TYPES
from kiln.localcloud.model.regions import REGIONS, zones_of


@action("DescribeRegions", ECS, VPC)
async def describe_regions(cloud: Cloud, call: Call) -> Json:
    """Each API names its own endpoints; the VPC API shows no Status."""
    ecs = call.product == ECS.name
    regions = [
        {
            "RegionId": rid,
            "LocalName": name,
            "RegionEndpoint": f"{'ecs' if ecs else 'vpc'}.{rid}.aliyuncs.com",
            **({"Status": "available"} if ecs else {}),
        }
        for rid, name in REGIONS.items()
    ]
    return {"Regions": {"Region": regions}}


@action("DescribeZones", ECS, VPC)
async def describe_zones(cloud: Cloud, call: Call) -> Json:
    """The ECS API tells what can be made in each zone; the VPC API only names the zones."""
    region = call.require_region()
    zones: list[Json] = []
    for zone in zones_of(region):
        named: Json = {"ZoneId": zone, "LocalName": f"{REGIONS[region]} 可用区{zone[-1].upper()}"}
        if call.product != ECS.name:
            zones.append({**named, "ZoneType": "AvailabilityZone"})
            continue
        zones.append(
            {
                **named,
                "AvailableResourceCreation": {
                    "ResourceTypes": ["VSwitch", "IoOptimized", "Instance", "Disk"]
                },
                "AvailableInstanceTypes": {"InstanceTypes": list(TYPES)},
                "AvailableDiskCategories": {"DiskCategories": list(DISK_CATEGORIES)},
                "AvailableVolumeCategories": {"VolumeCategories": list(DISK_CATEGORIES)},
            }
        )
    return {"Zones": {"Zone": zones}}
