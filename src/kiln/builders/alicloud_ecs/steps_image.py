"""From the provisioned instance to the image: stop, replace a same-named image when forced, create
the image, tag it, copy it to other regions, share it. A failed or cancelled build deletes the
images it made (and their snapshots); a successful one marks them kept in the journal."""

from __future__ import annotations

import threading
from typing import Any

from kiln.alicloud import reaper
from kiln.alicloud.client import AlicloudClient
from kiln.alicloud.waiter import wait_until
from kiln.builders.alicloud_ecs.steps import (
    EcsState,
    create_tracked,
    images_in,
    instance_ids,
    run_parallel,
)
from kiln.builders.alicloud_ecs.steps_instance import StepAttachKeyPair, StepConfigEip, wait_instance
from kiln.components import BuildContext
from kiln.engine.steps import CleanupFailed, Step
from kiln.errors import BuildError


class StepStopInstance(Step[EcsState]):
    name = "StepStopAlicloudInstance"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        if not cfg.disable_stop_instance:
            ctx.ui.say(f"Stopping instance: {state.instance_id}")
            state.client.call(
                "StopInstance",
                {"InstanceId": state.instance_id, "ForceStop": cfg.force_stop_instance},
                retry=("IncorrectInstanceStatus",),
                cancel=ctx.cancel,
            )
        ctx.ui.say(f"Waiting instance stopped: {state.instance_id}")
        wait_instance(state, ctx, "Stopped")


def _image_wait(
    state: EcsState, ctx: BuildContext, client: AlicloudClient, image_id: str, timeout: float
) -> None:
    def probe() -> bool | None:
        found = images_in(
            client.call("DescribeImages", {"ImageId": image_id, "ImageOwnerAlias": "self", "Status": _ANY})
        )
        if not found:
            return None
        status = found[0].get("Status")
        if status in ("CreateFailed", "UnAvailable"):
            raise BuildError(f"image {image_id} in {client.region} failed: status {status}")
        return True if status == "Available" else None

    wait_until(
        probe,
        what=f"image {image_id} to become available",
        timeout=timeout,
        cancel=ctx.cancel,
        policy=state.policy,
    )


_ANY = "Creating,Waiting,Available,UnAvailable,CreateFailed"


class StepDeleteImages(Step[EcsState]):
    """With image_force_delete (-force): delete the images that already have the target names."""

    name = "StepDeleteAlicloudImageSnapshots"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        if not cfg.image_force_delete:
            return
        targets = [(state.client, cfg.image_name)]
        for i, region in enumerate(cfg.image_copy_regions):
            name = cfg.image_copy_names[i] if i < len(cfg.image_copy_names) else cfg.image_name
            targets.append((state.client.for_region(region), name))

        def replace(client: AlicloudClient, name: str) -> None:
            body = client.call(
                "DescribeImages",
                {"ImageName": name, "ImageOwnerAlias": "self", "Status": _ANY},
                cancel=ctx.cancel,
            )
            for image in images_in(body):
                if image.get("ImageName") != name:
                    continue
                ctx.ui.message(f"Deleting duplicated image and snapshot: {image.get('ImageId')}")
                reaper.delete_image(client, str(image["ImageId"]), snapshots=cfg.image_force_delete_snapshots)

        run_parallel(state, *[lambda c=c, n=n: replace(c, n) for c, n in targets])  # type: ignore[misc]


