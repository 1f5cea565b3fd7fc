"""Before anything is created: the regions exist, no image has the target name yet (unless forced),
the source image exists, and a zone offers the instance type. Only reads, run at the same time in
the plan: any of them failing ends the build before it has made anything."""

from __future__ import annotations

from typing import Any

from kiln.alicloud.client import AlicloudClient, items
from kiln.alicloud.reaper import ALL_IMAGES
from kiln.builders.alicloud_ecs.config import AlicloudEcsConfig
from kiln.builders.alicloud_ecs.steps import EcsState
from kiln.components import BuildContext
from kiln.core.cancel import CancelToken
from kiln.engine.steps import Step
from kiln.errors import BuildError


class StepCheckRegions(Step[EcsState]):
    name = "StepCheckRegions"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        if cfg.skip_region_validation:
            return
        body = state.client.call("DescribeRegions", {}, cancel=ctx.cancel)
        known = {r.get("RegionId") for r in items(body, "Regions", "Region")}
        bad = [r for r in [cfg.region, *cfg.image_copy_regions] if r not in known]
        if bad:
            raise BuildError(
                f"Not a valid alicloud region: {', '.join(bad)}",
                "check region / image_copy_regions, or set skip_region_validation",
            )


class StepCheckImageName(Step[EcsState]):
    """No image of the account has the target name, in any status (unless it is to be replaced)."""

    name = "StepPreValidate"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        ctx.ui.say("Prevalidating image name...")
        body = state.client.call(
            "DescribeImages",
            {"ImageName": cfg.image_name, "ImageOwnerAlias": "self", "Status": ALL_IMAGES},
            cancel=ctx.cancel,
        )
        images = [i for i in items(body, "Images", "Image") if i.get("ImageName") == cfg.image_name]
        if images and not cfg.image_force_delete:
            raise BuildError(
                f"Error: Image Name: '{images[0].get('ImageName')}' is used by an existing alicloud "
                f"image: {images[0].get('ImageId')}",
                "choose another image_name, or run with -force (image_force_delete) to replace it",
            )
        state.existing_images = images


class StepCheckSourceImage(Step[EcsState]):
    """The source image (or the newest of the image family) exists: its own, shared, or the market's."""

    name = "StepCheckAlicloudSourceImage"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        state.source_image = source_image(state.config, state.client, ctx.cancel)
        ctx.ui.message(f"Found image ID: {state.source_image.get('ImageId')}")


def source_image(cfg: AlicloudEcsConfig, client: AlicloudClient, cancel: CancelToken) -> dict[str, Any]:
    """The source image (or the newest of the image family): its own, shared, or the market's."""
    if cfg.image_family:
        image = client.call("DescribeImageFromFamily", {"ImageFamily": cfg.image_family}, cancel=cancel)
        found: list[dict[str, Any]] = [image["Image"]] if (image.get("Image") or {}).get("ImageId") else []
        if not found:
            raise BuildError(f"No alicloud image was found in image family: {cfg.image_family}")
    else:
        params: dict[str, Any] = {"ImageId": cfg.source_image}
        if cfg.skip_image_validation:
            params["ShowExpired"] = True
        found = items(client.call("DescribeImages", params, cancel=cancel), "Images", "Image")
        if not found:
            market = {**params, "ImageOwnerAlias": "marketplace"}
            found = items(client.call("DescribeImages", market, cancel=cancel), "Images", "Image")
        if not found:
            raise BuildError(
                f"No alicloud image was found matching filters: {cfg.source_image}",
                "check source_image (an image id of this region, e.g. from DescribeImages)",
            )
    return dict(found[0])


class StepFindZone(Step[EcsState]):
    """The zone for the vSwitch: the user's, or the first that offers vSwitches and the instance type
    (looked up before anything is created: a type the region lacks fails the build at once)."""

    name = "StepFindZone"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        if cfg.zone_id or cfg.vswitch_id:
            state.zone_id = cfg.zone_id  # with vswitch_id: the vSwitch's own, found by its step
            return
        body = state.client.call("DescribeZones", {}, cancel=ctx.cancel)
        offered: list[str] = []
        for zone in items(body, "Zones", "Zone"):
            if "VSwitch" not in items(zone, "AvailableResourceCreation", "ResourceTypes"):
                continue
            types = items(zone, "AvailableInstanceTypes", "InstanceTypes")
            if cfg.instance_type in types:
                state.zone_id = str(zone["ZoneId"])
                return
            offered.extend(t for t in types if t not in offered)
        hint = f"use one of: {', '.join(offered[:20])}" if offered else "choose another region"
        raise BuildError(f"The instance type {cfg.instance_type} isn't available in this region.", hint)
