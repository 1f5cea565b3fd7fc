"""The alicloud-ecs builder: an ECS custom image from a temporary instance, as Packer builds it, with
independent resources made at the same time, adaptive waits, and nothing left behind. The build
itself is in `build.py`; this module is only what validating a template needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from kiln.alicloud.waiter import ADAPTIVE, WaitPolicy
from kiln.builders.alicloud_ecs.config import AlicloudEcsConfig
from kiln.components import Artifact, BuildContext, Builder
from kiln.config import DecodeContext

if TYPE_CHECKING:
    from kiln.alicloud.client import AlicloudClient
    from kiln.cache.keys import Source


class AlicloudEcsBuilder(Builder):
    Config = AlicloudEcsConfig
    generated_keys: ClassVar[tuple[str, ...]] = ("ID", "SourceImage")
    #: Replaced by a benchmark to replay Packer's pace (its 5 s polls).
    wait_policy: WaitPolicy = ADAPTIVE

    def __init__(self) -> None:
        super().__init__()
        self._client: AlicloudClient | None = None

    def validate(self, dctx: DecodeContext, path: str) -> None:
        self.config.validate_ecs(dctx, path)

    def _cloud(self) -> AlicloudClient:
        if self._client is None:
            from kiln.alicloud.client import AlicloudClient

            self._client = AlicloudClient(self.config, self.config.region)
        return self._client

    def cache_source(self, ctx: BuildContext) -> Source:
        """The source image's id, resolved (image_family: its newest image now)."""
        from kiln.builders.alicloud_ecs.steps_validate import source_image
        from kiln.cache.keys import Source

        image: dict[str, Any] = source_image(self.config, self._cloud(), ctx.cancel)
        return Source(f"image {image['ImageId']}", f"image {self.config.region} {image['ImageId']}")

    def cache_has(self, key: str) -> bool:
        from kiln.builders.alicloud_ecs.cache import cached_image

        client = self._cloud()
        return any(cached_image(client, self.config, key, final) is not None for final in (False, True))

    def cache_artifact_exists(self, artifact: str) -> bool:
        """An artifact id is `region:image,...`: each image still exists."""
        from kiln.alicloud.client import items

        for part in filter(None, artifact.split(",")):
            region, _, image_id = part.partition(":")
            client = self._cloud().for_region(region)
            params = {"ImageId": image_id, "ImageOwnerAlias": "self"}
            if not items(client.call("DescribeImages", params), "Images", "Image"):
                return False
        return bool(artifact)

    def run(self, ctx: BuildContext) -> Artifact | None:
        # The SDK, SSH and the steps are imported only when a build runs: `kiln validate` stays fast.
        from kiln.builders.alicloud_ecs.build import build_image

        return build_image(self.config, ctx, self.wait_policy)
