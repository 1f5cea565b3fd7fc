"""The one machine API both runners share: `MachineSpec` in, `Machine` out."""

from __future__ import annotations

import abc
import ipaddress
import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from kiln import paths
from kiln.errors import MachineError

ImageFormat = Literal["qcow2", "raw"]
Accelerator = Literal["auto", "kvm", "tcg"]

#: terminal escapes and other control characters in a console log
CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Metadata:
    """What a machine learns at first boot through its NoCloud seed.

    `ssh_authorized_keys` are public keys (OpenSSH one-line format) added to root's authorized_keys;
    `hostname` becomes the machine's host name; `user_data` runs once per instance if it starts with
    `#!` (a script), and its `ssh_authorized_keys:` list is honoured if it is `#cloud-config`.
    `instance_id` defaults to the machine id: a new instance id makes the machine redo its first boot
    (new SSH host keys, keys and hostname applied, user data run), as on a cloud.
    """

    ssh_authorized_keys: tuple[str, ...] = ()
    hostname: str | None = None
    user_data: str | None = None
    instance_id: str | None = None


@dataclass(frozen=True)
class Install:
    """VM runner: a machine that boots an installer ISO (MachineSpec.image) onto a blank disk, as a
    build from an installer does (the qemu builder without disk_image).

    disk_size: the blank disk's size ("40960M", "20G"); extra_disks: the sizes of further blank disks.
    disk_format: qcow2 or raw (the disk the installer writes; save_image converts it anyway).
    cdroms: further ISOs attached after the installer (cd_files); floppy: a floppy image.
    cdrom_interface: "" (the machine type's own: IDE on pc, AHCI on q35), ide, scsi, virtio-scsi or
        virtio. machine_type: QEMU's -machine (pc, as Packer's default; q35).
    efi_code / efi_vars: UEFI firmware (OVMF): the code, read-only, and a variable store the machine
        gets its own copy of; neither: BIOS (SeaBIOS).
    vnc: "ADDRESS:DISPLAY" to show the screen over VNC; "" none (kiln types through QMP).
    watch_stalls: whether the stuck-boot watchdog applies (no: an installer may wait for a human).
    The firmware boots the CD once (-boot once=d), then, after the installer's reboot, the disk.
    """

    disk_size: str
    disk_format: str = "qcow2"
    extra_disks: tuple[str, ...] = ()
    cdroms: tuple[Path, ...] = ()
    floppy: Path | None = None
    cdrom_interface: str = ""
    machine_type: str = "pc"
    efi_code: Path | None = None
    efi_vars: Path | None = None
    vnc: str = ""
    watch_stalls: bool = True


