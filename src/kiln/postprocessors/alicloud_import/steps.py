"""The alicloud-import post-processor's steps, one per resource: the image name, the disk file, the
bucket, the upload (the object), the import (the image)."""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from kiln.alicloud import oss, reaper
from kiln.alicloud.client import AlicloudClient, ApiError, items
from kiln.alicloud.journal import Journal, run_tags
from kiln.alicloud.upload import Checkpoint, upload_file
from kiln.alicloud.waiter import wait_until
from kiln.components import Artifact, BuildContext
from kiln.core.progress import transfer_progress
from kiln.engine.steps import CleanupFailed, Step
from kiln.errors import BuildError, KilnError
from kiln.postprocessors.alicloud_import.config import AlicloudImportConfig

IMPORT_ROLE = "AliyunECSImageImportDefaultRole"
IMPORT_POLICY = "AliyunECSImageImportRolePolicy"
TRUST_ECS = json.dumps(
    {
        "Statement": [
            {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": ["ecs.aliyuncs.com"]}}
        ],
        "Version": "1",
    },
    indent=2,
)
IMPORT_TIMEOUT = 3600.0  # Packer's ALICLOUD_DEFAULT_LONG_TIMEOUT
ROLE_TIMEOUT = 120.0  # a new role takes a while to reach ECS (Packer sleeps a minute)
QEMU_FORMATS = {"raw": "raw", "vhd": "vpc", "qcow2": "qcow2"}


@dataclass
class ImportState:
    config: AlicloudImportConfig
    client: AlicloudClient
    journal: Journal
    run_id: str
    artifact: Artifact
    key: str
    existing: list[str] = field(default_factory=list)  #: images named image_name already
    disk: Path | None = None
    disk_size: int = 0  #: the disk's virtual size, bytes
    converted: bool = False
    bucket_created: bool = False
    uploaded: bool = False
    image_id: str = ""

    @property
    def region(self) -> str:
        return self.client.region

    @property
    def object_rid(self) -> str:
        return f"{self.config.oss_bucket_name}/{self.key}"

    def where(self) -> str:
        return oss.object_url(self.region, self.config.oss_bucket_name, self.key)


class StepCheckImage(Step[ImportState]):
    name = "StepCheckAlicloudImageName"

    def run(self, state: ImportState, ctx: BuildContext) -> None:
        cfg = state.config
        found = state.client.call(
            "DescribeImages",
            {"ImageName": cfg.image_name, "ImageOwnerAlias": "self", "Status": reaper.ALL_IMAGES},
            cancel=ctx.cancel,
        )
        state.existing = [
            str(i["ImageId"]) for i in items(found, "Images", "Image") if i.get("ImageName") == cfg.image_name
        ]
        if state.existing and not cfg.image_force_delete:
            raise BuildError(
                f"Duplicated image exists: {cfg.image_name} ({', '.join(state.existing)})",
                "delete the existing image or set image_force_delete (or run with -force)",
            )


class StepDiskFile(Step[ImportState]):
    """The artifact's disk, in `format` (converted into the run's private folder when it is not)."""

    name = "StepAlicloudImportDisk"

    def run(self, state: ImportState, ctx: BuildContext) -> None:
        from kiln.machines.diskimage import convert, probe

        fmt = state.config.format
        ctx.ui.say(f"Looking for a disk image in the artifact ({fmt} wanted)")
        disks = []
        for name in state.artifact.files:
            path = Path(name) if Path(name).is_absolute() else ctx.work_dir / name
            if not path.is_file():
                continue
            try:
                disks.append((path, probe(path)))
            except KilnError:
                continue  # not a disk image: a log, a checksum file...
        if not disks:
            raise BuildError(
                "No disk image found in the artifact from the builder",
                "alicloud-import takes the qemu or file builder's disk (raw, vhd or qcow2)",
            )
        path, info = next(((p, i) for p, i in disks if p.suffix.lstrip(".") == fmt), disks[0])
        state.disk_size = info.virtual_size
        if info.format == QEMU_FORMATS[fmt]:
            state.disk = path
            return
        dest = ctx.scratch_dir() / f"{path.stem}.{fmt}"
        ctx.ui.say(f"Converting {path.name} ({info.format}) to {fmt}")
        state.converted = True
        state.disk = convert(path, info.format, dest, QEMU_FORMATS[fmt])
        # a VHD's size is its geometry's (cylinders x heads x sectors): a little over the source's
        state.disk_size = probe(state.disk).virtual_size

    def cleanup(self, state: ImportState, ctx: BuildContext) -> None:
        if state.converted and state.disk is not None:
            state.disk.unlink(missing_ok=True)


class StepBucket(Step[ImportState]):
    name = "StepConfigOSSBucket"

    def run(self, state: ImportState, ctx: BuildContext) -> None:
        cfg, bucket = state.config, state.config.oss_bucket_name
        if oss.bucket_exists(cfg, state.region, bucket):
            return
        ctx.ui.say(f"Creating OSS bucket {bucket}")
        oss.create_bucket(cfg, state.region, bucket)
        state.bucket_created = True
        state.journal.created("oss_bucket", bucket, state.region)

    def cleanup(self, state: ImportState, ctx: BuildContext) -> None:
        if not state.bucket_created:
            return
        if state.uploaded and state.config.skip_clean and state.image_id:
            state.journal.mark("oss_bucket", state.config.oss_bucket_name, "kept")  # holds the kept object
            return
        if _unfinished_upload(state):
            return  # kept with its upload, for the next run to resume
        try:
            oss.delete_bucket(state.config, state.region, state.config.oss_bucket_name)
        except Exception as exc:
            raise CleanupFailed(f"OSS bucket {state.config.oss_bucket_name} ({exc})") from None
        state.journal.deleted("oss_bucket", state.config.oss_bucket_name)


def _unfinished_upload(state: ImportState) -> bool:
    return any(e.kind == "oss_multipart" for e in state.journal.leftovers())


class StepUpload(Step[ImportState]):
    name = "StepUploadImage"

    def run(self, state: ImportState, ctx: BuildContext) -> None:
        cfg, bucket, disk = state.config, state.config.oss_bucket_name, state.disk
        assert disk is not None
        ctx.ui.say(f"Waiting for uploading file {disk} to {state.where()}...")
        api = oss.client(cfg, state.region)

        def on_upload(upload_id: str, taken_over: Checkpoint | None) -> None:
            rid = oss.upload_rid(bucket, state.key, upload_id)
            if (
                taken_over is not None
                and taken_over.journal
                and taken_over.journal != str(state.journal.path)
            ):
                _take_over(state, Path(taken_over.journal), rid)
            state.journal.created("oss_multipart", rid, state.region)

        def on_resume(done: int, total: int) -> None:
            ctx.ui.say(f"Resuming the upload: {done} of {total} parts are in OSS already")

        started = time.monotonic()
        size = disk.stat().st_size
        with transfer_progress(ctx.ui, f"Uploading {disk.name}", size) as advance:
            upload_id = upload_file(
                api,
                bucket,
                state.key,
                disk,
                journal=str(state.journal.path),
                on_upload=on_upload,
                on_resume=on_resume,
                progress=advance,
                cancel=ctx.cancel,
            )
        state.uploaded = True
        state.journal.created("oss_object", state.object_rid, state.region)
        state.journal.deleted("oss_multipart", oss.upload_rid(bucket, state.key, upload_id))
        seconds = max(time.monotonic() - started, 0.001)
        ctx.ui.say(f"Image file {disk} has been uploaded to OSS ({size / seconds / 2**20:.0f} MiB/s)")

    def cleanup(self, state: ImportState, ctx: BuildContext) -> None:
        if not state.uploaded or (state.config.skip_clean and state.image_id):
            if state.uploaded:
                state.journal.mark("oss_object", state.object_rid, "kept")
            return
        ctx.ui.message(f"Deleting import source {state.where()}")
        try:
            oss.delete_object(state.config, state.region, state.object_rid)
        except Exception as exc:
            raise CleanupFailed(f"OSS object {state.object_rid} ({exc})") from None
        state.journal.deleted("oss_object", state.object_rid)


def _take_over(state: ImportState, path: Path, rid: str) -> None:
    """The earlier run's upload (and the bucket it made for it) are this run's now: its journal no
    longer lists them, so that its cleanup cannot delete what this run completes."""
    try:
        earlier = Journal.load(path)
    except (OSError, ValueError, KeyError):
        return
    bucket = state.config.oss_bucket_name
    earlier.deleted("oss_multipart", rid)
    if any(e.kind == "oss_bucket" and e.id == bucket for e in earlier.leftovers()):
        earlier.deleted("oss_bucket", bucket)
        state.bucket_created = True
        state.journal.created("oss_bucket", bucket, state.region)


class StepImport(Step[ImportState]):
    """ImportImage (making the RAM role on NoSetRoletoECSServiceAcount), then wait for Available."""

    name = "StepImportAlicloudImage"

    def run(self, state: ImportState, ctx: BuildContext) -> None:
        cfg = state.config
        for image_id in state.existing:  # image_force_delete: replaced once the disk is in OSS
            ctx.ui.say(f"Deleting duplicated image {image_id}")
            reaper.delete_image(state.client, image_id, snapshots=cfg.image_force_delete_snapshots)
        mapping = {
            "OSSBucket": cfg.oss_bucket_name,
            "OSSObject": state.key,
            "Format": cfg.format.upper(),
            "DiskImageSize": cfg.image_system_size or str(max(1, math.ceil(state.disk_size / 2**30))),
        }
        params = {
            "ImageName": cfg.image_name,
            "Description": cfg.image_description or None,
            "OSType": cfg.image_os_type,
            "Platform": cfg.image_platform,
            "Architecture": cfg.image_architecture,
            "BootMode": cfg.image_boot_mode or None,
            "DiskDeviceMapping": [mapping],
            "Tag": [*({"Key": k, "Value": v} for k, v in cfg.tags.items()), *run_tags(state.run_id)],
        }
        state.journal.pending("image", state.region, token := _token())
        try:
            body = self._import(state, ctx, {**params, "ClientToken": token})
        except BaseException:
            state.journal.forget_pending(token)
            raise
        state.image_id = str(body["ImageId"])
        state.journal.created("image", state.image_id, state.region, token)
        ctx.ui.say(f"Waiting for importing {state.where()} to alicloud...")
        wait_until(
            lambda: _available(state),
            what=f"image {state.image_id} to be imported",
            timeout=IMPORT_TIMEOUT,
            cancel=ctx.cancel,
        )
        state.journal.mark("image", state.image_id, "kept")
        ctx.ui.say(f"Importing created alicloud image ID {state.image_id} in region {state.region} Finished.")

    def _import(self, state: ImportState, ctx: BuildContext, params: dict[str, object]) -> dict[str, object]:
        try:
            return state.client.call("ImportImage", params, cancel=ctx.cancel)
        except ApiError as exc:
            if exc.code != "NoSetRoletoECSServiceAcount":
                raise
        ctx.ui.say("initialize ram role for importing image")
        prepare_import_role(state.client)
        deadline = time.monotonic() + ROLE_TIMEOUT
        while True:
            try:
                return state.client.call("ImportImage", params, cancel=ctx.cancel)
            except ApiError as exc:
                if exc.code != "NoSetRoletoECSServiceAcount" or time.monotonic() > deadline:
                    raise
            ctx.cancel.sleep(5.0)

    def cleanup(self, state: ImportState, ctx: BuildContext) -> None:
        if not state.image_id or any(
            e.kind == "image" and e.id == state.image_id and e.state == "kept" for e in state.journal.entries
        ):
            return
        ctx.ui.say(f"Deleting the image {state.image_id}, which did not import")
        try:
            wait_until(
                lambda: _settled(state),
                what=f"image {state.image_id} to stop importing",
                timeout=IMPORT_TIMEOUT,
            )
            reaper.delete_image(state.client, state.image_id)
        except Exception as exc:
            raise CleanupFailed(f"image {state.image_id} ({exc})") from None
        state.journal.deleted("image", state.image_id)


def _token() -> str:
    return str(uuid.uuid4())


def _status(state: ImportState) -> str | None:
    found = state.client.call(
        "DescribeImages", {"ImageId": state.image_id, "ImageOwnerAlias": "self", "Status": reaper.ALL_IMAGES}
    )
    listed = items(found, "Images", "Image")
    return str(listed[0].get("Status")) if listed else None


def _available(state: ImportState) -> bool | None:
    status = _status(state)
    if status == "Available":
        return True
    if status in (None, "CreateFailed", "UnAvailable"):
        raise BuildError(
            f"Import image {state.image_id} failed: it is {status or 'gone'}",
            "check that the disk boots and is in the format given (format)",
        )
    return None


def _settled(state: ImportState) -> bool | None:
    return True if _status(state) not in ("Creating", "Waiting") else None


def prepare_import_role(client: AlicloudClient) -> None:
    """Packer's RAM calls: GetRole; a missing role is created trusting ECS, with the import policy
    attached; an existing one gets the policy attached, or (holding it) its trust policy reset."""
    try:
        client.call("GetRole", {"RoleName": IMPORT_ROLE})
    except ApiError as exc:
        if exc.code != "EntityNotExist.Role":
            raise
        client.call("CreateRole", {"RoleName": IMPORT_ROLE, "AssumeRolePolicyDocument": TRUST_ECS})
        _attach(client)
        return
    policies = items(client.call("ListPoliciesForRole", {"RoleName": IMPORT_ROLE}), "Policies", "Policy")
    if any(p.get("PolicyName") == IMPORT_POLICY and p.get("PolicyType") == "System" for p in policies):
        client.call("UpdateRole", {"RoleName": IMPORT_ROLE, "NewAssumeRolePolicyDocument": TRUST_ECS})
    else:
        _attach(client)


def _attach(client: AlicloudClient) -> None:
    client.call(
        "AttachPolicyToRole", {"PolicyName": IMPORT_POLICY, "PolicyType": "System", "RoleName": IMPORT_ROLE}
    )
