"""The alicloud-ecs builder: an ECS custom image from a temporary instance, as Packer builds it, with
independent resources made at the same time, adaptive waits, and nothing left behind. The build
itself is in `build.py`; this module is only what validating a template needs.
"""

from __future__ import annotations

from typing import ClassVar

from kiln.alicloud.waiter import ADAPTIVE, WaitPolicy
from kiln.builders.alicloud_ecs.config import AlicloudEcsConfig
from kiln.components import Artifact, BuildContext, Builder
from kiln.config import DecodeContext


class AlicloudEcsBuilder(Builder):
    Config = AlicloudEcsConfig
    generated_keys: ClassVar[tuple[str, ...]] = ("ID", "SourceImage")
    #: Replaced by a benchmark to replay Packer's pace (its 5 s polls).
    wait_policy: WaitPolicy = ADAPTIVE

    def validate(self, dctx: DecodeContext, path: str) -> None:
        self.config.validate_ecs(dctx, path)

    def run(self, ctx: BuildContext) -> Artifact | None:
        # The SDK, SSH and the steps are imported only when a build runs: `kiln validate` stays fast.
        from kiln.builders.alicloud_ecs.build import build_image

        return build_image(self.config, ctx, self.wait_policy)