@dataclass(frozen=True)
class MachineSpec:
    """How to run one machine. Only `image` is required.

    image: a kiln base image (or an image saved from a machine), raw or qcow2; never modified. With
        `install` (VM runner only): the installer ISO the machine boots, onto a blank disk.
    ssh_host/ssh_port: where the machine's sshd is reachable on the host; the address must be in
        127.0.0.0/8, port 0 picks a free port (read it back from `Machine.ssh_port`).
    work_dir: the machine's own folder (disk, console log, sockets), made if missing; default
        `state_dir()/machines/<id>/`. `destroy()` removes it: give a folder used for nothing else.
    disk_size: grow the machine's disk to this size ("20G"); the guest grows its root at boot.
        Only the VM runner honours it; the namespace runner shares the host's file system limits.
    data_disks: raw files the machine sees as block devices besides its own disk, written in place
        (a VM's further disks on its disk interface; /dev/vdb, /dev/vdc... in a namespace machine,
        each a loop device of the file).
    keep_disk: the machine's disk (`disk_path`: the VM's qcow2 overlay, the namespace machine's
        overlay upper folder) outlives it: `destroy()`, and the sweep after its owner was killed,
        remove all else of work_dir, and the next machine on that work_dir and image goes on from
        that disk, so what its guest wrote (and synced, for a VM) survives a crash of the owner.
    accelerator, disk_interface, net_device, qemu_args, kernel_boot: VM runner only. kernel_boot: QEMU
        loads the kernel (and the initrd, unless the kernel can mount the root itself from an NVMe
        disk) read out of the image: its GRUB is skipped, not changed. disk_interface: auto (the
        default: nvme when the kernel has the driver built in and can boot without its initrd, as
        Debian's cloud kernel can; else virtio), nvme, virtio, virtio-scsi, scsi, ide, sata.
    """

    image: Path
    name: str = "kiln"
    cpus: int = 2
    memory_mb: int = 1024
    ssh_host: str = "127.0.0.1"
    ssh_port: int = 0
    metadata: Metadata = field(default_factory=Metadata)
    work_dir: Path | None = None
    disk_size: str | None = None
    data_disks: tuple[Path, ...] = ()
    accelerator: Accelerator = "auto"
    disk_interface: str = "auto"
    net_device: str = "virtio-net-pci"
    qemu_args: tuple[tuple[str, ...], ...] = ()
    kernel_boot: bool = True
    keep_disk: bool = False
    install: Install | None = None

    def validate(self) -> None:
        if not self.image.is_file():
            raise MachineError(
                f"image {self.image}: no such file",
                "build one with `kiln baseimage build debian-12`",
            )
        try:
            address = ipaddress.ip_address(self.ssh_host)
        except ValueError:
            raise MachineError(
                f"ssh_host {self.ssh_host!r} is not an IP address", "use an address in 127.0.0.0/8"
            ) from None
        if address not in ipaddress.ip_network("127.0.0.0/8"):
            raise MachineError(
                f"ssh_host {self.ssh_host} is not a loopback address", "use an address in 127.0.0.0/8"
            )
        if not 0 <= self.ssh_port <= 65535:
            raise MachineError(f"ssh_port {self.ssh_port} is out of range", "use 0 to pick a free port")
        if self.cpus < 1 or self.memory_mb < 128:
            raise MachineError(
                f"machine {self.name}: cpus={self.cpus} memory={self.memory_mb} MB is too small",
                "give at least 1 cpu and 128 MB",
            )


