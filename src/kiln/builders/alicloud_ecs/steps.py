"""The alicloud-ecs builder's steps up to a running instance: Packer's steps, in Packer's order, with
the lines of Packer's log, but with independent work done at the same time.

Every resource is written to the run's journal the moment it exists (and a create call is journaled
as pending before it is sent), and carries the `kiln-run-id` tag from its creation on.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kiln.alicloud import reaper
from kiln.alicloud.client import AlicloudClient, ApiError
from kiln.alicloud.journal import Journal, run_tags
from kiln.alicloud.waiter import ADAPTIVE, WaitPolicy, wait_until
from kiln.builders.alicloud_ecs.config import DEFAULT_VPC_CIDR, DEFAULT_VSWITCH_CIDR, AlicloudEcsConfig
from kiln.communicators.base import Communicator
from kiln.components import BuildContext
from kiln.engine.steps import CleanupFailed, Step
from kiln.errors import BuildError

T = TypeVar("T")

SHORT_WAIT = 60.0  # Packer: 12 tries x 5 s
INSTANCE_WAIT = 1800.0  # Packer: 360 tries x 5 s


@dataclass
class EcsState:
    config: AlicloudEcsConfig
    client: AlicloudClient
    journal: Journal
    run_id: str
    policy: WaitPolicy = ADAPTIVE
    parallel: bool = True
    source_image: dict[str, Any] = field(default_factory=dict)
    existing_images: list[dict[str, Any]] = field(default_factory=list)
    key_pair_name: str = ""
    key_pair_created: bool = False
    key_pair_detached: bool = False
    private_key: str = ""
    vpc_id: str = ""
    vpc_created: bool = False
    vswitch_id: str = ""
    vswitch_created: bool = False
    zone_id: str = ""
    security_group_id: str = ""
    security_group_created: bool = False
    instance_id: str = ""
    instance: dict[str, Any] = field(default_factory=dict)
    eip_id: str = ""
    eip_allocated: bool = False
    eip_associated: bool = False
    host: str = ""
    communicator: Communicator | None = None
    image_id: str = ""
    images: dict[str, str] = field(default_factory=dict)  #: region -> image id, the artifact
    succeeded: bool = False

    @property
    def region(self) -> str:
        return self.client.region

    def tags(self, extra: dict[str, str] | None = None) -> list[dict[str, str]]:
        """Tag.N of a create call: the user's tags, then the run's (id, host, heartbeat)."""
        tags = [{"Key": k, "Value": v} for k, v in (extra or {}).items()]
        return [*tags, *run_tags(self.run_id)]


def create_tracked(
    state: EcsState,
    ctx: BuildContext,
    kind: str,
    action: str,
    params: dict[str, Any],
    id_of: Callable[[dict[str, Any]], str],
    region: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """Create a resource with a ClientToken, journaled as pending before the call and as created
    the moment its id is known (in `region`, where the resource lives, by default the client's)."""
    client = state.client
    region = region or client.region
    token = str(uuid.uuid4())
    state.journal.pending(kind, region, token)
    try:
        body = client.call(action, {**params, "ClientToken": token}, cancel=ctx.cancel)
    except ApiError as exc:
        if exc.code != "ConnectionFailed":  # an answer came: nothing was made with this token
            state.journal.forget_pending(token)
        raise
    rid = id_of(body)
    state.journal.created(kind, rid, region, token)
    return rid, body


def run_parallel(state: EcsState, *jobs: Callable[[], T]) -> list[T]:
    """Run jobs at once (or in turn, replaying Packer's strategy); wait for all, then re-raise the
    first error, so that every job that made something has recorded it before cleanup starts."""
    if not state.parallel or len(jobs) <= 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures: list[Future[T]] = [pool.submit(job) for job in jobs]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]  # type: ignore[misc]
    return [f.result() for f in futures]


