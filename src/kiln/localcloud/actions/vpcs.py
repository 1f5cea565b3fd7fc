"""VPCs and vSwitches (ECS 2014-05-26 and VPC 2016-04-28 both answer them)."""

from __future__ import annotations

import ipaddress

from kiln.localcloud import errors
from kiln.localcloud.api import views
from kiln.localcloud.api.describe import AnyOf, Describe, Equals, Tags
from kiln.localcloud.api.registry import ECS, VPC, Json, action
from kiln.localcloud.api.request import Call
from kiln.localcloud.model import lifecycle
from kiln.localcloud.model.cloud import Cloud, Res
from kiln.localcloud.model.regions import zones_of
from kiln.localcloud.store import new_id


def _network(value: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value)
    except ValueError:
        raise errors.CIDR_MALFORMED(value) from None


def _require_available(vpc: Res) -> None:
    if vpc["Status"] != "Available":
        raise errors.INCORRECT_VPC_STATUS(f"{vpc['VpcId']} is {vpc['Status']}")


@action("CreateVpc", ECS, VPC)
async def create_vpc(cloud: Cloud, call: Call) -> Json:
    region = call.require_region()
    cidr = _network(call.text("CidrBlock", "172.16.0.0/12"))
    vpc_id, router, table = new_id("vpc-"), new_id("vrt-"), new_id("vtb-")
    vpc = cloud.new(
        "vpc",
        vpc_id,
        region,
        VpcId=vpc_id,
        VpcName=call.text("VpcName"),
        CidrBlock=str(cidr),
        Description=call.text("Description"),
        VRouterId=router,
        RouteTableId=table,
        IsDefault=False,
        Tags=call.tags(),
    )
    lifecycle.begin(vpc, "Pending", "Available", cloud.profile.network_create)
    cloud.put(vpc)
    answer = {"VpcId": vpc_id, "VRouterId": router, "RouteTableId": table}
    return answer if call.product == ECS.name else {**answer, "ResourceGroupId": ""}


action("DescribeVpcs", ECS, VPC)(
    Describe(
        "Vpcs.Vpc",
        kind="vpc",
        filters=(AnyOf("VpcId"), Equals("VpcName"), Tags()),
        view=views.vpc,
        omit={ECS.name: ("Tags",)},  # the ECS API's older DescribeVpcs shows no tags
        max_page_size=50,
    )
)


@action("DeleteVpc", ECS, VPC)
async def delete_vpc(cloud: Cloud, call: Call) -> Json:
    vpc = cloud.find("vpc", call.require("VpcId"), call.region)
    for kind, label, error in (
        ("vswitch", "vSwitch", errors.VPC_HAS_VSWITCH),
        ("sg", "security group", errors.VPC_HAS_SECURITY_GROUP),
    ):
        if any(r["VpcId"] == vpc["VpcId"] for r in cloud.items(kind)):
            raise error(f"a {label} is still in {vpc['VpcId']}")
    _require_available(vpc)
    cloud.delete(vpc)
    return {}


@action("CreateVSwitch", ECS, VPC)
async def create_vswitch(cloud: Cloud, call: Call) -> Json:
    region = call.require_region()
    vpc = cloud.find("vpc", call.require("VpcId"), region)
    zone = call.require("ZoneId")
    if zone not in zones_of(region):
        raise errors.ZONE_NOT_FOUND(zone)
    _require_available(vpc)
    cidr = _network(call.require("CidrBlock"))
    if not cidr.subnet_of(ipaddress.IPv4Network(vpc["CidrBlock"])):
        raise errors.CIDR_MALFORMED(f"{cidr} is not inside the VPC's {vpc['CidrBlock']}")
    for other in cloud.items("vswitch", region):
        if other["VpcId"] == vpc["VpcId"] and ipaddress.IPv4Network(other["CidrBlock"]).overlaps(cidr):
            raise errors.CIDR_OVERLAPPED(str(cidr), other=other["VSwitchId"])
    vsw_id = new_id("vsw-")
    vsw = cloud.new(
        "vswitch",
        vsw_id,
        region,
        VSwitchId=vsw_id,
        VpcId=vpc["VpcId"],
        ZoneId=zone,
        CidrBlock=str(cidr),
        VSwitchName=call.text("VSwitchName"),
        Description=call.text("Description"),
        AvailableIpAddressCount=max(cidr.num_addresses - 4, 0),
        _next_ip=0,
        Tags=call.tags(),
    )
    lifecycle.begin(vsw, "Pending", "Available", cloud.profile.network_create)
    cloud.put(vsw)
    return {"VSwitchId": vsw_id}


action("DescribeVSwitches", ECS, VPC)(
    Describe(
        "VSwitches.VSwitch",
        kind="vswitch",
        filters=(Equals("VpcId"), Equals("VSwitchId"), Equals("ZoneId"), Tags()),
        view=views.vswitch,
        omit={ECS.name: ("Tags",)},  # nor its DescribeVSwitches
        max_page_size=50,
    )
)


@action("DeleteVSwitch", ECS, VPC)
async def delete_vswitch(cloud: Cloud, call: Call) -> Json:
    vsw = cloud.find("vswitch", call.require("VSwitchId"), call.region)
    if any(i["VpcAttributes"]["VSwitchId"] == vsw["VSwitchId"] for i in cloud.items("instance")):
        raise errors.DEPENDENCY_VIOLATION(f"instances in {vsw['VSwitchId']}")
    if vsw["Status"] != "Available":
        raise errors.INCORRECT_VSWITCH_STATUS(f"{vsw['VSwitchId']} is {vsw['Status']}")
    cloud.delete(vsw)
    return {}
