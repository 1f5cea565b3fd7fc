"""Security groups and their rules (enforced on the instances' public addresses, see model.firewall)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kiln.localcloud import errors
from kiln.localcloud.api import views
from kiln.localcloud.api.describe import AnyOf, Describe, Equals, Tags
from kiln.localcloud.api.registry import ECS, Handler, Json, action
from kiln.localcloud.api.request import Call
from kiln.localcloud.model.cloud import Cloud
from kiln.localcloud.store import new_id

PROTOCOLS = ("tcp", "udp", "icmp", "icmpv6", "gre", "all")
_PORT_RANGE = re.compile(r"^-?\d{1,5}/-?\d{1,5}$")


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


def _rule(given: Mapping[str, str], direction: str, where: str = "") -> dict[str, Any]:
    """One rule from its fields (the call's own, or a `Permissions.N` of it, named by `where`)."""

    def text(name: str, default: str = "") -> str:
        return given.get(name) or default

    protocol = text("IpProtocol").lower()
    if not protocol:
        raise errors.missing(f"{where}IpProtocol")
    if protocol not in PROTOCOLS:
        raise errors.invalid(f"{where}IpProtocol", "must be tcp, udp, icmp, icmpv6, gre or all")
    port_range = text("PortRange", "" if protocol in ("tcp", "udp") else "-1/-1")
    if not port_range:
        raise errors.missing(f"{where}PortRange")
    if not _PORT_RANGE.match(port_range):
        raise errors.invalid(f"{where}PortRange", "must be <from>/<to>, as 22/22, 1/65535 or -1/-1")
    policy = text("Policy", "accept").lower()
    if policy not in ("accept", "drop"):
        raise errors.invalid(f"{where}Policy", "must be accept or drop")
    priority = text("Priority", "1")
    if not priority.isdigit() or not 1 <= int(priority) <= 100:
        raise errors.invalid(f"{where}Priority", "must be between 1 and 100")
    return {
        "Direction": direction,
        "IpProtocol": protocol.upper() if protocol != "all" else "ALL",
        "PortRange": port_range,
        "SourceCidrIp": text("SourceCidrIp"),
        "DestCidrIp": text("DestCidrIp"),
        "Policy": policy.capitalize(),
        "NicType": text("NicType", "intranet"),
        "Priority": priority,
        "Description": text("Description"),
        "SourceGroupId": text("SourceGroupId"),
        "DestGroupId": text("DestGroupId"),
    }


def _rules_of(call: Call, direction: str) -> list[dict[str, Any]]:
    """The call's `Permissions.N` rules, or the one its own fields give."""
    permissions = call.structs("Permissions")
    if permissions:
        return [_rule(p, direction, f"Permissions.{n}.") for n, p in enumerate(permissions, 1)]
    return [_rule(call.params, direction)]


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two rules are the same one when they differ at most in description and priority."""
    return all(a[k] == b[k] for k in a if k not in ("Description", "Priority"))


def _rules_action(direction: str, add: bool) -> Handler:
    """Authorize (add) or revoke a rule of one direction."""

    async def change(cloud: Cloud, call: Call) -> Json:
        sg = cloud.find("sg", call.require("SecurityGroupId"), call.region)
        for rule in _rules_of(call, direction):
            if sg["VpcId"]:
                rule["NicType"] = "intranet"  # the only network type of a VPC's group: `internet` is ignored
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
        view=views.security_group,
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