class StepCreateImage(Step[EcsState]):
    name = "StepCreateAlicloudImage"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        ctx.ui.say(f"Creating image: {cfg.image_name}")
        params: dict[str, Any] = {
            "ImageName": cfg.image_name,
            "ImageVersion": cfg.image_version or None,
            "Description": cfg.image_description or None,
            "ImageFamily": cfg.target_image_family or None,
            "BootMode": cfg.boot_mode or None,
            "ResourceGroupId": cfg.resource_group_id or None,
            "Tag": state.tags(cfg.image_tags()),
        }
        if cfg.image_ignore_data_disks:
            params["SnapshotId"] = self._system_snapshot(state, ctx)
        else:
            params["InstanceId"] = state.instance_id
        params = {k: v for k, v in params.items() if v is not None}
        state.image_id, _ = create_tracked(
            state, ctx, "image", "CreateImage", params, lambda b: str(b["ImageId"])
        )
        # The address and the key are of no more use: give them back while the image is made
        # (the seed's log shows these cleanups right after "Creating image").
        early = threading.Thread(target=self._release_early, args=(state, ctx), daemon=True)
        early.start()
        try:
            _image_wait(state, ctx, state.client, state.image_id, cfg.snapshot_timeout())
        finally:
            early.join()
        state.images[state.region] = state.image_id

    @staticmethod
    def _release_early(state: EcsState, ctx: BuildContext) -> None:
        for step in (StepAttachKeyPair(), StepConfigEip()):
            try:
                step.cleanup(state, ctx)
            except Exception as exc:  # the step's own cleanup tries again at the end
                ctx.ui.error(f"Early cleanup failed (tried again at the end): {exc}")

    def _system_snapshot(self, state: EcsState, ctx: BuildContext) -> str:
        """image_ignore_data_disks: the image is made of a snapshot of the system disk only."""
        client = state.client
        body = client.call(
            "DescribeDisks", {"InstanceId": state.instance_id, "DiskType": "system"}, cancel=ctx.cancel
        )
        disks = (body.get("Disks") or {}).get("Disk") or []
        if not disks:
            raise BuildError(f"instance {state.instance_id} has no system disk to snapshot")
        ctx.ui.say(f"Creating snapshot from system disk {disks[0]['DiskId']}")
        snapshot_id, _ = create_tracked(
            state,
            ctx,
            "snapshot",
            "CreateSnapshot",
            {"DiskId": disks[0]["DiskId"], "Tag": state.tags()},
            lambda b: str(b["SnapshotId"]),
        )

        def done() -> bool | None:
            found = client.call("DescribeSnapshots", {"SnapshotIds": instance_ids(snapshot_id)})
            items = (found.get("Snapshots") or {}).get("Snapshot") or []
            status = items[0].get("Status") if items else None
            if status == "failed":
                raise BuildError(f"snapshot {snapshot_id} failed")
            return True if status == "accomplished" else None

        wait_until(
            done,
            what=f"snapshot {snapshot_id}",
            timeout=state.config.snapshot_timeout(),
            cancel=ctx.cancel,
            policy=state.policy,
        )
        return snapshot_id

    def cleanup(self, state: EcsState, ctx: BuildContext) -> None:
        if state.succeeded:
            for region, image_id in state.images.items():
                state.journal.mark("image", image_id, "kept")
                del region
            return
        failures: list[str] = []
        for entry in list(state.journal.entries):
            if entry.kind not in ("image", "snapshot") or entry.state != "created":
                continue
            client = state.client.for_region(entry.region)
            ctx.ui.say(
                f"Deleting image {entry.id} ({entry.region})"
                if entry.kind == "image"
                else f"Deleting snapshot {entry.id}"
            )
            try:
                if entry.kind == "image":
                    reaper.delete_image(client, entry.id)
                else:
                    reaper.delete_snapshot(client, entry.id)
                state.journal.deleted(entry.kind, entry.id)
            except Exception as exc:
                failures.append(f"{entry.kind} {entry.id} in {entry.region} ({exc})")
        if failures:
            raise CleanupFailed("; ".join(failures) + f"; run `kiln cleanup --run-id {state.run_id}`")


class StepCreateTags(Step[EcsState]):
    """The image got its tags at creation; its snapshots get them here."""

    name = "StepCreateTags"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        tags = state.config.image_tags()
        if not tags or not state.image_id:
            return
        ctx.ui.say(f"Adding tags({tags}) to image: {state.image_id}")
        snapshots = reaper.image_snapshots(state.client, state.image_id)
        if snapshots:
            state.client.call(
                "TagResources",
                {
                    "ResourceType": "snapshot",
                    "ResourceId": snapshots,
                    "Tag": [{"Key": k, "Value": v} for k, v in tags.items()],
                },
                cancel=ctx.cancel,
                service="ecs",
            )


class StepRegionCopyImage(Step[EcsState]):
    """CopyImage to every image_copy_regions region at once, waiting for all of them."""

    name = "StepRegionCopyAlicloudImage"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        regions = [r for r in cfg.image_copy_regions if r != state.region]
        if not regions:
            return
        ctx.ui.say(f"Coping image {state.image_id} from {state.region}...")

        def copy(index: int, region: str) -> None:
            name = cfg.image_copy_names[index] if index < len(cfg.image_copy_names) else cfg.image_name
            params: dict[str, Any] = {
                "ImageId": state.image_id,
                "DestinationRegionId": region,
                "DestinationImageName": name,
                "Tag": state.tags(cfg.image_tags()),
            }
            if cfg.image_encrypted:
                params["Encrypted"] = True
                params["KMSKeyId"] = cfg.kms_key_id or None
            dest = state.client.for_region(region)
            new_id, _ = create_tracked(
                state, ctx, "image", "CopyImage", params, lambda b: str(b["ImageId"]), region=region
            )
            _image_wait(state, ctx, dest, new_id, cfg.copy_timeout())
            state.images[region] = new_id

        run_parallel(state, *[lambda i=i, r=r: copy(i, r) for i, r in enumerate(regions)])  # type: ignore[misc]


class StepShareImage(Step[EcsState]):
    name = "StepShareAlicloudImage"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        if not cfg.image_share_account and not cfg.image_unshare_account:
            return
        for region, image_id in state.images.items():
            state.client.for_region(region).call(
                "ModifyImageSharePermission",
                {
                    "ImageId": image_id,
                    "AddAccount": cfg.image_share_account or None,
                    "RemoveAccount": cfg.image_unshare_account or None,
                },
                cancel=ctx.cancel,
            )
