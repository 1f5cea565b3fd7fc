"""How the alicloud-ecs builder builds: Packer's steps, with independent resources made at the same
time, adaptive waits, and nothing left behind.

Leak-proofing, in three layers: each step's cleanup deletes what it made; after the steps, anything
the journal still lists (a create whose answer was lost, a delete that failed) is looked for by its
`kiln-run-id` tag and deleted; and a build killed outright leaves its journal, which
`kiln cleanup --stale` (or `--run-id`) works from.
"""

from __future__ import annotations

import uuid

from kiln.alicloud import reaper
from kiln.alicloud.client import AlicloudClient
from kiln.alicloud.heartbeat import Heartbeat
from kiln.alicloud.journal import FAILED, FINISHED, KINDS, Journal
from kiln.alicloud.waiter import WaitPolicy
from kiln.builders.alicloud_ecs.artifact import images_artifact
from kiln.builders.alicloud_ecs.config import AlicloudEcsConfig
from kiln.builders.alicloud_ecs.steps import EcsState
from kiln.builders.alicloud_ecs.steps_image import (
    StepCreateImage,
    StepCreateSnapshot,
    StepCreateTags,
    StepDeleteImages,
    StepRegionCopyImage,
    StepShareImage,
    StepStopInstance,
    StepWaitImage,
    image_names,
)
from kiln.builders.alicloud_ecs.steps_instance import (
    StepAttachKeyPair,
    StepConfigEip,
    StepCreateInstance,
    StepRunInstance,
)
from kiln.builders.alicloud_ecs.steps_network import (
    StepAuthorizeRule,
    StepConfigKeyPair,
    StepConfigSecurityGroup,
    StepConfigVPC,
    StepConfigVSwitch,
)
from kiln.builders.alicloud_ecs.steps_validate import (
    StepCheckImageName,
    StepCheckRegions,
    StepCheckSourceImage,
    StepFindZone,
)
from kiln.builders.connect import StepCleanupTempKeys, StepConnect, StepProvision
from kiln.components import Artifact, BuildContext
from kiln.engine.steps import CleanupEarly, Parallel, Sequence, Step, run_steps


class StepDone(Step[EcsState]):
    """Marks success before the cleanups run, so that the image steps keep what they made."""

    name = "StepDone"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        state.succeeded = True


def plan(cfg: AlicloudEcsConfig) -> Sequence[EcsState]:
    from kiln.builders.alicloud_ecs import cache

    """Packer's steps, in Packer's order; what does not depend on each other runs in Parallel."""
    eip, attach_key_pair = StepConfigEip(), StepAttachKeyPair()
    steps: list[Step[EcsState]] = [
        Parallel(
            StepCheckImageName(), StepCheckSourceImage(), StepCheckRegions(), StepFindZone(),
            name="StepPreValidate",
        ),
        cache.StepCacheSource(),
        Parallel(
            StepConfigKeyPair(),
            Sequence(
                StepConfigVPC(),
                Parallel(
                    StepConfigVSwitch(),
                    Sequence(
                        StepConfigSecurityGroup(),
                        Parallel(StepAuthorizeRule(egress=True), StepAuthorizeRule(egress=False)),
                    ),
                ),
            ),
            name="StepConfigAlicloudNetwork",
        ),
        StepCreateInstance(),  # with the key pair: the instance boots once
        eip,  # allocated while the instance boots, associated by StepRunInstance
        attach_key_pair,
        StepRunInstance(),
        StepConnect(cfg, host=lambda s: cfg.ssh_host or s.host, private_key=EcsState.temporary_key),
        StepProvision(checkpoint=cache.checkpoint),
        StepCleanupTempKeys(cfg, key=lambda s: s.key),
        StepStopInstance(),
    ]  # fmt: skip
    if not cfg.skip_create_image:
        if cfg.image_force_delete:
            targets = [(cfg.region, cfg.image_name), *image_names(cfg)]
            steps.append(
                Parallel(*(StepDeleteImages(r, n) for r, n in targets), name="StepDeleteAlicloudImages")
            )
        if cfg.image_ignore_data_disks:
            steps.append(StepCreateSnapshot())
        copies = [(r, n) for r, n in image_names(cfg) if r != cfg.region]
        steps += [
            StepCreateImage(),
            Parallel(
                # the address and the key are of no more use: given back while the image is made
                CleanupEarly(attach_key_pair, eip, name="StepReleaseEarly"),
                StepWaitImage(),
            ),
            StepCreateTags(),
            Parallel(
                *(StepRegionCopyImage(r, n) for r, n in dict(copies).items()),
                name="StepRegionCopyAlicloudImage",
            ),
            StepShareImage(),
        ]
    steps.append(StepDone())
    return Sequence(*steps)


def build_image(cfg: AlicloudEcsConfig, ctx: BuildContext, policy: WaitPolicy) -> Artifact | None:
    run_id = f"{ctx.run_uuid[:8]}-{uuid.uuid4().hex[:8]}"
    client = AlicloudClient(cfg, cfg.region)
    client.warm_up("ecs", "vpc")
    endpoint = client.endpoint.url() if client.endpoint else None
    journal = Journal(run_id, cfg.region, endpoint)
    ctx.log.info("alicloud-ecs: run id %s, journal %s", run_id, journal.path)
    state = EcsState(cfg, client, journal, run_id, policy=policy)
    ctx.generated["SourceImage"] = cfg.source_image or cfg.image_family
    from kiln.builders.alicloud_ecs.cache import final_artifact

    if (cached := final_artifact(cfg, ctx, client)) is not None:
        return cached
    try:
        with Heartbeat(journal, client, warn=ctx.ui.error):
            run_steps(plan(cfg), state, ctx)
    except BaseException:
        sweep(state, ctx)
        journal.finish(FAILED)
        raise
    sweep(state, ctx)
    journal.finish(FINISHED)
    if not state.images:
        return None
    return images_artifact(state.images, client)


def sweep(state: EcsState, ctx: BuildContext) -> None:
    """Delete what the journal still lists after the steps' cleanups: a resource whose create
    answer was lost is found by its run tag. Never raises; says what is left."""
    leftovers = [e for e in state.journal.leftovers() if e.kind in KINDS]
    if not leftovers:
        return
    regions = sorted({e.region for e in leftovers})
    ctx.log.info("sweeping %d leftover(s) of run %s by tag", len(leftovers), state.run_id)
    for region in regions:
        client = state.client.for_region(region)
        try:
            found = reaper.find_tagged(client, state.run_id)
        except Exception as exc:
            ctx.ui.error(f"Cannot look for leftovers of run {state.run_id} in {region}: {exc}")
            continue
        kept = {e.id for e in state.journal.entries if e.state == "kept"}
        listed = {(e.kind, e.id) for e in leftovers if e.region == region and e.id}
        targets = {(t.kind, t.id) for t in found if t.id not in kept} | listed
        for kind in KINDS:
            for rid in sorted(r for k, r in targets if k == kind):
                try:
                    reaper.DELETERS[kind](client, rid)
                    state.journal.deleted(kind, rid)
                except Exception as exc:
                    ctx.ui.error(
                        f"Could not delete {kind.replace('_', ' ')} {rid} in {region}: {exc}; "
                        f"run `kiln cleanup --run-id {state.run_id}` or delete it by hand"
                    )
    # A pending entry is settled by the tag search above: whatever it made is found or never was.
    for entry in state.journal.entries:
        if entry.state == "pending":
            state.journal.forget_pending(entry.token)
