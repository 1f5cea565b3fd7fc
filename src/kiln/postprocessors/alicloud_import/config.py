"""Options of the alicloud-import post-processor: Packer's names and meaning, the access options
shared with the alicloud-ecs builder."""

# ruff: noqa: RUF009 - option() returns a dataclass field, not a shared mutable default

from __future__ import annotations

import re
from dataclasses import dataclass

from kiln.alicloud.access import AccessConfig
from kiln.config import DecodeContext, option

FORMATS = ("raw", "vhd", "qcow2")
OS_TYPES = ("linux", "windows")
ARCHITECTURES = ("x86_64", "i386", "arm64")
BOOT_MODES = ("BIOS", "UEFI")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


@dataclass
class AlicloudImportConfig(AccessConfig):
    oss_bucket_name: str = option(
        required=True, doc="the OSS bucket the disk is uploaded to (made if missing)"
    )
    oss_key_name: str = option(
        "", raw=True, doc="the object's key; {{build `ID`}} allowed (default Packer_<nanoseconds>)"
    )
    skip_clean: bool = option(False, doc="keep the uploaded object in OSS after the import")
    image_name: str = option(required=True, doc="name of the imported image")
    image_description: str = option("", doc="description of the imported image")
    image_os_type: str = option(required=True, choices=OS_TYPES, doc="linux or windows")
    image_platform: str = option(required=True, doc="the distribution, e.g. Debian, Ubuntu, CentOS")
    image_architecture: str = option(required=True, choices=ARCHITECTURES, doc="x86_64, i386 or arm64")
    image_system_size: str = option("", doc="GiB of the image's system disk (default: the disk's size)")
    image_boot_mode: str = option("", choices=BOOT_MODES, doc="BIOS or UEFI (the cloud's default: BIOS)")
    format: str = option(
        required=True,
        choices=FORMATS,
        invalid='format must be "raw", "vhd" (Packer\'s) or "qcow2" (kiln\'s too), not "{value}"',
        doc="the format the disk is uploaded in (converted with qemu-img when it is not)",
    )
    image_force_delete: bool = option(False, doc="delete an image that has image_name first (-force sets it)")
    image_force_delete_snapshots: bool = option(
        False, doc="with image_force_delete, delete its snapshots too (-force sets it)"
    )
    image_share_account: list[str] = option(default_factory=list, doc="accepted, as Packer does; not used")
    image_copy_regions: list[str] = option(default_factory=list, doc="accepted, as Packer does; not used")
    tags: dict[str, str] = option(default_factory=dict, doc="tags of the imported image")

    def validate_import(self, dctx: DecodeContext, path: str) -> None:
        def err(key: str, message: str) -> None:
            dctx.error(f"{path}.{key}" if path else key, message)

        self.validate_access(dctx, path)
        self.format = self.format.lower() if self.format else self.format
        if self.oss_bucket_name and not _BUCKET.match(self.oss_bucket_name):
            err(
                "oss_bucket_name",
                f"{self.oss_bucket_name!r} is not a bucket name: 3-63 lower-case letters, digits and "
                "hyphens, starting and ending with a letter or digit",
            )
        name = self.image_name or ""
        if name and not 2 <= len(name) <= 128:
            err("image_name", "image_name must less than 128 letters and more than 1 letters")
        elif name.startswith(("http://", "https://")):
            err("image_name", "image_name can't start with 'http://' or 'https://'")
        if self.image_system_size and not (
            self.image_system_size.isdigit() and 1 <= int(self.image_system_size) <= 2048
        ):
            err(
                "image_system_size", f"must be a number of GiB from 1 to 2048, not {self.image_system_size!r}"
            )
        if dctx.force:
            self.image_force_delete = self.image_force_delete_snapshots = True
