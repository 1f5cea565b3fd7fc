"""The VM runner's machines that boot an installer ISO onto blank disks (MachineSpec.install): their
disks and QEMU's arguments for them. kiln.machines.qemu runs them as its other VMs (console log, QMP,
port forward, the stall watchdog when `watch_stalls`); no NoCloud seed, no direct kernel boot: the
firmware boots the CD once (`-boot once=d`, as Packer), the disk after the installer's reboot."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from kiln.errors import MachineError
from kiln.machines import command
from kiln.machines.spec import Install, MachineSpec

#: Debian's OVMF (package ovmf), where efi_boot names no firmware of its own
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
CDROM_INTERFACES = ("", "ide", "scsi", "virtio-scsi", "virtio")

Drive = Callable[[int, Path, str, str], list[str]]


def disk_paths(work_dir: Path, install: Install) -> list[Path]:
    """The machine's blank disks: the one the installer installs onto, then disk_additional_size's."""
    suffix = "qcow2" if install.disk_format == "qcow2" else "raw"
    return [work_dir / f"disk.{suffix}"] + [
        work_dir / f"disk-{n}.{suffix}" for n in range(1, len(install.extra_disks) + 1)
    ]


def make_disks(work_dir: Path, install: Install, machine: str) -> None:
    """Create the blank disks (a restart of a stopped machine keeps them)."""
    for path, size in zip(
        disk_paths(work_dir, install), (install.disk_size, *install.extra_disks), strict=True
    ):
        if not path.exists():
            argv = ["qemu-img", "create", "-q", "-f", install.disk_format, str(path), size]
            command.run(argv, f"making the disk of machine {machine}", hint="check disk_size and free space")
    if install.efi_code is not None or install.efi_vars is not None:
        variables = work_dir / "efivars.fd"
        if not variables.exists():
            source = install.efi_vars or OVMF_VARS
            if not source.is_file():
                raise MachineError(f"UEFI variable store {source}: no such file", "apt-get install ovmf")
            shutil.copyfile(source, variables)


def install_argv(
    spec: MachineSpec, work_dir: Path, console: Path, qmp: Path, net: str, drive: Drive
) -> list[str]:
    """QEMU's arguments, after the accelerator and CPU, for a machine with `spec.install` (`net`: its
    -netdev)."""
    install = spec.install
    assert install is not None
    argv = ["-smp", str(spec.cpus), "-m", str(spec.memory_mb), "-nodefaults", "-no-user-config"]
    argv += ["-device", "VGA"]  # an installer's screen: GRUB and the console draw on it, VNC shows it
    argv += ["-vnc", install.vnc] if install.vnc else ["-display", "none"]
    argv += ["-chardev", f"file,id=console,path={console}", "-serial", "chardev:console"]
    fmt = install.disk_format
    for index, path in enumerate(disk_paths(work_dir, install)):
        argv += drive(index, path, fmt, ",discard=unmap,cache=unsafe" if fmt == "qcow2" else ",cache=unsafe")
    for index, iso in enumerate((spec.image, *install.cdroms)):
        argv += _cdrom(index, iso.resolve(), install.cdrom_interface)
    if install.floppy is not None:
        argv += ["-drive", f"file={install.floppy.resolve()},if=floppy,format=raw,index=0"]
    if install.efi_code is not None or install.efi_vars is not None:
        code = install.efi_code or OVMF_CODE
        if not code.is_file():
            raise MachineError(
                f"UEFI firmware {code}: no such file", "apt-get install ovmf, or set efi_firmware_code"
            )
        argv += ["-drive", f"if=pflash,unit=0,format=raw,readonly=on,file={code}"]
        argv += ["-drive", f"if=pflash,unit=1,format=raw,file={work_dir / 'efivars.fd'}"]
    argv += ["-boot", "once=d"]
    argv += ["-netdev", net, "-device", f"{spec.net_device},netdev=net0"]
    argv += ["-device", "virtio-rng-pci", "-qmp", f"unix:{qmp},server=on,wait=off"]
    return argv


def _cdrom(index: int, iso: Path, interface: str) -> list[str]:
    media = f"file={iso},media=cdrom,readonly=on"
    if interface == "virtio-scsi":
        controller = ["-device", "virtio-scsi-pci,id=cdscsi"] if index == 0 else []
        return [
            *controller,
            "-drive",
            f"{media},if=none,id=cd{index}",
            "-device",
            f"scsi-cd,bus=cdscsi.0,drive=cd{index}",
        ]
    if interface == "virtio":
        return ["-drive", f"file={iso},if=virtio,readonly=on,format=raw"]
    if interface in ("ide", "scsi"):
        return ["-drive", f"{media},if={interface}"]
    return ["-drive", media]
