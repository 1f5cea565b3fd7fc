"""The alicloud-ecs builder's steps for the build cache (opt-in: `-cache`; intermediate images cost
money on the real cloud).

After each cached provisioner the guest syncs its file systems and CreateImage makes an image of
the running instance, tagged `kiln-cache-key` with the provisioner's key (kiln.alicloud.cacheimages);
the build waits for it to be Available, so that what the next build finds by tag is complete (an
image still being made, or failed, is not taken). The next build starts its instance from the
deepest one. The output image carries its final key; an unchanged rebuild whose image_name already
names that image takes it as its artifact and creates nothing.
"""

from __future__ import annotations

from typing import Any

from kiln.alicloud import cacheimages
from kiln.alicloud.client import AlicloudClient
from kiln.builders.alicloud_ecs.artifact import images_artifact
from kiln.builders.alicloud_ecs.config import AlicloudEcsConfig
from kiln.builders.alicloud_ecs.steps import EcsState
from kiln.builders.alicloud_ecs.steps_image import wait_image
from kiln.cache.keys import short
from kiln.communicators.base import RemoteCommand
from kiln.components import Artifact, BuildContext, Checkpoint
from kiln.engine.steps import Step
from kiln.errors import BuildError, CommunicatorError


def cached_image(
    client: AlicloudClient, cfg: AlicloudEcsConfig, key: str, final: bool
) -> dict[str, Any] | None:
    """The Available image of `key`: a cache image, or for the final key the output image named
    image_name."""
    for image in cacheimages.find(client, key):
        name = str(image.get("ImageName", ""))
        if image.get("Status", "Available") != "Available":
            continue
        if (final and name == cfg.image_name) or (not final and name.startswith(cacheimages.NAME_PREFIX)):
            return image
    return None


def final_artifact(cfg: AlicloudEcsConfig, ctx: BuildContext, client: AlicloudClient) -> Artifact | None:
    """Every provisioner is cached and image_name names the final key's image: that is the artifact."""
    found = ctx.cache
    if found is None or not found.final_hit or found.final is None:
        return None
    image = cached_image(client, cfg, found.final, final=True)
    if image is None:
        return None
    ctx.ui.say(
        f"Every provisioner is cached: image {image['ImageId']} ({cfg.image_name}) has the final key "
        f"{short(found.final)}; no instance is started"
    )
    ctx.generated["ID"] = str(image["ImageId"])
    return images_artifact({cfg.region: str(image["ImageId"])}, client)


class StepCacheSource(Step[EcsState]):
    """With provisioners taken from the cache: the instance starts from the deepest cached image."""

    name = "StepCacheSource"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        found = ctx.cache
        if found is None or not found.resume:
            return
        key = found.decisions[found.resume - 1].key or ""
        image = cached_image(state.client, state.config, key, final=False)
        if image is None:
            raise BuildError(
                f"the cache image of key {short(key)} disappeared while the build started",
                "build again (it was deleted or pruned meanwhile)",
            )
        state.source_image = dict(image)
        ctx.ui.say(f"Starting from the cached image {image['ImageId']} after provisioner {found.resume}")


def checkpoint(state: EcsState, ctx: BuildContext) -> Checkpoint | None:
    if ctx.cache is None:
        return None

    def keep(index: int, key: str) -> None:
        assert state.communicator is not None
        try:
            status = state.communicator.run(RemoteCommand("sync"), ctx.cancel)
        except CommunicatorError as exc:
            raise BuildError(f"caching the instance after provisioner {index}: sync failed: {exc}") from exc
        if status != 0:
            raise BuildError(f"caching the instance after provisioner {index}: sync exited with {status}")
        params = {
            "InstanceId": state.instance_id,
            "ImageName": cacheimages.layer_name(key, state.run_id),
            "Description": f"kiln build cache: {ctx.name} after provisioner {index}",
            "Tag": [{"Key": cacheimages.CACHE_TAG, "Value": key}],
        }
        body = state.client.call("CreateImage", params, cancel=ctx.cancel)
        image_id = str(body["ImageId"])
        wait_image(state, ctx, state.client, image_id, state.config.snapshot_timeout())
        ctx.ui.say(f"Cached the instance after provisioner {index} as image {image_id} (key {short(key)})")

    return keep
