"""What can be created where: instance types and their families, and DescribeAvailableResource."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kiln.localcloud import errors
from kiln.localcloud.api.describe import AnyOf, Describe, Equals, Filter, Test
from kiln.localcloud.api.registry import ECS, Json, action
from kiln.localcloud.api.request import Call
from kiln.localcloud.model.cloud import Cloud
from kiln.localcloud.model.instance_types import (
    DATA_DISK_GB,
    DISK_CATEGORIES,
    FAMILIES,
    SYSTEM_DISK_GB,
    TYPES,
    InstanceType,
)
from kiln.localcloud.model.regions import zones_of

Item = Mapping[str, Any]


def instance_type_view(t: InstanceType) -> Json:
    family = t.family
    return {
        "InstanceTypeId": t.type_id,
        "InstanceTypeFamily": family.family_id,
        "InstanceCategory": family.category,
        "InstanceFamilyLevel": family.level,
        "CpuCoreCount": t.cpus,
        "MemorySize": t.memory_gib,
        "CpuArchitecture": "X86",
        "PhysicalProcessorModel": family.processor,
        "CpuSpeedFrequency": family.ghz,
        "CpuTurboFrequency": family.turbo_ghz,
        "GPUAmount": 0,
        "GPUSpec": "",
        "GPUMemorySize": 0.0,
        "LocalStorageCategory": "",
        "LocalStorageAmount": 0,
        "LocalStorageCapacity": 0,
        "EniQuantity": t.enis,
        "EniTotalQuantity": t.enis,
        "EniPrivateIpAddressQuantity": t.ips_per_eni,
        "EniIpv6AddressQuantity": 1 if family.level == "EnterpriseLevel" else 0,
        "EniTrunkSupported": not family.burstable,
        "DiskQuantity": 17,
        "InstanceBandwidthRx": t.bandwidth_kbps,
        "InstanceBandwidthTx": t.bandwidth_kbps,
        "InstancePpsRx": t.pps,
        "InstancePpsTx": t.pps,
        "BaselineCredit": t.credit,
        "InitialCredit": t.credit * 60 if family.burstable else 0,
        "NvmeSupport": "unsupported",
        "CpuOptions": {
            "Core": max(t.cpus // 2, 1),
            "ThreadsPerCore": 2 if t.cpus > 1 else 1,
            "HyperThreadingAdjustable": False,
            "NestedVirtualizationSupport": "unsupported",
            "SupportedTopologyTypes": {"SupportedTopologyType": []},
            "CoreFactor": 2 if t.cpus > 1 else 1,
        },
        "SupportedBootModes": {"SupportedBootMode": ["BIOS", "UEFI"]},
    }


def _types(cloud: Cloud, call: Call, region: str | None) -> list[Item]:
    return [
        {
            "_type": t,
            "InstanceTypeId": t.type_id,
            "InstanceTypeFamily": t.family.family_id,
            "InstanceFamilyLevel": t.family.level,
            "CpuArchitecture": "X86",
        }
        for t in TYPES.values()
    ]


@dataclass(frozen=True)
class _Bound(Filter):
    """Minimum... / Maximum...: the type's figure is at least / at most the parameter."""

    param: str
    figure: str  # "cpus" or "memory_gib"
    at_least: bool

    def test(self, cloud: Cloud, call: Call) -> Test | None:
        raw = call.get(self.param)
        if raw is None:
            return None
        try:
            bound = float(raw)
        except ValueError:
            raise errors.invalid(self.param, "must be a number") from None

        def test(item: Item) -> bool:
            value = float(getattr(item["_type"], self.figure))
            return value >= bound if self.at_least else value <= bound

        return test


action("DescribeInstanceTypes", ECS)(
    Describe(
        "InstanceTypes.InstanceType",
        source=_types,
        filters=(
            AnyOf("InstanceTypes", "InstanceTypeId"),
            AnyOf("InstanceTypeFamilies", "InstanceTypeFamily", also=("InstanceTypeFamily",)),
            _Bound("MinimumCpuCoreCount", "cpus", at_least=True),
            _Bound("MaximumCpuCoreCount", "cpus", at_least=False),
            _Bound("MinimumMemorySize", "memory_gib", at_least=True),
            _Bound("MaximumMemorySize", "memory_gib", at_least=False),
            Equals("InstanceFamilyLevel"),
            Equals("CpuArchitecture"),
        ),
        view=lambda cloud, item: instance_type_view(item["_type"]),
        paging="token",
        page_size=1600,
        max_page_size=1600,
        size_param="MaxResults",
        regional=False,
    )
)


