"""What the alicloud-ecs builder's steps share: their state, and how a resource is created and
deleted. The steps themselves are in steps_*.py, one per resource; build.py is the plan.

Every resource is written to the run's journal the moment it exists (and a create call is journaled
as pending before it is sent), and carries the `kiln-run-id` tag from its creation on.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from kiln.alicloud import reaper
from kiln.alicloud.client import AlicloudClient, ApiError, items
from kiln.alicloud.journal import Journal, run_tags
from kiln.alicloud.waiter import ADAPTIVE, WaitPolicy, wait_until
from kiln.builders.alicloud_ecs.config import AlicloudEcsConfig
from kiln.communicators.base import Communicator
from kiln.components import BuildContext
from kiln.engine.steps import CleanupFailed
from kiln.errors import BuildError

if TYPE_CHECKING:
    from kiln.communicators.keys import TemporaryKeyPair

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
    source_image: dict[str, Any] = field(default_factory=dict)
    existing_images: list[dict[str, Any]] = field(default_factory=list)
    key_pair_name: str = ""
    key_pair_created: bool = False
    key_pair_detached: bool = False
    private_key: str = ""  #: of the temporary key pair, as CreateKeyPair returned it
    vpc_id: str = ""
    vpc_created: bool = False
    vswitch_id: str = ""
    vswitch_created: bool = False
    zone_id: str = ""
    security_group_id: str = ""
    security_group_created: bool = False
    instance_id: str = ""
    instance: dict[str, Any] = field(default_factory=dict)
    instance_deleted: bool = False
    eip_id: str = ""
    eip_allocated: bool = False
    eip_associated: bool = False
    host: str = ""
    key: TemporaryKeyPair | None = None
    communicator: Communicator | None = None
    snapshot_id: str = ""  #: of the system disk, with image_ignore_data_disks
    image_id: str = ""
    images: dict[str, str] = field(default_factory=dict)  #: region -> image id, the artifact
    succeeded: bool = False

    @property
    def region(self) -> str:
        return self.client.region

    def temporary_key(self) -> TemporaryKeyPair | None:
        """The temporary key pair the cloud made, for the SSH communicator (None without one)."""
        if self.key is not None or not self.private_key or self.config.communicator != "ssh":
            return self.key
        import asyncssh  # only a build that connects loads it

        from kiln.communicators.keys import TemporaryKeyPair

        # TemporaryKeyPair registers the private key as a secret.
        self.key = TemporaryKeyPair(asyncssh.import_private_key(self.private_key), self.key_pair_name)
        return self.key

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


def delete_tracked(state: EcsState, kind: str, rid: str, client: AlicloudClient | None = None) -> None:
    """Delete one resource of the run and journal it as deleted; raise CleanupFailed saying what the
    user must delete by hand if it cannot be."""
    try:
        reaper.DELETERS[kind](client or state.client, rid)
    except Exception as exc:
        raise CleanupFailed(
            f"{kind.replace('_', ' ')} {rid} ({exc}); delete it by hand or run `kiln cleanup --run-id {state.run_id}`"
        ) from None
    state.journal.deleted(kind, rid)


def delete_network(state: EcsState, ctx: BuildContext, label: str, kind: str, rid: str) -> bool:
    """Delete a network resource the run made, saying "Cleaning up '<label>'"; False (and nothing
    deleted) while the instance is still there (its delete failed): deleting now would only meet
    DependencyViolation for minutes, so the final sweep deletes the instance, then this."""
    if state.instance_id and not state.instance_deleted:
        ctx.log.info("%s %s is left to the sweep: instance %s is still there", kind, rid, state.instance_id)
        return False
    ctx.ui.say(f"Cleaning up '{label}'")
    delete_tracked(state, kind, rid)
    return True


def wait(
    state: EcsState, ctx: BuildContext, probe: Callable[[], T | None], what: str, timeout: float = SHORT_WAIT
) -> T:
    """wait_until with the build's poll policy, cancelled with the build (or its branch)."""
    return wait_until(probe, what=what, timeout=timeout, cancel=ctx.cancel, policy=state.policy)


def create_available(
    state: EcsState, ctx: BuildContext, kind: str, action: str, params: dict[str, Any], describe: str
) -> str:
    """create_tracked, then wait (SHORT_WAIT at most) until `describe` lists the new resource as
    Available; returns its id (`<Kind>Id` of the answer, as for VPCs and vSwitches)."""
    id_field = {"vpc": "VpcId", "vswitch": "VSwitchId"}[kind]
    rid, _ = create_tracked(state, ctx, kind, action, params, lambda b: str(b[id_field]))
    path = {"vpc": ("Vpcs", "Vpc"), "vswitch": ("VSwitches", "VSwitch")}[kind]

    def available() -> bool | None:
        listed = items(state.client.call(describe, {id_field: rid}), *path)
        return True if any(i.get("Status") == "Available" for i in listed) else None

    wait(state, ctx, available, f"{kind} {rid} to become available")
    return rid


def find_given(
    state: EcsState,
    ctx: BuildContext,
    what: str,
    action: str,
    params: dict[str, str],
    path: tuple[str, str],
    hint: str,
) -> dict[str, Any]:
    """A resource the user named (vpc_id...), which must exist: the Describe answer's item whose id
    field (the first of `params`) is the one given."""
    id_field, rid = next(iter(params.items()))
    found = [
        i
        for i in items(state.client.call(action, params, cancel=ctx.cancel), *path)
        if i.get(id_field) == rid
    ]
    if not found:
        raise BuildError(f"The specified {what} {{{rid}}} doesn't exist.", hint)
    return dict(found[0])


def instance_ids(*ids: str) -> str:
    return json.dumps(list(ids))
