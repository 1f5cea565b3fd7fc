"""The instance's key pair and network (Packer's step_config_alicloud_*): each the user's, looked up,
or a temporary one, created and deleted again. The plan runs the key pair beside the VPC, and the
vSwitch beside the security group once the VPC exists."""

from __future__ import annotations

import uuid

from kiln.alicloud.client import ApiError
from kiln.builders.alicloud_ecs.config import DEFAULT_VPC_CIDR, DEFAULT_VSWITCH_CIDR
from kiln.builders.alicloud_ecs.steps import (
    EcsState,
    create_available,
    create_tracked,
    delete_network,
    delete_tracked,
    find_given,
)
from kiln.components import BuildContext
from kiln.engine.steps import Step


class StepConfigKeyPair(Step[EcsState]):
    """A temporary key pair unless the user gave a key, a key pair or a password (Packer's rule)."""

    name = "StepConfigAlicloudKeyPair"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        own_login = cfg.ssh_private_key_file or cfg.ssh_password or cfg.ssh_keypair_name or cfg.ssh_agent_auth
        if not cfg.temporary_key_pair_name and (cfg.communicator != "ssh" or own_login):
            state.key_pair_name = cfg.ssh_keypair_name
            return
        name = state.key_pair_name = cfg.temporary_key_pair_name or f"packer_{uuid.uuid4().hex[:24]}"
        ctx.ui.say(f"Creating temporary keypair: {name}")
        state.journal.created("key_pair", name, state.region)  # before the call: names are known
        try:
            body = state.client.call(
                "CreateKeyPair", {"KeyPairName": name, "Tag": state.tags()}, cancel=ctx.cancel
            )
        except ApiError as exc:
            if exc.code != "ConnectionFailed":
                state.journal.deleted("key_pair", name)
            raise
        state.key_pair_created = True
        state.private_key = str(body.get("PrivateKeyBody") or "")

    def cleanup(self, state: EcsState, ctx: BuildContext) -> None:
        if state.key_pair_created:
            ctx.ui.say("Deleting temporary keypair...")
            delete_tracked(state, "key_pair", state.key_pair_name)
            state.key_pair_created = False


class StepConfigVPC(Step[EcsState]):
    """The user's VPC (vpc_id), or a temporary one, deleted once what it holds is gone."""

    name = "StepConfigAlicloudVPC"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        if cfg.vpc_id:
            given = {"VpcId": cfg.vpc_id}
            find_given(state, ctx, "vpc", "DescribeVpcs", given, ("Vpcs", "Vpc"), "check vpc_id and region")
            state.vpc_id = cfg.vpc_id
            return
        ctx.ui.say("Creating vpc")
        params = {
            "CidrBlock": cfg.vpc_cidr_block or DEFAULT_VPC_CIDR,
            "VpcName": cfg.vpc_name or None,
            "Tag": state.tags(),
        }
        state.vpc_id = create_available(state, ctx, "vpc", "CreateVpc", params, "DescribeVpcs")
        state.vpc_created = True
        ctx.ui.message(f"Created vpc: {state.vpc_id}")

    def cleanup(self, state: EcsState, ctx: BuildContext) -> None:
        if not state.vpc_created:
            return
        if state.vswitch_created or state.security_group_created:
            ctx.log.info("vpc %s still holds what failed to delete: left to the sweep", state.vpc_id)
            return
        if delete_network(state, ctx, "VPC", "vpc", state.vpc_id):
            state.vpc_created = False


class StepConfigVSwitch(Step[EcsState]):
    """The user's vSwitch (vswitch_id, whose zone the instance goes to), or a temporary one in the
    zone StepFindZone chose."""

    name = "StepConfigAlicloudVSwitch"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        if cfg.vswitch_id:
            given = {"VSwitchId": cfg.vswitch_id, "VpcId": state.vpc_id}
            path = ("VSwitches", "VSwitch")
            found = find_given(
                state, ctx, "vswitch", "DescribeVSwitches", given, path, "check vswitch_id and vpc_id"
            )
            state.vswitch_id = cfg.vswitch_id
            state.zone_id = state.zone_id or str(found.get("ZoneId") or "")
            return
        ctx.ui.say("Creating vswitch...")
        params = {
            "VpcId": state.vpc_id,
            "ZoneId": state.zone_id,
            "CidrBlock": cfg.cidr_block or DEFAULT_VSWITCH_CIDR,
            "VSwitchName": cfg.vswitch_name or None,
            "Tag": state.tags(),
        }
        state.vswitch_id = create_available(
            state, ctx, "vswitch", "CreateVSwitch", params, "DescribeVSwitches"
        )
        state.vswitch_created = True
        ctx.ui.message(f"Created vswitch: {state.vswitch_id}")

    def cleanup(self, state: EcsState, ctx: BuildContext) -> None:
        if state.vswitch_created and delete_network(state, ctx, "vSwitch", "vswitch", state.vswitch_id):
            state.vswitch_created = False


class StepConfigSecurityGroup(Step[EcsState]):
    """The user's security group, or a temporary one (StepAuthorizeRule opens it, as Packer does)."""

    name = "StepConfigAlicloudSecurityGroup"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        if cfg.security_group_id:
            given = {"SecurityGroupId": cfg.security_group_id, "VpcId": state.vpc_id}
            path = ("SecurityGroups", "SecurityGroup")
            hint = "check security_group_id (it must belong to the vpc)"
            find_given(state, ctx, "security group", "DescribeSecurityGroups", given, path, hint)
            state.security_group_id = cfg.security_group_id
            return
        ctx.ui.say("Creating security groups...")
        params = {
            "VpcId": state.vpc_id,
            "SecurityGroupName": cfg.security_group_name or None,
            "Tag": state.tags(),
        }
        group_id, _ = create_tracked(
            state, ctx, "security_group", "CreateSecurityGroup", params, lambda b: str(b["SecurityGroupId"])
        )
        state.security_group_id, state.security_group_created = group_id, True
        ctx.ui.message(f"Created security group: {group_id}")

    def cleanup(self, state: EcsState, ctx: BuildContext) -> None:
        group = state.security_group_id
        if state.security_group_created and delete_network(
            state, ctx, "security group", "security_group", group
        ):
            state.security_group_created = False


class StepAuthorizeRule(Step[EcsState]):
    """A rule of the temporary security group letting all traffic out (egress) or in (ingress);
    deleted with the group."""

    name = "StepAuthorizeSecurityGroupRule"

    def __init__(self, egress: bool) -> None:
        self.egress = egress

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        if not state.security_group_created:
            return
        rule = {"SecurityGroupId": state.security_group_id, "IpProtocol": "all", "PortRange": "-1/-1"}
        action, peer = (
            ("AuthorizeSecurityGroupEgress", "DestCidrIp")
            if self.egress
            else ("AuthorizeSecurityGroup", "SourceCidrIp")
        )
        state.client.call(action, {**rule, "NicType": "internet", peer: "0.0.0.0/0"}, cancel=ctx.cancel)
