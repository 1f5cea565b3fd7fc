"""Options of the qemu builder: Packer's, with Packer's defaults (a disk image, or an installer ISO onto a blank disk)."""

# ruff: noqa: RUF009 - option() returns a dataclass field, not a shared mutable default

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.communicators.config import SSHConfig, validate_ssh_config
from kiln.config import DecodeContext, Duration, option

if TYPE_CHECKING:
    from kiln.builders.qemu.isofetch import IsoRequest

FORMATS = ("qcow2", "raw")
DISK_INTERFACES = ("virtio", "virtio-scsi", "scsi", "ide", "sata", "nvme")
ACCELERATORS = ("kvm", "tcg", "none")
CDROM_INTERFACES = ("", "ide", "scsi", "virtio-scsi", "virtio")
#: Packer's disk sizes: a number with an optional K, M, G or T (a bare number is MB for ISO builds)
SIZE = re.compile(r"\d+[KMGT]?", re.IGNORECASE)
#: Packer's disk_size for ISO builds
DEFAULT_DISK_SIZE = "40960M"


@dataclass
class QemuConfig(SSHConfig):
    iso_url: str = option(
        "",
        cache=False,
        doc="the installer ISO, or with disk_image the disk image: a path, file:// or http(s):// URL",
    )
    iso_urls: list[str] = option(
        default_factory=list, cache=False, doc="instead of iso_url: URLs of the same file, tried in order"
    )
    iso_checksum: str = option(
        required=True,
        cache=False,
        doc='"sha256:HEX" (or md5, sha1, sha512), bare HEX, "file:PATH" or "file:URL" (a listing), or "none"',
    )
    iso_target_path: str = option(
        "",
        cache=False,
        doc="where a download is kept (a folder if it has no extension); default: kiln's cache",
    )
    iso_target_extension: str = option("iso", cache=False, doc="the extension of a downloaded file")
    disk_image: bool = option(
        False, doc="iso_url is a bootable disk image; false: an installer ISO booted onto a blank disk"
    )
    boot_command: list[str] = option(
        default_factory=list,
        raw=True,
        doc="keys typed after boot_wait (Packer's key language: `<enter>`, `<wait5>`, `<leftCtrlOn>`...), "
        "with `{{ .HTTPIP }}`, `{{ .HTTPPort }}`, `{{ .Name }}`",
    )
    boot_key_interval: Duration = option(
        Duration(0),
        cache=False,
        doc="the pause after each key event; default PACKER_KEY_INTERVAL, else 100ms",
    )
    boot_keygroup_interval: Duration = option(
        Duration(0), cache=False, doc="kiln: a further pause after each whole key"
    )
    http_directory: str = option(
        "", cache="file", doc="a folder served over HTTP to the guest for the build's lifetime"
    )
    http_content: dict[str, str] = option(
        default_factory=dict, doc='instead of http_directory: paths ("/preseed.cfg") and their text'
    )
    http_port_min: int = option(8000, cache=False, doc="the lowest port the HTTP server may listen on")
    http_port_max: int = option(9000, cache=False, doc="the highest port the HTTP server may listen on")
    http_bind_address: str = option(
        "0.0.0.0",
        cache=False,
        doc="where the HTTP server listens; the guest reaches it at 10.0.2.2 (`{{ .HTTPIP }}`)",
    )
    cd_files: list[str] = option(
        default_factory=list,
        cache="file",
        doc="files, folders and globs put on a CD made for the build (xorriso)",
    )
    cd_content: dict[str, str] = option(
        default_factory=dict, doc="paths on that CD and their text (over cd_files' of the same path)"
    )
    cd_label: str = option("", doc="the CD's volume label; default: packer")
    floppy_files: list[str] = option(
        default_factory=list,
        cache="file",
        doc="files and globs put at the root of a floppy made for the build",
    )
    floppy_dirs: list[str] = option(
        default_factory=list, cache="file", doc="folders put on the floppy recursively, with their structure"
    )
    floppy_content: dict[str, str] = option(default_factory=dict, doc="paths on the floppy and their text")
    floppy_label: str = option("", doc="the floppy's volume label; default: packer")
    output_directory: str = option("", cache=False, doc="default: output-<build name>")
    vm_name: str = option("", cache=False, doc="file name of the image; default: packer-<build name>")
    format: str = option("qcow2", choices=FORMATS, cache=False, doc="the output image's format")
    disk_size: str = option(
        "",
        doc="the disk's size (40960M, 20G; a bare number is MB): with disk_image it grows the copy "
        "(never shrinks), else the blank disk's (default 40960M)",
    )
    disk_additional_size: list[str] = option(
        default_factory=list, doc="further blank disks of these sizes (ISO builds)"
    )
    machine_type: str = option(
        "", doc="QEMU's -machine; default: pc for ISO builds (Packer's), q35 with disk_image"
    )
    cdrom_interface: str = option(
        "", choices=CDROM_INTERFACES, doc="how the ISO is attached; default: the machine type's (IDE on pc)"
    )
    efi_boot: bool = option(False, doc="boot with UEFI firmware (OVMF) instead of BIOS (ISO builds)")
    efi_firmware_code: str = option("", doc="the OVMF code file; default /usr/share/OVMF/OVMF_CODE_4M.fd")
    efi_firmware_vars: str = option(
        "", doc="the OVMF variable store the machine gets a copy of; default /usr/share/OVMF/OVMF_VARS_4M.fd"
    )
    vnc_bind_address: str = option(
        "127.0.0.1", cache=False, doc="where the VNC server listens (when headless is false)"
    )
    vnc_port_min: int = option(5900, cache=False, doc="the lowest port the VNC server may listen on")
    vnc_port_max: int = option(6000, cache=False, doc="the highest port the VNC server may listen on")
    disk_compression: bool = option(False, cache=False, doc="compress the qcow2 output")
    skip_compaction: bool = option(False, cache=False, doc="accepted; the output is always a standalone copy")
    accelerator: str = option(
        "",
        choices=ACCELERATORS,
        cache=False,
        doc="unset or none: kvm only if a guest proved to boot with it, else tcg",
    )
    cpus: int = option(1, cache=False, doc="virtual CPUs")
    memory: int = option(512, cache=False, doc="MB")
    headless: bool = option(
        False,
        cache=False,
        doc="kiln opens no window: false gives ISO builds a VNC server to watch the screen on",
    )
    qemuargs: list[list[str]] = option(default_factory=list, doc="extra QEMU arguments")
    net_device: str = option("virtio-net", cache=False, doc="QEMU network device model")
    disk_interface: str = option(
        "virtio", choices=DISK_INTERFACES, doc="how the disk is attached (nvme boots fastest in kiln)"
    )
    boot_wait: Duration = option(
        Duration(10), cache=False, doc="wait this long after start before connecting"
    )
    shutdown_command: str = option(
        "", cache=False, doc="run over SSH to stop the machine; default: ACPI power-off"
    )
    shutdown_timeout: Duration = option(
        Duration(300), cache=False, doc="how long the machine may take to power off before it is stopped"
    )
    ssh_host_port_min: int = option(
        2222, cache=False, doc="the lowest local port forwarded to the guest's SSH"
    )
    ssh_host_port_max: int = option(
        4444, cache=False, doc="the highest local port forwarded to the guest's SSH"
    )
    user_data: str = option("", doc="kiln: user data for the machine's NoCloud seed")
    user_data_file: str = option("", cache="file", doc="kiln: a file whose content is the user data")

    @property
    def iso_option(self) -> str:
        return "iso_urls" if self.iso_urls else "iso_url"

    def iso_request(self, work_dir: Path) -> IsoRequest:
        from kiln.builders.qemu.isofetch import IsoRequest

        return IsoRequest(
            urls=tuple(self.iso_urls or [self.iso_url]),
            checksum=self.iso_checksum,
            option=self.iso_option,
            work_dir=work_dir,
            target_path=self.iso_target_path,
            target_extension=self.iso_target_extension,
        )

    def validate_iso(self, dctx: DecodeContext, path: str) -> None:
        from kiln.builders.qemu.isofetch import checksum_problem, url_problem

        if self.iso_url and self.iso_urls:
            dctx.error(path, "Only one of iso_url or iso_urls must be specified")
        elif not self.iso_url and not self.iso_urls:
            dctx.error(path, "One of iso_url or iso_urls must be specified")
        for name, url in [("iso_url", self.iso_url)] if self.iso_url else enumerate(self.iso_urls):
            where = f"{path}.iso_urls[{name}]" if isinstance(name, int) else f"{path}.iso_url"
            if problem := url_problem(url):
                dctx.error(where, problem)
        if self.iso_checksum is not None and (problem := checksum_problem(self.iso_checksum)):
            dctx.error(f"{path}.iso_checksum", problem)

    def validate_boot(self, dctx: DecodeContext, path: str) -> None:
        from kiln.builders.qemu.bootcommand import BootCommandError, parse
        from kiln.builders.qemu.httpserve import validate_http

        try:
            parse(self.boot_command, templated=True)
        except BootCommandError as exc:
            hint = f" ({exc.hint})" if exc.hint else ""
            dctx.error(f"{path}.boot_command[{exc.line}]", f"column {exc.column}: {exc.problem}{hint}")
        for name in ("boot_key_interval", "boot_keygroup_interval"):
            if getattr(self, name) < 0:
                dctx.error(f"{path}.{name}", "must not be negative")
        for name, problem in validate_http(
            self.http_directory, self.http_content, self.http_port_min, self.http_port_max
        ):
            dctx.error(f"{path}.{name}", problem)

    def validate_disks(self, dctx: DecodeContext, path: str) -> None:
        from kiln.builders.qemu.extradisks import content_problems, path_problems

        work_dir = Path.cwd()  # where relative paths are read from, as in Packer
        for name in ("cd_files", "floppy_files", "floppy_dirs"):
            for problem in path_problems(name, getattr(self, name), work_dir):
                dctx.error(f"{path}.{name}", problem)
        for name in ("cd_content", "floppy_content"):
            for problem in content_problems(name, getattr(self, name)):
                dctx.error(f"{path}.{name}", problem)
        if len(self.cd_label) > 32 or len(self.floppy_label) > 11:
            dctx.error(path, "cd_label holds 32 characters at most, floppy_label 11")

    def blank_disk_size(self, size: str) -> str:
        """An ISO build's disk size for qemu-img: Packer's bare number is MB."""
        size = size.strip() or DEFAULT_DISK_SIZE
        return f"{size}M" if size.isdigit() else size.upper()

    def validate_qemu(self, dctx: DecodeContext, path: str) -> None:
        self.validate_disks(dctx, path)
        self.validate_iso(dctx, path)
        self.validate_boot(dctx, path)
        for name, size in [
            ("disk_size", self.disk_size),
            *((f"disk_additional_size[{n}]", extra) for n, extra in enumerate(self.disk_additional_size)),
        ]:
            if size and not SIZE.fullmatch(size.strip()):
                dctx.error(f"{path}.{name}", f'"{size}" is not a size such as 20G or 40960M')
        if self.disk_image and self.disk_additional_size:
            dctx.error(
                f"{path}.disk_additional_size", "only ISO builds (disk_image = false) have blank disks"
            )
        if not 0 < self.vnc_port_min <= self.vnc_port_max < 65536:
            dctx.error(path, "vnc_port_min/max must be a port range")
        if self.cpus < 1 or self.memory < 128:
            dctx.error(path, "cpus must be at least 1 and memory at least 128 (MB)")
        if self.user_data and self.user_data_file:
            dctx.error(path, "only one of user_data or user_data_file may be specified")
        if not 0 < self.ssh_host_port_min <= self.ssh_host_port_max < 65536:
            dctx.error(path, "ssh_host_port_min/max must be a port range")
        validate_ssh_config(self, dctx, path)
