"""DescribeRegions and DescribeZones."""

from __future__ import annotations

from kiln.localcloud.api.registry import ECS, VPC, Json, action
from kiln.localcloud.api.request import Call
from kiln.localcloud.model.cloud import Cloud
from kiln.localcloud.model.regions import REGIONS, zones_of

INSTANCE_TYPES = ["ecs.t5-lc1m1.small", "ecs.t6-c1m1.large", "ecs.g6.large", "ecs.c6.large", "ecs.g7.large"]
DISK_CATEGORIES = ["cloud_efficiency", "cloud_ssd", "cloud_essd", "cloud_auto"]


@action("DescribeRegions", ECS, VPC)
async def describe_regions(cloud: Cloud, call: Call) -> Json:
    regions = [
        {
            "RegionId": rid,
            "LocalName": name,
            "RegionEndpoint": f"ecs.{rid}.aliyuncs.com",
            "Status": "available",
        }
        for rid, name in REGIONS.items()
    ]
    return {"Regions": {"Region": regions}}


@action("DescribeZones", ECS, VPC)
async def describe_zones(cloud: Cloud, call: Call) -> Json:
    region = call.require_region()
    zones = [
        {
            "ZoneId": zone,
            "LocalName": f"{REGIONS[region]} 可用区{zone[-1].upper()}",
            "AvailableResourceCreation": {"ResourceTypes": ["VSwitch", "IoOptimized", "Instance", "Disk"]},
            "AvailableInstanceTypes": {"InstanceTypes": INSTANCE_TYPES},
            "AvailableDiskCategories": {"DiskCategories": DISK_CATEGORIES},
            "AvailableVolumeCategories": {"VolumeCategories": DISK_CATEGORIES},
        }
        for zone in zones_of(region)
    ]
    return {"Zones": {"Zone": zones}}
