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
    disk_name: str = option("", cache=False, doc="the disk's name")
    disk_category: str = option("", doc="the disk's category: cloud_efficiency, cloud_ssd, cloud_essd...")
    disk_size: int = option(0, doc="GiB")
    disk_snapshot_id: str = option("", doc="make the disk from this snapshot")
    disk_description: str = option("", cache=False, doc="the disk's description")
    disk_delete_with_instance: bool = option(
        True,
        cache=False,
        doc="delete the disk with the build's instance (Packer's default, false, leaves it behind)",
    )
    disk_device: str = option("", doc="the device name, e.g. /dev/xvdb")
    disk_encrypted: bool | None = option(None, doc="encrypt the disk")
    kms_key_id: str = option("", doc="the KMS key that encrypts the disk")


@dataclass
class KeyValue(Options):
    key: str = option("", required=True, doc="the tag's key")
    value: str = option("", doc="the tag's value")


@dataclass
class AlicloudEcsConfig(AccessConfig, SSHConfig):
    # -- image ---------------------------------------------------------------------------------
    image_name: str = option(required=True, cache=False, doc="Name of the image to create")
    image_version: str = option("", cache=False, doc="version of the created image")
    image_description: str = option("", cache=False, doc="description of the created image")
    target_image_family: str = option("", cache=False, doc="Image family of the created image")
    resource_group_id: str = option("", cache=False, doc="resource group of the created image")
    tags: dict[str, str] = option(
        default_factory=dict, cache=False, doc="Tags of the image and its snapshots"
    )
    tag: list[KeyValue] = option(default_factory=list, cache=False, doc="Same as tags, as key/value blocks")
    image_share_account: list[str] = option(
        default_factory=list, cache=False, doc="share the image with these accounts (at most 10)"
    )
    image_unshare_account: list[str] = option(
        default_factory=list, cache=False, doc="stop sharing the image with these accounts (at most 10)"
    )
    image_copy_regions: list[str] = option(
        default_factory=list,
        unique=True,
        cache=False,
        doc="copy the image to these regions (repeats are dropped)",
    )
    image_copy_names: list[str] = option(
        default_factory=list,
        cache=False,
        doc="names of the copies, in the order of image_copy_regions (default: image_name)",
    )
    image_encrypted: bool | None = option(None, cache=False, doc="encrypt the image's copies")
    image_force_delete: bool = option(
        False, cache=False, doc="delete images that have the target name (-force sets it)"
    )
    image_force_delete_snapshots: bool = option(
        False, cache=False, doc="with image_force_delete, delete their snapshots too (-force sets it)"
    )
    image_force_delete_instances: bool = option(
        False, cache=False, doc="accepted; kiln never deletes instances"
    )
    image_ignore_data_disks: bool = option(
        False, cache=False, doc="make the image of the system disk only (from a snapshot of it)"
    )
    boot_mode: str = option("", choices=BOOT_MODES, cache=False, doc="the image's boot mode")
    kms_key_id: str = option("", doc="the KMS key that encrypts the image's copies")
    system_disk_mapping: DiskDevice = option(default_factory=DiskDevice, doc="the instance's system disk")
    image_disk_mappings: list[DiskDevice] = option(
        default_factory=list, doc="data disks of the instance, and so of the image"
    )
    skip_create_image: bool = option(False, cache=False, doc="provision the instance but make no image")
    # -- instance ------------------------------------------------------------------------------
    instance_type: str = option(
        required=True, cache=False, doc="type of the temporary instance, e.g. ecs.g6.large"
    )
    source_image: str = option("", cache=False, doc="the image the instance starts from")
    image_family: str = option("", cache=False, doc="Start from the newest image of this family")
    description: str = option("", cache=False, doc="description of the temporary instance")
    zone_id: str = option("", cache=False, doc="zone of the instance (default: one that has instance_type)")
    io_optimized: bool | None = option(
        None, cache=False, doc="an I/O optimized instance (older instance types)"
    )
    instance_name: str = option("", cache=False, doc="name of the temporary instance")
    internet_charge_type: str = option(
        "", choices=INTERNET_CHARGE_TYPES, cache=False, doc="how the public IP's traffic is billed"
    )
    internet_max_bandwidth_out: int = option(0, cache=False, doc="Mbit/s of the public IP")
    user_data: str = option("", doc="user data of the instance")
    user_data_file: str = option("", cache="file", doc="a file whose content is the user data")
    run_tags: dict[str, str] = option(default_factory=dict, cache=False, doc="tags of the temporary instance")
    security_enhancement_strategy: str = option("", doc="Active or Deactive: the instance's security agent")
    force_stop_instance: bool = option(
        False, cache=False, doc="stop the instance at once, without a clean shutdown"
    )
    disable_stop_instance: bool = option(
        False, cache=False, doc="do not stop the instance: a provisioner does (e.g. sysprep)"
    )
    wait_snapshot_ready_timeout: int = option(0, cache=False, doc="seconds to wait for a snapshot (0: 3600)")
    wait_copying_image_ready_timeout: int = option(
        0, cache=False, doc="seconds to wait for the copies (0: 3600)"
    )
    # -- network -------------------------------------------------------------------------------
    vpc_id: str = option("", cache=False, doc="use this VPC (kiln makes one otherwise)")
    vpc_name: str = option("", cache=False, doc="name of the VPC kiln makes")
    vpc_cidr_block: str = option("", cache=False, doc="CIDR of the VPC kiln makes (default 172.16.0.0/16)")
    vswitch_id: str = option("", cache=False, doc="use this vSwitch (kiln makes one otherwise)")
    vswitch_name: str = option("", cache=False, doc="name of the vSwitch kiln makes")
    cidr_block: str = option("", cache=False, doc="CIDR of the vSwitch kiln creates")
    security_group_id: str = option("", cache=False, doc="use this security group (kiln makes one otherwise)")
    security_group_name: str = option("", cache=False, doc="name of the security group kiln makes")
    eip_id: str = option("", cache=False, doc="use this EIP (kiln allocates one otherwise)")
    associate_public_ip_address: bool | None = option(
        None, cache=False, doc="Give the instance an EIP (default: yes, unless ssh_private_ip)"
    )
    ssh_private_ip: bool = option(False, cache=False, doc="connect to the instance's private address")
    temporary_key_pair_name: str = option(
        "", cache=False, doc="Name of the temporary key pair (default packer_<uuid>)"
    )

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
