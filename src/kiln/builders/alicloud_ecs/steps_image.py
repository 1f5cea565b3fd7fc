"""From the provisioned instance to the image: stop, replace a same-named image when forced, create
the image (from a snapshot of the system disk alone with image_ignore_data_disks), tag it, copy it
to other regions, share it. A failed or cancelled build deletes the images and snapshots it made; a
successful one marks them kept in the journal (an image needs the snapshots it is made of)."""

from __future__ import annotations

from typing import Any

from kiln.alicloud import reaper
from kiln.alicloud.cacheimages import CACHE_TAG
from kiln.alicloud.client import AlicloudClient, items
from kiln.builders.alicloud_ecs.config import AlicloudEcsConfig
from kiln.builders.alicloud_ecs.steps import EcsState, create_tracked, delete_tracked, instance_ids, wait
from kiln.builders.alicloud_ecs.steps_instance import wait_instance
from kiln.components import BuildContext
from kiln.engine.steps import Step
from kiln.errors import BuildError


def image_names(cfg: AlicloudEcsConfig) -> list[tuple[str, str]]:
    """(region, image name) of each copy: image_copy_names name them in turn, image_name the rest."""
    names = cfg.image_copy_names
    return [(r, names[i] if i < len(names) else cfg.image_name) for i, r in enumerate(cfg.image_copy_regions)]


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


class StepDeleteImages(Step[EcsState]):
    """image_force_delete (-force): delete the images of one region that have the target name, in
    any status, and (image_force_delete_snapshots) their snapshots."""

    name = "StepDeleteAlicloudImageSnapshots"

    def __init__(self, region: str, image_name: str) -> None:
        self.region = region
        self.image_name = image_name

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        client = state.client.for_region(self.region)
        params = {"ImageName": self.image_name, "ImageOwnerAlias": "self", "Status": reaper.ALL_IMAGES}
        for image in items(client.call("DescribeImages", params, cancel=ctx.cancel), "Images", "Image"):
            if image.get("ImageName") == self.image_name:
                ctx.ui.message(f"Deleting duplicated image and snapshot: {image.get('ImageId')}")
                snapshots = state.config.image_force_delete_snapshots
                reaper.delete_image(client, str(image["ImageId"]), snapshots=snapshots)


class StepCreateSnapshot(Step[EcsState]):
    """image_ignore_data_disks: a snapshot of the system disk alone, which the image is made of."""

    name = "StepCreateAlicloudSnapshot"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        client = state.client
        system = {"InstanceId": state.instance_id, "DiskType": "system"}
        disks = items(client.call("DescribeDisks", system, cancel=ctx.cancel), "Disks", "Disk")
        if not disks:
            raise BuildError(f"instance {state.instance_id} has no system disk to snapshot")
        ctx.ui.say(f"Creating snapshot from system disk {disks[0]['DiskId']}")
        params = {"DiskId": disks[0]["DiskId"], "Tag": state.tags()}
        state.snapshot_id, _ = create_tracked(
            state, ctx, "snapshot", "CreateSnapshot", params, lambda b: str(b["SnapshotId"])
        )

        def done() -> bool | None:
            found = client.call("DescribeSnapshots", {"SnapshotIds": instance_ids(state.snapshot_id)})
            status = next((s.get("Status") for s in items(found, "Snapshots", "Snapshot")), None)
            if status == "failed":
                raise BuildError(f"snapshot {state.snapshot_id} failed")
            return True if status == "accomplished" else None

        wait(state, ctx, done, f"snapshot {state.snapshot_id}", state.config.snapshot_timeout())

    def cleanup(self, state: EcsState, ctx: BuildContext) -> None:
        if not state.snapshot_id:
            return
        if state.succeeded:  # the image is made of it
            state.journal.mark("snapshot", state.snapshot_id, "kept")
            return
        ctx.ui.say(f"Deleting snapshot {state.snapshot_id}")
        delete_tracked(state, "snapshot", state.snapshot_id)