@action("DescribeInstanceTypeFamilies", ECS)
async def describe_instance_type_families(cloud: Cloud, call: Call) -> Json:
    call.require_region()
    generation = call.get("Generation")
    families = [
        {"InstanceTypeFamilyId": f.family_id, "Generation": f.generation}
        for f in FAMILIES.values()
        if generation in (None, f.generation)
    ]
    return {"InstanceTypeFamilies": {"InstanceTypeFamily": families}}


DESTINATIONS = ("Zone", "IoOptimized", "InstanceType", "SystemDisk", "DataDisk", "Network", "ddh")
RESOURCE_TYPES = ("instance", "disk", "reservedinstance", "ddh")


def _stocked(value: str, **more: Any) -> Json:
    return {"Value": value, "Status": "Available", "StatusCategory": "WithStock", **more}


def _wanted_types(call: Call) -> list[InstanceType]:
    cores, memory = call.get("Cores"), call.get("Memory")
    found = [t for t in TYPES.values() if call.text("InstanceType", t.type_id) == t.type_id]
    if cores is not None:
        found = [t for t in found if str(t.cpus) == cores]
    if memory is not None:
        found = [t for t in found if _number(memory, "Memory") == t.memory_gib]
    return found


def _number(raw: str, name: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise errors.invalid(name, "must be a number") from None


def _disks(call: Call, param: str, bounds: tuple[int, int]) -> list[Json]:
    low, high = bounds
    wanted = call.get(param)
    return [
        _stocked(category, Min=low, Max=high, Unit="GiB")
        for category in DISK_CATEGORIES
        if wanted in (None, category)
    ]


def _supported(call: Call, destination: str, zone: str) -> list[Json]:
    """What the zone offers of `destination`, narrowed by the request's conditions."""
    types = _wanted_types(call)
    if not types or call.text("IoOptimized", "optimized") != "optimized":
        return []
    if call.text("NetworkCategory", "vpc") != "vpc":
        return []
    if destination == "Zone":
        return [_stocked(zone)]
    if destination == "IoOptimized":
        return [_stocked("optimized")]
    if destination == "Network":
        return [_stocked("vpc")]
    if destination == "InstanceType":
        return [_stocked(t.type_id) for t in types]
    if destination == "SystemDisk":
        return _disks(call, "SystemDiskCategory", SYSTEM_DISK_GB)
    if destination == "DataDisk":
        return _disks(call, "DataDiskCategory", DATA_DISK_GB)
    return []  # ddh: no dedicated hosts here


@action("DescribeAvailableResource", ECS)
async def describe_available_resource(cloud: Cloud, call: Call) -> Json:
    region = call.require_region()
    destination = call.require("DestinationResource")
    if destination not in DESTINATIONS:
        raise errors.invalid("DestinationResource", f"must be one of {', '.join(DESTINATIONS)}")
    if call.text("ResourceType", "instance") not in RESOURCE_TYPES:
        raise errors.invalid("ResourceType", f"must be one of {', '.join(RESOURCE_TYPES)}")
    if destination == "SystemDisk" and call.get("InstanceType") is None:
        raise errors.missing("InstanceType")
    zones = []
    for zone in zones_of(region):
        if call.text("ZoneId", zone) != zone:
            continue
        supported = _supported(call, destination, zone)
        if supported:
            zones.append(
                {
                    "ZoneId": zone,
                    "RegionId": region,
                    "Status": "Available",
                    "StatusCategory": "WithStock",
                    "AvailableResources": {
                        "AvailableResource": [
                            {"Type": destination, "SupportedResources": {"SupportedResource": supported}}
                        ]
                    },
                }
            )
    return {"AvailableZones": {"AvailableZone": zones}}
