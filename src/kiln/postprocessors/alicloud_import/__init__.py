"""The `alicloud-import` post-processor: a local disk (the qemu or file builder's) becomes an ECS image.

Packer's flow, one step per resource: look for an image of that name (image_force_delete replaces
it), convert the disk with qemu-img to `format` when it is in another, make the OSS bucket when it
is missing, upload the disk (multipart, parts in parallel, each retried, resumable: see
kiln.alicloud.upload) with a progress bar, ImportImage (on NoSetRoletoECSServiceAcount, make the RAM
role AliyunECSImageImportDefaultRole trust ECS and hold AliyunECSImageImportRolePolicy, then
import again), wait until the image is Available, and delete the object (unless skip_clean) and a
bucket it made (if empty). Every resource it makes is in the run's journal the moment it exists
(the upload, the object, the bucket, the image), so a killed run is swept by `kiln cleanup
--stale`; a failed one deletes them itself, except an unfinished upload, kept for the next run to
resume. The artifact is the alicloud-ecs builder's kind (`region:image-id`).
"""

from __future__ import annotations

import uuid

from kiln.alicloud.client import AlicloudClient
from kiln.alicloud.heartbeat import Heartbeat
from kiln.alicloud.journal import FAILED, FINISHED, Journal
from kiln.builders.alicloud_ecs.artifact import images_artifact
from kiln.components import Artifact, BuildContext, PostProcessor, PostProcessResult
from kiln.config import DecodeContext
from kiln.engine.steps import Sequence, run_steps
from kiln.postprocessors.alicloud_import.config import AlicloudImportConfig
from kiln.postprocessors.alicloud_import.steps import (
    ImportState,
    StepBucket,
    StepCheckImage,
    StepDiskFile,
    StepImport,
    StepUpload,
)

BUILDER_ID = "packer.post-processor.alicloud-import"


class AlicloudImportPostProcessor(PostProcessor):
    Config = AlicloudImportConfig

    def validate(self, dctx: DecodeContext, path: str) -> None:
        config: AlicloudImportConfig = self.config
        config.validate_import(dctx, path)

    def post_process(self, ctx: BuildContext, artifact: Artifact) -> PostProcessResult:
        cfg: AlicloudImportConfig = self.config
        client = AlicloudClient(cfg, cfg.region)
        client.warm_up("ecs")
        run_id = f"{ctx.run_uuid[:8]}-{uuid.uuid4().hex[:8]}"
        journal = Journal(run_id, cfg.region, client.endpoint.url() if client.endpoint else None)
        ctx.log.info("alicloud-import: run id %s, journal %s", run_id, journal.path)
        key = ctx.render(cfg.oss_key_name, ctx.generated) if cfg.oss_key_name else ""
        state = ImportState(
            cfg, client, journal, run_id, artifact, key or f"Packer_{uuid.uuid4().int % 10**9}"
        )
        ctx.ui.say(f"Rendered oss_key_name as {state.key}")
        plan = Sequence(StepCheckImage(), StepDiskFile(), StepBucket(), StepUpload(), StepImport())
        try:
            with Heartbeat(journal, client, warn=ctx.ui.error):
                run_steps(plan, state, ctx)
        except BaseException:
            journal.finish(FAILED)
            raise
        journal.finish(FINISHED)
        result = images_artifact({cfg.region: state.image_id}, client, BUILDER_ID)
        return PostProcessResult(result, keep=False)