def free_port(host: str) -> int:
    """A TCP port free on `host` right now (the runner binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class Machine(abc.ABC):
    """A running (or stopped) machine. Use as a context manager: leaving it destroys the machine."""

    runner: str = ""

    def __init__(self, spec: MachineSpec) -> None:
        spec.validate()
        self.spec = spec
        self.id = f"{spec.name}-{secrets.token_hex(4)}"
        self.ssh_host = spec.ssh_host
        self.ssh_port = spec.ssh_port or free_port(spec.ssh_host)
        self.work_dir = paths.private_dir(spec.work_dir or paths.state_dir() / "machines" / self.id)
        self.console_log = self.work_dir / "console.log"
        from kiln.machines.hostkey import new_host_key

        # the instance's SSH host key, handed in through the seed (see kiln.machines.seed)
        self.host_key = new_host_key()
        self._console_read = 0  #: how far announced_ssh() has read this start's console
        self._announced = False
        #: what the runner did on its own that a user should hear of (a stuck boot reset)
        self.notes: list[str] = []

    # -- lifecycle --------------------------------------------------------------------------------
    @abc.abstractmethod
    def start(self) -> None:
        """Boot the machine; returns once it is started (not necessarily reachable)."""

    @abc.abstractmethod
    def is_running(self) -> bool:
        """True while the machine runs."""

    def still_booting(self) -> bool:
        """Asked a few times a second while waiting for SSH: False once the machine has stopped. A runner
        may also look after the boot here (the VM runner resets a stuck one)."""
        return self.is_running()

    @abc.abstractmethod
    def stop(self, graceful: bool = True, timeout: float = 60.0) -> None:
        """Power off (ACPI or `poweroff`), killing it after `timeout`. Keeps the disk for save_image."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Stop at once and release every process, mount and namespace. Keeps the disk."""

    @abc.abstractmethod
    def save_image(self, dest: Path, fmt: ImageFormat = "qcow2", compress: bool = False) -> Path:
        """Write the machine's disk as a standalone bootable image (stop the machine first)."""

    @abc.abstractmethod
    def save_running_image(self, dest: Path, fmt: ImageFormat = "qcow2") -> Path:
        """Write a point-in-time copy of the running machine's disk as a standalone bootable image,
        the machine running on (what it wrote before the call is in the copy)."""

    @abc.abstractmethod
    def save_running_data_disk(self, disk: Path, dest: Path) -> Path:
        """Write a point-in-time copy of one of the running machine's data disks (raw) to `dest`."""

    @property
    @abc.abstractmethod
    def disk_path(self) -> Path:
        """The machine's own disk (a qcow2 overlay for VMs, an overlay upper folder for namespaces)."""

    # -- shared behaviour -------------------------------------------------------------------------
    def wait_for_ssh(self, timeout: float = 120.0) -> float:
        """Wait until sshd answers on (ssh_host, ssh_port); return the seconds waited."""
        from kiln.communicators.banner import wait_for_banner

        began = time.monotonic()
        if wait_for_banner(
            self.ssh_host,
            self.ssh_port,
            timeout,
            stop=lambda: not self.still_booting(),
            ready=self.announced_ssh,
        ):
            return time.monotonic() - began
        if not self.is_running():
            problem = f"machine {self.id} stopped before SSH answered"
        else:
            problem = f"machine {self.id}: no SSH on {self.ssh_host}:{self.ssh_port} after {timeout:.0f} s"
        if self.notes:
            problem += f", {len(self.notes)} stuck boot(s) reset"
        last = self.last_console_line()
        raise MachineError(
            problem + (f" (its console's last line: {last!r})" if last else ""),
            f"see its console log {self.keep_console()}",
        )

    def _console_begins(self) -> None:
        """A runner calls this as it starts the machine: this start's console is what the log gets from
        now on (the namespace runner appends to it)."""
        try:
            self._console_read = self.console_log.stat().st_size
        except OSError:
            self._console_read = 0
        self._announced = False

    def announced_ssh(self) -> bool:
        """True once the machine has said on its console, in this start, that its sshd listens (kiln's
        agent does, see kiln.machines.guestfiles.READY_LINE). Reads only what the log got since the last
        call: cheap enough to ask a few times a second."""
        if self._announced:
            return True
        from kiln.machines.guestfiles import READY_LINE

        line = READY_LINE.encode()
        try:
            with open(self.console_log, "rb") as log:
                size = log.seek(0, 2)
                if size < self._console_read:
                    self._console_read = 0  # the log was started afresh
                log.seek(max(0, self._console_read - len(line)))  # a line split between two reads
                seen = log.read(size - log.tell())
        except OSError:
            return False
        self._console_read = size
        self._announced = line in seen
        return self._announced

    def keep_console(self) -> Path:
        """Copy the console log where it outlives `destroy()` (state_dir()/logs/<id>.console.log) and
        return the copy's path: what a user reads after a failed boot or build."""
        try:
            text = self.console_log.read_bytes()
        except OSError:
            text = b""  # no console output at all: an empty log says so
        return self.keep_log("console.log", text)

    def keep_log(self, suffix: str, data: bytes) -> Path:
        """Write `data` to state_dir()/logs/<id>.<suffix> (0600), where it outlives `destroy()`."""
        return paths.write_private(
            paths.private_dir(paths.state_dir() / "logs") / f"{self.id}.{suffix}", data
        )

    def last_console_line(self) -> str:
        """The console log's last line with text, without control characters, at most 160 characters."""
        try:
            with open(self.console_log, "rb") as log:
                log.seek(max(0, log.seek(0, 2) - 4096))
                tail = log.read().decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [CONTROL.sub("", line).strip() for line in tail.splitlines()]
        return next((line[:160] for line in reversed(lines) if line), "")

    def destroy(self) -> None:
        """Kill the machine and remove its files and state record."""
        self.kill()
        from kiln.machines import state

        state.forget(self.id)
        state.remove_work_dir(self.work_dir, self.disk_path if self.spec.keep_disk else None)

    def __enter__(self) -> Machine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()