class StepCreateImage(Step[EcsState]):
    """CreateImage, from the instance or from the system disk's snapshot; StepWaitImage waits for it."""

    name = "StepCreateAlicloudImage"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        ctx.ui.say(f"Creating image: {cfg.image_name}")
        # with the build cache: the final key, by which an unchanged rebuild finds this image
        final = {CACHE_TAG: ctx.cache.final} if ctx.cache is not None and ctx.cache.final else {}
        params: dict[str, Any] = {
            "ImageName": cfg.image_name,
            "ImageVersion": cfg.image_version or None,
            "Description": cfg.image_description or None,
            "ImageFamily": cfg.target_image_family or None,
            "BootMode": cfg.boot_mode or None,
            "ResourceGroupId": cfg.resource_group_id or None,
            "Tag": state.tags({**cfg.image_tags(), **final}),
        }
        if state.snapshot_id:
            params["SnapshotId"] = state.snapshot_id
        else:
            params["InstanceId"] = state.instance_id
        params = {k: v for k, v in params.items() if v is not None}
        state.image_id, _ = create_tracked(
            state, ctx, "image", "CreateImage", params, lambda b: str(b["ImageId"])
        )

    def cleanup(self, state: EcsState, ctx: BuildContext) -> None:
        if state.image_id:
            keep_or_delete_image(state, ctx, state.region, state.image_id)


def keep_or_delete_image(state: EcsState, ctx: BuildContext, region: str, image_id: str) -> None:
    if state.succeeded:
        state.journal.mark("image", image_id, "kept")
        return
    ctx.ui.say(f"Deleting image {image_id} ({region})")
    delete_tracked(state, "image", image_id, state.client.for_region(region))


def wait_image(
    state: EcsState, ctx: BuildContext, client: AlicloudClient, image_id: str, timeout: float
) -> None:
    def probe() -> bool | None:
        params = {"ImageId": image_id, "ImageOwnerAlias": "self", "Status": reaper.ALL_IMAGES}
        found = items(client.call("DescribeImages", params), "Images", "Image")
        status = found[0].get("Status") if found else None
        if status in ("CreateFailed", "UnAvailable"):
            raise BuildError(f"image {image_id} in {client.region} failed: status {status}")
        return True if status == "Available" else None

    wait(state, ctx, probe, f"image {image_id} to become available", timeout)


class StepWaitImage(Step[EcsState]):
    name = "StepWaitAlicloudImage"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        wait_image(state, ctx, state.client, state.image_id, state.config.snapshot_timeout())
        state.images[state.region] = state.image_id


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
    """CopyImage to one of image_copy_regions, and wait for the copy (the plan copies to all at once)."""

    name = "StepRegionCopyAlicloudImage"

    def __init__(self, region: str, image_name: str) -> None:
        self.region = region
        self.image_name = image_name
        self.copy_id = ""

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        ctx.ui.say(f"Coping image {state.image_id} from {state.region} to {self.region}...")
        params: dict[str, Any] = {
            "ImageId": state.image_id,
            "DestinationRegionId": self.region,
            "DestinationImageName": self.image_name,
            "Tag": state.tags(cfg.image_tags()),
        }
        if cfg.image_encrypted:
            params["Encrypted"] = True
            params["KMSKeyId"] = cfg.kms_key_id or None
        self.copy_id, _ = create_tracked(
            state, ctx, "image", "CopyImage", params, lambda b: str(b["ImageId"]), region=self.region
        )
        wait_image(state, ctx, state.client.for_region(self.region), self.copy_id, cfg.copy_timeout())
        state.images[self.region] = self.copy_id

    def cleanup(self, state: EcsState, ctx: BuildContext) -> None:
        if self.copy_id:
            keep_or_delete_image(state, ctx, self.region, self.copy_id)


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
