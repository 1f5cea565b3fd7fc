"""Regions, zones, VPCs, vSwitches, security groups, EIPs: answered for ECS 2014-05-26 and VPC 2016-04-28."""

from __future__ import annotations

import ipaddress
from typing import Any

from kiln.localcloud.cloud import REGIONS, Call, Cloud, action, zones_of
from kiln.localcloud.store import new_id
from kiln.localcloud.wire import ApiError, invalid

INSTANCE_TYPES = ["ecs.t5-lc1m1.small", "ecs.t6-c1m1.large", "ecs.g6.large", "ecs.c6.large", "ecs.g7.large"]
DISK_CATEGORIES = ["cloud_efficiency", "cloud_ssd", "cloud_essd", "cloud_auto"]


def public(res: dict[str, Any]) -> dict[str, Any]:
    """The API view of a stored resource: internal fields (`_x`) removed."""
    return {k: v for k, v in res.items() if not k.startswith("_")}


def page(
    call: Call, items: list[dict[str, Any]], default: int = 10, high: int = 100
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    number = call.integer("PageNumber", 1, low=1)
    size = call.integer("PageSize", default, low=1, high=high)
    chunk = items[(number - 1) * size : number * size]
    return chunk, {"TotalCount": len(items), "PageNumber": number, "PageSize": size}


def tags_view(res: dict[str, Any]) -> dict[str, Any]:
    return {"Tag": list(res.get("Tags", []))}


def vpc_tags_view(res: dict[str, Any]) -> dict[str, Any]:
    """The VPC API names tag fields Key/Value where ECS says TagKey/TagValue."""
    return {"Tag": [{"Key": t["TagKey"], "Value": t["TagValue"]} for t in res.get("Tags", [])]}


def match_tags(call: Call, res: dict[str, Any]) -> bool:
    wanted = call.tags()
    if not wanted:
        return True
    have = {(t["TagKey"], t["TagValue"]) for t in res.get("Tags", [])}
    keys = {t["TagKey"] for t in res.get("Tags", [])}
    return all((t["TagKey"], t["TagValue"]) in have if t["TagValue"] else t["TagKey"] in keys for t in wanted)


@action("DescribeRegions")
async def describe_regions(cloud: Cloud, call: Call) -> dict[str, Any]:
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


@action("DescribeZones")
async def describe_zones(cloud: Cloud, call: Call) -> dict[str, Any]:
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


# VPCs ----------------------------------------------------------------------------------------------
def _network(value: str, name: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value)
    except ValueError:
        raise ApiError(
            400, "InvalidCidrBlock.Malformed", f"Specified CIDR block ({name}) is not valid."
        ) from None


def _require_available(vpc: dict[str, Any]) -> None:
    if vpc["Status"] != "Available":
        raise ApiError(400, "IncorrectVpcStatus", "Current VPC status does not support this operation.")


def _dependency_violation(detail: str) -> ApiError:
    """What the VPC API answers when something still lives in what is to be deleted."""
    return ApiError(400, "DependencyViolation", f"Specified object has dependent resources. ({detail})")


@action("CreateVpc")
async def create_vpc(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    cidr = _network(call.get("CidrBlock", "172.16.0.0/12") or "", "CidrBlock")
    vpc_id, router, table = new_id("vpc-"), new_id("vrt-"), new_id("vtb-")
    vpc = cloud.new(
        "vpc",
        vpc_id,
        region,
        VpcId=vpc_id,
        VpcName=call.get("VpcName", ""),
        CidrBlock=str(cidr),
        Description=call.get("Description", ""),
        VRouterId=router,
        RouteTableId=table,
        IsDefault=False,
        Tags=call.tags(),
    )
    cloud.later(vpc, "Pending", "Available", cloud.profile.network_create)
    cloud.put(vpc)
    return {"VpcId": vpc_id, "VRouterId": router, "RouteTableId": table, "ResourceGroupId": ""}


@action("DescribeVpcs")
async def describe_vpcs(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    wanted = set(call.values("VpcId")[0].split(",")) if call.get("VpcId") else None
    name = call.get("VpcName")
    vpcs = [
        v
        for v in cloud.items("vpc", region)
        if (wanted is None or v["VpcId"] in wanted)
        and (name is None or v["VpcName"] == name)
        and match_tags(call, v)
    ]
    chunk, paging = page(call, vpcs, high=50)
    out = []
    for vpc in chunk:
        switches = [s["VSwitchId"] for s in cloud.items("vswitch", region) if s["VpcId"] == vpc["VpcId"]]
        item = public(vpc)
        item["VSwitchIds"] = {"VSwitchId": switches}
        item["Tags"] = vpc_tags_view(vpc)
        out.append(item)
    return {"Vpcs": {"Vpc": out}, **paging}


@action("DeleteVpc")
async def delete_vpc(cloud: Cloud, call: Call) -> dict[str, Any]:
    vpc = cloud.find("vpc", call.require("VpcId"), call.region, "VpcId")
    for kind, label in (("vswitch", "vSwitch"), ("sg", "security group")):
        if any(r["VpcId"] == vpc["VpcId"] for r in cloud.items(kind)):
            raise _dependency_violation(f"a {label} is still in {vpc['VpcId']}")
    _require_available(vpc)
    cloud.store.delete("vpc", vpc["VpcId"])
    return {}


# vSwitches ---------------------------------------------------------------------------------------------
@action("CreateVSwitch")
async def create_vswitch(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    vpc = cloud.find("vpc", call.require("VpcId"), region, "VpcId")
    zone = call.require("ZoneId")
    if zone not in zones_of(region):
        raise ApiError(404, "InvalidZoneId.NotFound", f"The specified zone does not exist. ({zone})")
    _require_available(vpc)
    cidr = _network(call.require("CidrBlock"), "CidrBlock")
    if not cidr.subnet_of(ipaddress.IPv4Network(vpc["CidrBlock"])):
        raise ApiError(
            400,
            "InvalidCidrBlock.Malformed",
            f"Specified CIDR block {cidr} is not inside the VPC's {vpc['CidrBlock']}.",
        )
    for other in cloud.items("vswitch", region):
        if other["VpcId"] == vpc["VpcId"] and ipaddress.IPv4Network(other["CidrBlock"]).overlaps(cidr):
            raise ApiError(
                400,
                "InvalidCidrBlock.Overlapped",
                f"Specified CIDR block {cidr} overlaps {other['VSwitchId']}.",
            )
    vsw_id = new_id("vsw-")
    vsw = cloud.new(
        "vswitch",
        vsw_id,
        region,
        VSwitchId=vsw_id,
        VpcId=vpc["VpcId"],
        ZoneId=zone,
        CidrBlock=str(cidr),
        VSwitchName=call.get("VSwitchName", ""),
        Description=call.get("Description", ""),
        AvailableIpAddressCount=max(cidr.num_addresses - 4, 0),
        _next_ip=0,
        Tags=call.tags(),
    )
    cloud.later(vsw, "Pending", "Available", cloud.profile.network_create)
    cloud.put(vsw)
    return {"VSwitchId": vsw_id}


@action("DescribeVSwitches")
async def describe_vswitches(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    vpc_id, vsw_id, zone = call.get("VpcId"), call.get("VSwitchId"), call.get("ZoneId")
    found = [
        s
        for s in cloud.items("vswitch", region)
        if (vpc_id is None or s["VpcId"] == vpc_id)
        and (vsw_id is None or s["VSwitchId"] == vsw_id)
        and (zone is None or s["ZoneId"] == zone)
        and match_tags(call, s)
    ]
    chunk, paging = page(call, found, high=50)
    return {"VSwitches": {"VSwitch": [{**public(s), "Tags": vpc_tags_view(s)} for s in chunk]}, **paging}


@action("DeleteVSwitch")
async def delete_vswitch(cloud: Cloud, call: Call) -> dict[str, Any]:
    vsw = cloud.find("vswitch", call.require("VSwitchId"), call.region, "VSwitchId")
    if any(i.get("VpcAttributes", {}).get("VSwitchId") == vsw["VSwitchId"] for i in cloud.items("instance")):
        raise _dependency_violation(f"instances in {vsw['VSwitchId']}")
    if vsw["Status"] != "Available":
        raise ApiError(400, "IncorrectVSwitchStatus", "vpc subnet status not working.")
    cloud.store.delete("vswitch", vsw["VSwitchId"])
    return {}


# security groups -------------------------------------------------------------------------------------
@action("CreateSecurityGroup")
async def create_security_group(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    vpc_id = call.get("VpcId")
    if vpc_id is not None:
        cloud.find("vpc", vpc_id, region, "VpcId")
    sg_id = new_id("sg-")
    sg = cloud.new(
        "sg",
        sg_id,
        region,
        SecurityGroupId=sg_id,
        SecurityGroupName=call.get("SecurityGroupName", ""),
        Description=call.get("Description", ""),
        VpcId=vpc_id or "",
        SecurityGroupType=call.get("SecurityGroupType", "normal"),
        Tags=call.tags(),
        _rules=[],
    )
    cloud.put(sg)
    return {"SecurityGroupId": sg_id}


def _rule(call: Call, direction: str) -> dict[str, Any]:
    protocol = call.require("IpProtocol").lower()
    if protocol not in ("tcp", "udp", "icmp", "icmpv6", "gre", "all"):
        raise invalid("IpProtocol", "must be tcp, udp, icmp, gre or all")
    port_range = call.require("PortRange") if protocol in ("tcp", "udp") else call.get("PortRange", "-1/-1")
    return {
        "Direction": direction,
        "IpProtocol": protocol.upper() if protocol != "all" else "ALL",
        "PortRange": port_range,
        "SourceCidrIp": call.get("SourceCidrIp", ""),
        "DestCidrIp": call.get("DestCidrIp", ""),
        "Policy": (call.get("Policy", "accept") or "accept").capitalize(),
        "NicType": call.get("NicType", "intranet"),
        "Priority": call.get("Priority", "1"),
        "Description": call.get("Description", ""),
        "SourceGroupId": call.get("SourceGroupId", ""),
        "DestGroupId": call.get("DestGroupId", ""),
    }


async def _change_rules(cloud: Cloud, call: Call, direction: str, add: bool) -> dict[str, Any]:
    sg = cloud.find("sg", call.require("SecurityGroupId"), call.region, "SecurityGroupId")
    rule = _rule(call, direction)
    same = [
        r
        for r in sg["_rules"]
        if {k: r[k] for k in rule if k not in ("Description", "Priority")}
        == {k: rule[k] for k in rule if k not in ("Description", "Priority")}
    ]
    if add and not same:
        sg["_rules"].append(rule)
    elif not add:
        sg["_rules"] = [r for r in sg["_rules"] if r not in same]
    cloud.put(sg)
    return {}


@action("AuthorizeSecurityGroup")
async def authorize_sg(cloud: Cloud, call: Call) -> dict[str, Any]:
    return await _change_rules(cloud, call, "ingress", add=True)


@action("AuthorizeSecurityGroupEgress")
async def authorize_sg_egress(cloud: Cloud, call: Call) -> dict[str, Any]:
    return await _change_rules(cloud, call, "egress", add=True)


@action("RevokeSecurityGroup")
async def revoke_sg(cloud: Cloud, call: Call) -> dict[str, Any]:
    return await _change_rules(cloud, call, "ingress", add=False)


@action("RevokeSecurityGroupEgress")
async def revoke_sg_egress(cloud: Cloud, call: Call) -> dict[str, Any]:
    return await _change_rules(cloud, call, "egress", add=False)


@action("DescribeSecurityGroups")
async def describe_sgs(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    vpc_id, name = call.get("VpcId"), call.get("SecurityGroupName")
    ids = set(call.values("SecurityGroupIds")) | ({call.get("SecurityGroupId") or ""} - {""})
    found = [
        g
        for g in cloud.items("sg", region)
        if (vpc_id is None or g["VpcId"] == vpc_id)
        and (name is None or g["SecurityGroupName"] == name)
        and (not ids or g["SecurityGroupId"] in ids)
        and match_tags(call, g)
    ]
    chunk, paging = page(call, found, high=50)
    return {
        "SecurityGroups": {"SecurityGroup": [{**public(g), "Tags": tags_view(g)} for g in chunk]},
        "RegionId": region,
        **paging,
    }


@action("DescribeSecurityGroupAttribute")
async def describe_sg_attribute(cloud: Cloud, call: Call) -> dict[str, Any]:
    sg = cloud.find("sg", call.require("SecurityGroupId"), call.region, "SecurityGroupId")
    return {**public(sg), "Permissions": {"Permission": list(sg["_rules"])}, "InnerAccessPolicy": "Accept"}


@action("DeleteSecurityGroup")
async def delete_sg(cloud: Cloud, call: Call) -> dict[str, Any]:
    sg = cloud.find("sg", call.require("SecurityGroupId"), call.region, "SecurityGroupId")
    users = [
        i["InstanceId"]
        for i in cloud.items("instance")
        if sg["SecurityGroupId"] in i["SecurityGroupIds"]["SecurityGroupId"]
    ]
    if users:
        raise ApiError(
            403,
            "DependencyViolation",
            f"There is still instance(s) in the specified security group. ({users[0]})",
        )
    cloud.store.delete("sg", sg["SecurityGroupId"])
    return {}


# EIPs and public IPs ------------------------------------------------------------------------------------
def _port_free(address: str, port: int) -> bool:
    """Whether nobody listens on address:port: another localcloud (another state folder) on this
    host may already forward that address to one of its own instances."""
    import errno
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            # Not root: port 22 cannot be probed (nor forwarded); only a listener makes it taken.
            return exc.errno != errno.EADDRINUSE
    return True


def allocate_address(cloud: Cloud) -> str:
    used = {e["IpAddress"] for e in cloud.store.all("eip")}
    for inst in cloud.store.all("instance"):
        used.update(inst.get("PublicIpAddress", []))
    for n in range(2, 256 * 254):
        address = f"127.100.{n // 254}.{n % 254 + 1}"
        if address not in used and _port_free(address, 22):
            return address
    raise ApiError(400, "QuotaExceeded.Eip", "The maximum number of EIPs is exceeded.")


def _incorrect_eip_status(status: str | None = None) -> ApiError:
    message = "The current status of the resource does not support this operation."
    return ApiError(400, "IncorrectEipStatus", message if status is None else f"{message} ({status})")


@action("AllocateEipAddress")
async def allocate_eip(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    address = allocate_address(cloud)
    eip_id = new_id("eip-")
    eip = cloud.new(
        "eip",
        eip_id,
        region,
        AllocationId=eip_id,
        IpAddress=address,
        Status="Available",
        Bandwidth=call.get("Bandwidth", "5"),
        InternetChargeType=call.get("InternetChargeType", "PayByBandwidth"),
        InstanceId="",
        InstanceType="",
        Name=call.get("Name", ""),
        Tags=call.tags(),
        AllocationTime=None,
    )
    eip["AllocationTime"] = eip["CreationTime"]
    cloud.put(eip)
    return {"AllocationId": eip_id, "EipAddress": address, "ResourceGroupId": ""}


@action("AssociateEipAddress")
async def associate_eip(cloud: Cloud, call: Call) -> dict[str, Any]:
    eip = cloud.find("eip", call.require("AllocationId"), call.region, "AllocationId")
    inst = cloud.find("instance", call.require("InstanceId"), eip["RegionId"], "InstanceId")
    kind = call.get("InstanceType", "EcsInstance")
    if kind != "EcsInstance":
        raise invalid("InstanceType", "only EcsInstance is supported here")
    if eip["Status"] != "Available":
        raise _incorrect_eip_status()
    if inst["Status"] not in ("Running", "Stopped"):
        raise ApiError(
            400,
            "IncorrectInstanceStatus",
            f"The current status of the instance does not support this operation. ({inst['Status']})",
        )
    if inst.get("EipAddress", {}).get("AllocationId"):
        raise ApiError(400, "InvalidAssociation.Duplicated", "The instance already has an EIP.")
    eip["InstanceId"], eip["InstanceType"] = inst["InstanceId"], "EcsInstance"
    cloud.later(eip, "Associating", "InUse", cloud.profile.eip_associate)
    cloud.put(eip)
    inst["EipAddress"] = {
        "AllocationId": eip["AllocationId"],
        "IpAddress": eip["IpAddress"],
        "Bandwidth": eip["Bandwidth"],
        "InternetChargeType": eip["InternetChargeType"],
    }
    cloud.put(inst)
    await cloud.expose(eip["IpAddress"], inst["InstanceId"])
    return {}


async def unbind_eip(cloud: Cloud, eip: dict[str, Any], timed: bool = True) -> None:
    inst = cloud.store.get("instance", eip["InstanceId"])
    if inst is not None:
        inst["EipAddress"] = {"AllocationId": "", "IpAddress": "", "Bandwidth": 0, "InternetChargeType": ""}
        cloud.put(inst)
    eip["InstanceId"], eip["InstanceType"] = "", ""
    if timed:
        cloud.later(eip, "Unassociating", "Available", cloud.profile.eip_associate)
    else:
        cloud.set_status(eip, "Available")
    cloud.put(eip)
    await cloud.forwarder.close(eip["IpAddress"])


@action("UnassociateEipAddress")
async def unassociate_eip(cloud: Cloud, call: Call) -> dict[str, Any]:
    eip = cloud.find("eip", call.require("AllocationId"), call.region, "AllocationId")
    wanted = call.get("InstanceId")
    if eip["Status"] != "InUse" or (wanted is not None and wanted != eip["InstanceId"]):
        raise _incorrect_eip_status()
    await unbind_eip(cloud, eip)
    return {}


@action("ReleaseEipAddress")
async def release_eip(cloud: Cloud, call: Call) -> dict[str, Any]:
    eip = cloud.find("eip", call.require("AllocationId"), call.region, "AllocationId")
    if eip["Status"] != "Available":
        raise _incorrect_eip_status(eip["Status"])
    cloud.store.delete("eip", eip["AllocationId"])
    return {}


@action("DescribeEipAddresses")
async def describe_eips(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    wanted_id, address, status = call.get("AllocationId"), call.get("EipAddress"), call.get("Status")
    ids = set(wanted_id.split(",")) if wanted_id else None
    found = [
        e
        for e in cloud.items("eip", region)
        if (ids is None or e["AllocationId"] in ids)
        and (address is None or e["IpAddress"] == address)
        and (status is None or e["Status"] == status)
        and (call.get("AssociatedInstanceId") in (None, e["InstanceId"]))
        and match_tags(call, e)
    ]
    chunk, paging = page(call, found, high=100)
    return {
        "EipAddresses": {"EipAddress": [{**public(e), "Tags": vpc_tags_view(e)} for e in chunk]},
        **paging,
    }


@action("AllocatePublicIpAddress")
async def allocate_public_ip(cloud: Cloud, call: Call) -> dict[str, Any]:
    inst = cloud.find("instance", call.require("InstanceId"), call.region, "InstanceId")
    if inst["Status"] not in ("Running", "Stopped"):
        raise ApiError(
            403,
            "IncorrectInstanceStatus",
            f"The current status of the resource does not support this operation. ({inst['Status']})",
        )
    if inst.get("PublicIpAddress"):
        raise ApiError(
            403, "AllocatedAlready", "The instance has been allocated a public IP address already."
        )
    if inst.get("EipAddress", {}).get("AllocationId"):
        raise ApiError(403, "InvalidInstance.EipAlreadyAssociated", "The instance has an EIP already.")
    address = allocate_address(cloud)
    inst["PublicIpAddress"] = [address]
    cloud.put(inst)
    await cloud.expose(address, inst["InstanceId"])
    return {"IpAddress": address}
