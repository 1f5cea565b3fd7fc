"""Options of the alicloud-ecs builder: Packer's, with Packer's meaning (see PACKER.md)."""

# ruff: noqa: RUF009 - option() returns a dataclass field, not a shared mutable default

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from kiln.alicloud.access import AccessConfig
from kiln.communicators.config import SSHConfig, validate_ssh_config
from kiln.config import DecodeContext, Options, option

DEFAULT_VPC_CIDR = "172.16.0.0/16"
DEFAULT_VSWITCH_CIDR = "172.16.0.0/24"
DEFAULT_COPY_TIMEOUT = 3600
DEFAULT_SNAPSHOT_TIMEOUT = 3600
BOOT_MODES = ("BIOS", "UEFI")
INTERNET_CHARGE_TYPES = ("PayByTraffic", "PayByBandwidth")


@dataclass
class DiskDevice(Options):
    disk_name: str = option("")
    disk_category: str = option("", doc="the disk's category: cloud_efficiency, cloud_ssd, cloud_essd...")
    disk_size: int = option(0, doc="GiB")
    disk_snapshot_id: str = option("")
    disk_description: str = option("")
    disk_delete_with_instance: bool = option(False)
    disk_device: str = option("")
    disk_encrypted: bool | None = option(None)
    kms_key_id: str = option("")


@dataclass
class KeyValue(Options):
    key: str = option("", required=True)
    value: str = option("")


@dataclass
class AlicloudEcsConfig(AccessConfig, SSHConfig):
    # -- image ---------------------------------------------------------------------------------
    image_name: str = option(required=True, doc="Name of the image to create")
    image_version: str = option("")
    image_description: str = option("")
    target_image_family: str = option("", doc="Image family of the created image")
    resource_group_id: str = option("")
    tags: dict[str, str] = option(default_factory=dict, doc="Tags of the image and its snapshots")
    tag: list[KeyValue] = option(default_factory=list, doc="Same as tags, as key/value blocks")
    image_share_account: list[str] = option(default_factory=list)
    image_unshare_account: list[str] = option(default_factory=list)
    image_copy_regions: list[str] = option(
        default_factory=list, unique=True, doc="copy the image to these regions (repeats are dropped)"
    )
    image_copy_names: list[str] = option(default_factory=list)
    image_encrypted: bool | None = option(None)
    image_force_delete: bool = option(False, doc="delete images that have the target name (-force sets it)")
    image_force_delete_snapshots: bool = option(
        False, doc="with image_force_delete, delete their snapshots too (-force sets it)"
    )
    image_force_delete_instances: bool = option(False)
    image_ignore_data_disks: bool = option(False)
    boot_mode: str = option("", choices=BOOT_MODES, doc="the image's boot mode")
    kms_key_id: str = option("")
    system_disk_mapping: DiskDevice = option(default_factory=DiskDevice)
    image_disk_mappings: list[DiskDevice] = option(default_factory=list)
    skip_create_image: bool = option(False)
    # -- instance ------------------------------------------------------------------------------
    instance_type: str = option(required=True)
    source_image: str = option("")
    image_family: str = option("", doc="Start from the newest image of this family")
    description: str = option("")
    zone_id: str = option("")
    io_optimized: bool | None = option(None)
    instance_name: str = option("")
    internet_charge_type: str = option(
        "", choices=INTERNET_CHARGE_TYPES, doc="how the public IP's traffic is billed"
    )
    internet_max_bandwidth_out: int = option(0)
    user_data: str = option("")
    user_data_file: str = option("")
    run_tags: dict[str, str] = option(default_factory=dict)
    security_enhancement_strategy: str = option("")
    force_stop_instance: bool = option(False)
    disable_stop_instance: bool = option(False)
    wait_snapshot_ready_timeout: int = option(0)
    wait_copying_image_ready_timeout: int = option(0)
    # -- network -------------------------------------------------------------------------------
    vpc_id: str = option("")
    vpc_name: str = option("")
    vpc_cidr_block: str = option("")
    vswitch_id: str = option("")
    vswitch_name: str = option("")
    cidr_block: str = option("", doc="CIDR of the vSwitch kiln creates")
    security_group_id: str = option("")
    security_group_name: str = option("")
    eip_id: str = option("")
    associate_public_ip_address: bool | None = option(
        None, doc="Give the instance an EIP (default: yes, unless ssh_private_ip)"
    )
    ssh_private_ip: bool = option(False)
    temporary_key_pair_name: str = option("", doc="Name of the temporary key pair (default packer_<uuid>)")

    def image_tags(self) -> dict[str, str]:
        merged = dict(self.tags)
        merged.update({kv.key: kv.value for kv in self.tag})
        return merged

    def wants_eip(self) -> bool:
        if self.ssh_private_ip:
            return bool(self.associate_public_ip_address)
        return self.associate_public_ip_address is not False or bool(self.eip_id)

    def copy_timeout(self) -> float:
        return float(self.wait_copying_image_ready_timeout or DEFAULT_COPY_TIMEOUT)

    def snapshot_timeout(self) -> float:
        return float(self.wait_snapshot_ready_timeout or DEFAULT_SNAPSHOT_TIMEOUT)

    def read_user_data(self, work_dir: Path) -> str:
        if self.user_data_file:
            return _path(self.user_data_file, work_dir).read_text()
        return self.user_data

    def validate_ecs(self, dctx: DecodeContext, path: str) -> None:
        def err(key: str, message: str) -> None:
            dctx.error(f"{path}.{key}" if path else key, message)

        self.validate_access(dctx, path)
        validate_ssh_config(self, dctx, path)
        name = self.image_name or ""
        if name:
            if not 2 <= len(name) <= 128:
                err("image_name", "image_name must less than 128 letters and more than 1 letters")
            elif name.startswith(("http://", "https://")):
                err("image_name", "image_name can't start with 'http://' or 'https://'")
            if re.search(r"\s", name):
                err("image_name", "image_name can't include spaces")
        if not self.source_image and not self.image_family:
            err("source_image", "A source_image must be specified")
        if self.source_image and self.image_family:
            err("image_family", "The image_family and source_image only can be set one")
        if self.source_image and self.source_image.strip() != self.source_image:
            err("source_image", "The source_image can't include spaces")
        if self.user_data and self.user_data_file:
            err("user_data_file", "Only one of user_data or user_data_file can be specified.")
        elif self.user_data_file and not _path(self.user_data_file, Path.cwd()).is_file():
            err("user_data_file", f"user_data_file not found: {self.user_data_file}")
        if self.image_copy_names and len(self.image_copy_names) > len(self.image_copy_regions):
            err("image_copy_names", "image_copy_names has more names than image_copy_regions has regions")
        if len(self.image_share_account) > 10 or len(self.image_unshare_account) > 10:
            err("image_share_account", "at most 10 accounts can be added or removed at a time")
        if dctx.force:
            # -force replaces what already has the image's name, as Packer's packer_force does
            self.image_force_delete = self.image_force_delete_snapshots = True


def _path(name: str, base: Path) -> Path:
    path = Path(os.path.expanduser(name))
    return path if path.is_absolute() else base / path
