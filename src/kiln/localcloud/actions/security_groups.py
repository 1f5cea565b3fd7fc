"""Security groups and their rules (stored and listed, not enforced)."""

from __future__ import annotations

from typing import Any

from kiln.localcloud import errors
from kiln.localcloud.api import views
from kiln.localcloud.api.describe import AnyOf, Describe, Equals, Tags
from kiln.localcloud.api.registry import ECS, Handler, Json, action
from kiln.localcloud.api.request import Call
from kiln.localcloud.model.cloud import Cloud
from kiln.localcloud.store import new_id

PROTOCOLS = ("tcp", "udp", "icmp", "icmpv6", "gre", "all")


@action("CreateSecurityGroup", ECS)
async def create_security_group(cloud: Cloud, call: Call) -> Json:
    region = call.require_region()
    vpc_id = call.get("VpcId")
    if vpc_id is not None:
        cloud.find("vpc", vpc_id, region)
    sg_id = new_id("sg-")
    sg = cloud.new(
        "sg",
        sg_id,
        region,
        SecurityGroupId=sg_id,
        SecurityGroupName=call.text("SecurityGroupName"),
        Description=call.text("Description"),
        VpcId=vpc_id or "",
        SecurityGroupType=call.text("SecurityGroupType", "normal"),
        Tags=call.tags(),
        _rules=[],
    )
    cloud.put(sg)
    return {"SecurityGroupId": sg_id}


def _rule(call: Call, direction: str) -> dict[str, Any]:
    protocol = call.require("IpProtocol").lower()
    if protocol not in PROTOCOLS:
        raise errors.invalid("IpProtocol", "must be tcp, udp, icmp, gre or all")
    port_range = call.require("PortRange") if protocol in ("tcp", "udp") else call.text("PortRange", "-1/-1")
    return {
        "Direction": direction,
        "IpProtocol": protocol.upper() if protocol != "all" else "ALL",
        "PortRange": port_range,
        "SourceCidrIp": call.text("SourceCidrIp"),
        "DestCidrIp": call.text("DestCidrIp"),
        "Policy": call.text("Policy", "accept").capitalize(),
        "NicType": call.text("NicType", "intranet"),
        "Priority": call.text("Priority", "1"),
        "Description": call.text("Description"),
        "SourceGroupId": call.text("SourceGroupId"),
        "DestGroupId": call.text("DestGroupId"),
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two rules are the same one when they differ at most in description and priority."""
    return all(a[k] == b[k] for k in a if k not in ("Description", "Priority"))


def _rules_action(direction: str, add: bool) -> Handler:
    """Authorize (add) or revoke a rule of one direction."""

    async def change(cloud: Cloud, call: Call) -> Json:
        sg = cloud.find("sg", call.require("SecurityGroupId"), call.region)
        rule = _rule(call, direction)
        same = [r for r in sg["_rules"] if _same(r, rule)]
        if add and not same:
            sg["_rules"] = [*sg["_rules"], rule]
        elif not add:
            sg["_rules"] = [r for r in sg["_rules"] if r not in same]
        cloud.put(sg)
        return {}

    return change


action("AuthorizeSecurityGroup", ECS)(_rules_action("ingress", add=True))
action("AuthorizeSecurityGroupEgress", ECS)(_rules_action("egress", add=True))
action("RevokeSecurityGroup", ECS)(_rules_action("ingress", add=False))
action("RevokeSecurityGroupEgress", ECS)(_rules_action("egress", add=False))


def _region_field(cloud: Cloud, call: Call, region: str | None) -> Json:
    return {"RegionId": region}


action("DescribeSecurityGroups", ECS)(
    Describe(
        "SecurityGroups.SecurityGroup",
        kind="sg",
        filters=(
            Equals("VpcId"),
            Equals("SecurityGroupName"),
            AnyOf("SecurityGroupIds", "SecurityGroupId", also=("SecurityGroupId",)),
            Tags(),
        ),
        view=views.with_tags,
        max_page_size=50,
        extra=_region_field,
    )
)


@action("DescribeSecurityGroupAttribute", ECS)
async def describe_sg_attribute(cloud: Cloud, call: Call) -> Json:
    sg = cloud.find("sg", call.require("SecurityGroupId"), call.region)
    return views.security_group_attribute(cloud, sg)


@action("DeleteSecurityGroup", ECS)
async def delete_sg(cloud: Cloud, call: Call) -> Json:
    sg = cloud.find("sg", call.require("SecurityGroupId"), call.region)
    users = [
        i["InstanceId"]
        for i in cloud.items("instance")
        if sg["SecurityGroupId"] in i["SecurityGroupIds"]["SecurityGroupId"]
    ]
    if users:
        raise errors.SECURITY_GROUP_IN_USE(users[0])
    cloud.delete(sg)
    return {}