def images_in(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list((body.get("Images") or {}).get("Image") or [])


class StepPreValidate(Step[EcsState]):
    """Region(s) exist, no image already has the target name (unless forced), the source image exists."""

    name = "StepPreValidate"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        client = state.client

        def regions() -> None:
            if cfg.skip_region_validation:
                return
            body = client.call("DescribeRegions", {}, cancel=ctx.cancel)
            known = {r.get("RegionId") for r in (body.get("Regions") or {}).get("Region") or []}
            bad = [r for r in [cfg.region, *cfg.image_copy_regions] if r not in known]
            if bad:
                raise BuildError(
                    f"Not a valid alicloud region: {', '.join(bad)}",
                    "check region / image_copy_regions, or set skip_region_validation",
                )

        def existing() -> list[dict[str, Any]]:
            body = client.call(
                "DescribeImages",
                {"ImageName": cfg.image_name, "ImageOwnerAlias": "self", "Status": _ALL_IMAGE_STATUS},
                cancel=ctx.cancel,
            )
            return [i for i in images_in(body) if i.get("ImageName") == cfg.image_name]

        def source() -> dict[str, Any]:
            if cfg.image_family:
                body = client.call(
                    "DescribeImageFromFamily", {"ImageFamily": cfg.image_family}, cancel=ctx.cancel
                )
                image = body.get("Image") or {}
                if not image.get("ImageId"):
                    raise BuildError(f"No alicloud image was found in image family: {cfg.image_family}")
                return dict(image)
            params: dict[str, Any] = {"ImageId": cfg.source_image}
            if cfg.skip_image_validation:
                params["ShowExpired"] = True
            found = images_in(client.call("DescribeImages", params, cancel=ctx.cancel))
            if not found:
                market = {**params, "ImageOwnerAlias": "marketplace"}
                found = images_in(client.call("DescribeImages", market, cancel=ctx.cancel))
            if not found:
                raise BuildError(
                    f"No alicloud image was found matching filters: {cfg.source_image}",
                    "check source_image (an image id of this region, e.g. from DescribeImages)",
                )
            return found[0]

        ctx.ui.say("Prevalidating image name...")
        images: list[dict[str, Any]] = []
        image: dict[str, Any] = {}

        def lookup() -> None:
            images.extend(existing())

        def find_source() -> None:
            image.update(source())

        def zone() -> None:
            # Looked up now (a read like the others): an instance type the region lacks fails the
            # build before anything is created.
            state.zone_id = StepNetwork.find_zone(state, ctx)

        run_parallel(state, regions, lookup, find_source, zone)
        if images:
            if not cfg.image_force_delete:
                raise BuildError(
                    f"Error: Image Name: '{images[0].get('ImageName')}' is used by an existing alicloud "
                    f"image: {images[0].get('ImageId')}",
                    "choose another image_name, or run with -force (image_force_delete) to replace it",
                )
            state.existing_images = images
        state.source_image = image
        ctx.ui.message(f"Found image ID: {image.get('ImageId')}")


_ALL_IMAGE_STATUS = "Creating,Waiting,Available,UnAvailable,CreateFailed"


class StepNetwork(Step[EcsState]):
    """Key pair, VPC then vSwitch and security group: the independent ones at the same time."""

    name = "StepConfigAlicloudNetwork"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        # Packer's rule: a temporary key pair unless the user gave a key, a key pair or a password.
        temporary_key = bool(cfg.temporary_key_pair_name) or (
            cfg.communicator == "ssh"
            and not (
                cfg.ssh_private_key_file or cfg.ssh_password or cfg.ssh_keypair_name or cfg.ssh_agent_auth
            )
        )
        if temporary_key:
            state.key_pair_name = cfg.temporary_key_pair_name or f"packer_{uuid.uuid4().hex[:24]}"
            ctx.ui.say(f"Creating temporary keypair: {state.key_pair_name}")
        elif cfg.ssh_keypair_name:
            state.key_pair_name = cfg.ssh_keypair_name
        if not cfg.vpc_id:
            ctx.ui.say("Creating vpc")
        run_parallel(
            state,
            lambda: self._key_pair(state, ctx) if temporary_key else None,
            lambda: self._vpc_and_more(state, ctx),
        )

    def _key_pair(self, state: EcsState, ctx: BuildContext) -> None:
        name = state.key_pair_name
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

    def _vpc_and_more(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        self._vpc(state, ctx)
        if not cfg.vswitch_id:
            ctx.ui.say("Creating vswitch...")
        if not cfg.security_group_id:
            ctx.ui.say("Creating security groups...")
        run_parallel(state, lambda: self._vswitch(state, ctx), lambda: self._security_group(state, ctx))

    def _vpc(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        client = state.client
        if cfg.vpc_id:
            body = client.call("DescribeVpcs", {"VpcId": cfg.vpc_id}, cancel=ctx.cancel)
            if not (body.get("Vpcs") or {}).get("Vpc"):
                raise BuildError(
                    f"The specified vpc {{{cfg.vpc_id}}} doesn't exist.", "check vpc_id and region"
                )
            state.vpc_id = cfg.vpc_id
            return
        params = {"CidrBlock": cfg.vpc_cidr_block or DEFAULT_VPC_CIDR, "VpcName": cfg.vpc_name or None}
        vpc_id, _ = create_tracked(
            state, ctx, "vpc", "CreateVpc", {**params, "Tag": state.tags()}, lambda b: str(b["VpcId"])
        )
        state.vpc_id, state.vpc_created = vpc_id, True
        wait_until(
            lambda: _status_is(client.call("DescribeVpcs", {"VpcId": vpc_id}), "Vpcs", "Vpc", "Available"),
            what=f"vpc {vpc_id} to become available",
            timeout=SHORT_WAIT,
            cancel=ctx.cancel,
            policy=state.policy,
        )
        ctx.ui.message(f"Created vpc: {vpc_id}")

    @staticmethod
    def find_zone(state: EcsState, ctx: BuildContext) -> str:
        """The zone for the vSwitch: the user's, or the first that offers vSwitches and the type."""
        cfg = state.config
        if cfg.zone_id or cfg.vswitch_id:
            return cfg.zone_id
        body = state.client.call("DescribeZones", {}, cancel=ctx.cancel)
        offered: list[str] = []
        for zone in (body.get("Zones") or {}).get("Zone") or []:
            resources = (zone.get("AvailableResourceCreation") or {}).get("ResourceTypes") or []
            if "VSwitch" not in resources:
                continue
            types = (zone.get("AvailableInstanceTypes") or {}).get("InstanceTypes") or []
            if cfg.instance_type in types:
                return str(zone["ZoneId"])
            offered.extend(t for t in types if t not in offered)
        hint = f"use one of: {', '.join(offered[:20])}" if offered else "choose another region"
        raise BuildError(f"The instance type {cfg.instance_type} isn't available in this region.", hint)

    def _vswitch(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        client = state.client
        if cfg.vswitch_id:
            body = client.call(
                "DescribeVSwitches", {"VSwitchId": cfg.vswitch_id, "VpcId": state.vpc_id}, cancel=ctx.cancel
            )
            found = (body.get("VSwitches") or {}).get("VSwitch") or []
            if not found:
                raise BuildError(
                    f"The specified vswitch {{{cfg.vswitch_id}}} doesn't exist.",
                    "check vswitch_id and vpc_id",
                )
            state.vswitch_id = cfg.vswitch_id
            state.zone_id = state.zone_id or str(found[0].get("ZoneId") or "")
            return
        params = {
            "VpcId": state.vpc_id,
            "ZoneId": state.zone_id,
            "CidrBlock": cfg.cidr_block or DEFAULT_VSWITCH_CIDR,
            "VSwitchName": cfg.vswitch_name or None,
            "Tag": state.tags(),
        }
        vswitch_id, _ = create_tracked(
            state, ctx, "vswitch", "CreateVSwitch", params, lambda b: str(b["VSwitchId"])
        )
        state.vswitch_id, state.vswitch_created = vswitch_id, True
        wait_until(
            lambda: _status_is(
                client.call("DescribeVSwitches", {"VSwitchId": vswitch_id}),
                "VSwitches",
                "VSwitch",
                "Available",
            ),
            what=f"vswitch {vswitch_id} to become available",
            timeout=SHORT_WAIT,
            cancel=ctx.cancel,
            policy=state.policy,
        )
        ctx.ui.message(f"Created vswitch: {vswitch_id}")

    def _security_group(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        client = state.client
        if cfg.security_group_id:
            body = client.call(
                "DescribeSecurityGroups",
                {"SecurityGroupId": cfg.security_group_id, "VpcId": state.vpc_id},
                cancel=ctx.cancel,
            )
            groups = (body.get("SecurityGroups") or {}).get("SecurityGroup") or []
            if not any(g.get("SecurityGroupId") == cfg.security_group_id for g in groups):
                raise BuildError(
                    f"The specified security group {{{cfg.security_group_id}}} doesn't exist.",
                    "check security_group_id (it must belong to the vpc)",
                )
            state.security_group_id = cfg.security_group_id
            return
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
        rule = {"SecurityGroupId": group_id, "IpProtocol": "all", "PortRange": "-1/-1", "NicType": "internet"}
        run_parallel(
            state,
            lambda: client.call(
                "AuthorizeSecurityGroupEgress", {**rule, "DestCidrIp": "0.0.0.0/0"}, cancel=ctx.cancel
            ),
            lambda: client.call(
                "AuthorizeSecurityGroup", {**rule, "SourceCidrIp": "0.0.0.0/0"}, cancel=ctx.cancel
            ),
        )

    def cleanup(self, state: EcsState, ctx: BuildContext) -> None:
        failures: list[str] = []
        client = state.client
        instance_left = any(e.kind == "instance" and e.state == "created" for e in state.journal.entries)
        if instance_left:
            # Deleting them now would only meet DependencyViolation for minutes: the final sweep
            # deletes the instance first, then these.
            ctx.ui.error(
                f"Instance {state.instance_id} is still there: its network is deleted after it, by the sweep"
            )
            return
        # The security group and the vSwitch go at the same time, then the VPC that holds them; the
        # key pair, independent of all three, meanwhile. Lines are said in Packer's order.
        key_pair: list[str] = []

        def delete_key_pair() -> None:
            if state.key_pair_created:
                key_pair.extend(
                    delete_recorded(
                        state,
                        "key_pair",
                        state.key_pair_name,
                        lambda: reaper.delete_key_pair(client, state.key_pair_name),
                    )
                )

        def delete_network() -> None:
            first = [
                (label, kind, rid, delete)
                for label, created, kind, rid, delete in (
                    (
                        "security group",
                        state.security_group_created,
                        "security_group",
                        state.security_group_id,
                        reaper.delete_security_group,
                    ),
                    ("vSwitch", state.vswitch_created, "vswitch", state.vswitch_id, reaper.delete_vswitch),
                )
                if created and rid
            ]
            for label, *_ in first:
                ctx.ui.say(f"Cleaning up '{label}'")
            results = run_parallel(
                state,
                *[
                    lambda k=kind, r=rid, d=delete: delete_recorded(state, k, r, lambda: d(client, r))
                    for _, kind, rid, delete in first
                ],  # type: ignore[misc]
            )
            failures.extend(f for result in results for f in result)
            if state.vpc_created and state.vpc_id and not failures:
                # (after a failure above the VPC still holds something: the sweep retries it after that)
                ctx.ui.say("Cleaning up 'VPC'")
                failures.extend(
                    delete_recorded(
                        state, "vpc", state.vpc_id, lambda: reaper.delete_vpc(client, state.vpc_id)
                    )
                )

        run_parallel(state, delete_network, delete_key_pair)
        if state.key_pair_created:
            ctx.ui.say("Deleting temporary keypair...")
        failures.extend(key_pair)
        if failures:
            raise CleanupFailed("; ".join(failures))


def delete_recorded(state: EcsState, kind: str, rid: str, delete: Callable[[], None]) -> list[str]:
    """Delete one resource; journal it as deleted, or return what the user must delete by hand."""
    try:
        delete()
    except Exception as exc:
        return [
            f"{kind.replace('_', ' ')} {rid} ({exc}); delete it by hand or run `kiln cleanup --run-id {state.run_id}`"
        ]
    state.journal.deleted(kind, rid)
    return []


def _status_is(body: dict[str, Any], outer: str, inner: str, status: str) -> bool | None:
    items = (body.get(outer) or {}).get(inner) or []
    return True if any(i.get("Status") == status for i in items) else None


def instance_ids(*ids: str) -> str:
    return json.dumps(list(ids))
