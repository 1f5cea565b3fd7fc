"""The VM runner: QEMU with a copy-on-write qcow2 overlay, SSH through a loopback port forward, QMP.

Acceleration: /dev/kvm may exist without running stock kernels (PVM hosts abort with "failed to set
MSR", or hang silently), so KVM is used only after a guest was seen booting with it: `kvm_works()`
boots the image under KVM once and caches the verdict per host kernel and QEMU version. Otherwise
TCG with multi-threading and a 128 MB translation cache (QEMU's default 1 GB cache nearly doubles its
resident memory for no measurable speed-up).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from kiln import paths
from kiln.communicators.banner import wait_for_banner
from kiln.duration import seconds_from_env
from kiln.errors import MachineError
from kiln.machines import command, kernelboot, qemu_install, seed, state
from kiln.machines.spec import ImageFormat, Machine, MachineSpec

QEMU = "qemu-system-x86_64"
POWER_BUTTON_INTERVAL = 3.0
# qemu64 (QEMU's own default model, x86-64 baseline: what Debian's packages are built for) rather than
# `max`: with AVX2 advertised, glibc and the kernel pick AVX2 code paths that TCG emulates far more
# slowly than their SSE2 versions; the guest reached SSH 10-25% sooner in A/B runs on this kind of host.
# A template needing newer instructions passes its own -cpu in qemuargs (the last -cpu wins). Without
# SVM the guest's udev does not load KVM's modules (nested virtualisation under emulation is useless).
TCG = ["-accel", "tcg,thread=multi,tb-size=128", "-cpu", "qemu64,svm=off"]
KVM = ["-accel", "kvm", "-cpu", "host"]
# added to the image's own kernel command line under direct kernel boot: no file system check of the
# root at every start (ext4's journal is replayed at mount anyway), and the root mounted read-write at
# once: no fsck unit and no remount, both on sshd's path at boot (a process costs about 1 s there)
KERNEL_ARGS = "fsck.mode=skip rw"
# the user-mode network's lease, which kiln's agent sets on eth0 at once (see kiln.machines.seed);
# None leaves the guest to DHCP alone (bench/machines compares the two)
EARLY_NETWORK: seed.EarlyNetwork | None = seed.EarlyNetwork()
# A boot that has read and written nothing on its disks for this long, and not answered SSH, is stuck
# (the firmware, GRUB or the kernel hung: emulated boots rarely do, and then never recover): the runner
# keeps what QEMU shows of it beside the console log and resets the VM, at most BOOT_RESETS times.
STALL_SECONDS = 60.0
BOOT_RESETS = 2


def stall_seconds() -> float:
    """STALL_SECONDS, or $KILN_BOOT_STALL_SECONDS (a very slow host may want more; 0 turns it off)."""
    return seconds_from_env(
        "KILN_BOOT_STALL_SECONDS",
        STALL_SECONDS,
        lambda seconds: seconds >= 0,  # not NaN either
        "a number of seconds",
        "give the seconds without disk activity after which a boot is reset, or 0 to never reset",
        MachineError,
    )


def image_format(path: Path) -> str:
    """qcow2 or raw, read from the file's magic bytes (never trust the extension)."""
    with open(path, "rb") as handle:
        return "qcow2" if handle.read(4) == b"QFI\xfb" else "raw"


class QMP:
    """A minimal QEMU Machine Protocol client over the machine's unix socket."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.reader = self.sock.makefile("rb")
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        while True:
            line = self.reader.readline()
            if not line:
                raise ConnectionError("QMP socket closed")
            message: dict[str, Any] = json.loads(line)
            if "event" not in message:
                return message

    def execute(self, command: str, **arguments: Any) -> Any:
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        reply = self._read()
        if "error" in reply:
            raise MachineError(f"QMP {command} failed: {reply['error'].get('desc')}")
        return reply.get("return")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.reader.close()
            self.sock.close()


class VirtualMachine(Machine):
    runner = "vm"

    def __init__(self, spec: MachineSpec, disk: Path | None = None) -> None:
        """`disk`: where the machine's copy-on-write disk (over spec.image) is made; by default in
        its own folder, removed with it. A disk given here is the caller's to remove."""
        super().__init__(spec)
        self._disk = disk or self.work_dir / "disk.qcow2"
        if spec.install is not None:
            self._disk = qemu_install.disk_paths(self.work_dir, spec.install)[0]
        self.qmp_path = self.work_dir / "qmp.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        keep = self._disk if spec.keep_disk else None
        self.record = state.Record(self.id, self.runner, self.work_dir, keep)
        self.accelerator = ""
        self.boot: kernelboot.BootFiles | None = None
        self._bundle: Path | None = None  #: the seed's text bundle (disk 2), where attached
        self.resets = 0  #: stuck boots reset in this start (see STALL_SECONDS)
        self._stall = STALL_SECONDS
        self._argv_launched: list[str] = []
        self._io = (-1, 0.0, 0.0)  #: the disks' operation count, when it last changed, when last asked

    @property
    def disk_interface(self) -> str:
        """The spec's interface; for "auto", NVMe where the kernel mounts the root from it without an
        initrd, elsewhere virtio, which SeaBIOS and GRUB read most reliably under emulation."""
        if self.spec.disk_interface != "auto":
            return self.spec.disk_interface
        return "nvme" if self.boot is not None and self.boot.nvme_root else "virtio"

    @property
    def disk_path(self) -> Path:
        return self._disk

    def _argv(self, accel: list[str]) -> list[str]:
        spec = self.spec
        seed_disk = self.work_dir / "seed.img"
        net = f"user,id=net0,hostfwd=tcp:{self.ssh_host}:{self.ssh_port}-:22"
        if spec.install is not None:
            machine = ["-machine", spec.install.machine_type]
            argv = [QEMU, "-name", self.id, *machine, *accel]
            argv += qemu_install.install_argv(
                spec, self.work_dir, self.console_log, self.qmp_path, net, self._drive
            )
            return argv + [arg for extra in spec.qemu_args for arg in extra]
        argv = [
            QEMU, "-name", self.id, "-machine", "q35", *accel,
            "-smp", str(spec.cpus), "-m", str(spec.memory_mb),
            "-nodefaults", "-display", "none", "-no-user-config",
            "-chardev", f"file,id=console,path={self.console_log}", "-serial", "chardev:console",
            # a kept disk honours the guest's flushes: what it synced is on the disk if QEMU dies
            *self._drive(0, self._disk, "qcow2", f",discard=unmap,cache={'writeback' if spec.keep_disk else 'unsafe'}"),
            # IDE disks cannot be read-only: there the seed (a throwaway copy) is writable
            *self._drive(1, seed_disk, "raw", "" if self.disk_interface in ("ide", "sata") else ",readonly=on"),
            *(self._drive(2, self._bundle, "raw", ",readonly=on") if self._bundle else []),
            *(arg for n, disk in enumerate(spec.data_disks) for arg in self._drive(3 + n, disk, "raw", "")),
            "-netdev", net, "-device", f"{spec.net_device},netdev=net0",
            "-device", "virtio-rng-pci",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
        ]  # fmt: skip
        if self.boot is not None:
            direct = self.boot.without_initrd() if self.disk_interface == "nvme" else None
            if direct is not None:
                argv += ["-kernel", str(self.boot.kernel), "-append", f"{direct} {KERNEL_ARGS}"]
            else:
                argv += ["-kernel", str(self.boot.kernel), "-initrd", str(self.boot.initrd)]
                argv += ["-append", f"{self.boot.append} {KERNEL_ARGS}"]
        for extra in spec.qemu_args:
            argv.extend(extra)
        return argv

    def _drive(self, index: int, path: Path, fmt: str, options: str) -> list[str]:
        """QEMU arguments attaching disk `index` on the spec's interface: virtio, scsi and ide are
        `-drive if=` values; nvme, virtio-scsi and sata are devices (the controller with disk 0)."""
        interface = self.disk_interface
        drive = ["-drive", f"file={path},if=none,id=disk{index},format={fmt}{options}"]
        if interface == "nvme":
            serial = seed.SEED_SERIAL if index == 2 else f"kiln{index}"
            return [*drive, "-device", f"nvme,drive=disk{index},serial={serial}"]
        if interface == "virtio-scsi":
            controller = ["-device", "virtio-scsi-pci,id=scsi0"] if index == 0 else []
            return [*controller, *drive, "-device", f"scsi-hd,bus=scsi0.0,drive=disk{index}"]
        if interface == "sata":
            controller = ["-device", "ahci,id=ahci0"] if index == 0 else []
            return [*controller, *drive, "-device", f"ide-hd,bus=ahci0.{index},drive=disk{index}"]
        return ["-drive", f"file={path},if={interface},format={fmt}{options}"]

    def _prepare_disk(self) -> None:
        if self.spec.install is not None:
            qemu_install.make_disks(self.work_dir, self.spec.install, self.id)
            return
        if self._disk.exists():
            return  # a restart of a stopped machine keeps its disk
        base = self.spec.image.resolve()
        argv = ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", image_format(base)]
        argv += [str(self._disk)] + ([self.spec.disk_size] if self.spec.disk_size else [])
        command.run(argv, f"making the disk of machine {self.id}", hint="check disk_size and free space")

    def start(self) -> None:
        if self.is_running():
            return
        if not Path("/usr/bin", QEMU).exists() and not _which(QEMU):
            raise MachineError(f"{QEMU} is not installed", "apt-get install qemu-system-x86 qemu-utils")
        try:
            self._prepare_disk()
            if self.spec.install is None:
                self._write_seed()
            if self.spec.accelerator == "kvm" or (
                self.spec.accelerator == "auto" and self.spec.install is None and kvm_works(self.spec)
            ):
                accel, self.accelerator = KVM, "kvm"
            else:
                accel, self.accelerator = TCG, "tcg"
            self.resets, self._stall = 0, stall_seconds()
            if self.spec.install is not None and not self.spec.install.watch_stalls:
                self._stall = 0.0
            self._launch(self._argv(accel))
        except BaseException:
            self.kill()
            raise

    def _write_seed(self) -> None:
        if self.spec.kernel_boot:
            self.boot = kernelboot.boot_files(self.spec.image, image_format(self.spec.image))
        extras = seed.Extras(self.host_key, seed.SLIRP_DNS, EARLY_NETWORK)
        files = seed.seed_files(self.spec.metadata, self.id, extras)
        seed.write_seed_disk(files, self.work_dir / "seed.img")
        # on NVMe, where the agent finds it by serial number: the same files as a text bundle
        bundle, self._bundle = self.work_dir / "seed.kiln", None
        if self.disk_interface == "nvme" and seed.write_seed_bundle(files, bundle):
            self._bundle = bundle

    def _launch(self, argv: list[str]) -> None:
        self.qmp_path.unlink(missing_ok=True)
        self.console_log.unlink(missing_ok=True)  # QEMU starts it afresh
        self._console_begins()
        self._argv_launched, self._io = argv, (-1, time.monotonic(), 0.0)
        (self.work_dir / "qemu.cmdline").write_text(shlex.join(argv) + "\n")
        (self.work_dir / "qemu.log").unlink(missing_ok=True)
        self.proc = command.spawn(argv, "starting QEMU", self.work_dir / "qemu.log")
        self.record.add("processes", self.proc.pid)
        deadline = time.monotonic() + 10
        while not self.qmp_path.exists():
            if self.proc.poll() is not None:
                detail = (self.work_dir / "qemu.log").read_text(errors="replace").strip()
                self.kill()
                raise MachineError(
                    f"QEMU exited at start: {detail.splitlines()[-1] if detail else 'no message'}",
                    f"command line in {self.work_dir / 'qemu.cmdline'}",
                )
            if time.monotonic() > deadline:
                self.kill()
                raise MachineError("QEMU did not open its QMP socket in 10 s", "see qemu.log")
            time.sleep(0.02)

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def still_booting(self) -> bool:
        """As Machine.still_booting; besides, every few seconds until the guest says its sshd listens,
        looks at its disk operations, and resets a boot stuck for stall_seconds() (BOOT_RESETS times)."""
        if not self.is_running():
            return False
        ops, since, asked = self._io
        now = time.monotonic()
        if not self._stall or self.resets >= BOOT_RESETS or now - asked < 2.0 or self.announced_ssh():
            return True
        current = self._disk_operations()
        if current is not None and current != ops:
            self._io = (current, now, now)
        elif now - since < self._stall or wait_for_banner(self.ssh_host, self.ssh_port, 3.0):
            self._io = (ops, since, now)
        else:
            self._reset_stuck_boot(now - since)
            self._io = (ops, time.monotonic(), time.monotonic())
        return True

    def _disk_operations(self) -> int | None:
        """Reads, writes and flushes the guest has made on all its disks; None when QMP does not answer."""
        try:
            qmp = QMP(self.qmp_path, timeout=2)
            try:
                devices = qmp.execute("query-blockstats")
            finally:
                qmp.close()
            return sum(
                int(device["stats"].get(name, 0))
                for device in devices
                for name in ("rd_operations", "wr_operations", "flush_operations")
            )
        except (OSError, ConnectionError, MachineError, ValueError, KeyError, TypeError):
            return None

    def _reset_stuck_boot(self, idle: float) -> None:
        """Keep what QEMU shows of the stuck guest (state, registers of every CPU) and reset it; when QEMU
        itself no longer answers, end it and start it again on the same disk."""
        self.resets += 1
        report = [f"machine {self.id}: no disk activity for {idle:.0f} s and no SSH: reset {self.resets}"]
        how = "reset the VM"
        try:
            qmp = QMP(self.qmp_path, timeout=5)
            try:
                report.append(f"status: {qmp.execute('query-status')}")
                for command in ("info registers -a", "info block"):
                    report.append(
                        f"({command})\n{qmp.execute('human-monitor-command', **{'command-line': command})}"
                    )
                qmp.execute("system_reset")
            finally:
                qmp.close()
        except (OSError, ConnectionError, MachineError) as exc:
            how = "restarted QEMU, which no longer answered"
            report.append(f"QEMU did not answer QMP ({exc}): restarted it; its console until then:")
            report.append(self.console_log.read_text(errors="replace") if self.console_log.exists() else "")
            self.kill()
            self._launch(self._argv_launched)
        kept = self.keep_log(f"stall-{self.resets}.txt", "\n".join(report).encode() + b"\n")
        self.notes.append(
            f"the boot was stuck (no disk activity for {idle:.0f} s, no SSH): {how} "
            f"({self.resets} of {BOOT_RESETS}; QEMU's view of it is in {kept})"
        )

    def stop(self, graceful: bool = True, timeout: float = 60.0) -> None:
        if self.is_running() and graceful:
            # The power button is pressed again every few seconds: a guest still booting has nothing
            # listening to it yet (systemd-logind starts after sshd answers) and drops the first press.
            deadline = time.monotonic() + timeout
            with contextlib.suppress(OSError, ConnectionError, MachineError):
                qmp = QMP(self.qmp_path)
                try:
                    assert self.proc is not None
                    while time.monotonic() < deadline:
                        qmp.execute("system_powerdown")
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            self.proc.wait(min(POWER_BUTTON_INTERVAL, max(0.0, deadline - time.monotonic())))
                            break
                finally:
                    qmp.close()
        if self.is_running():
            with contextlib.suppress(OSError, ConnectionError, MachineError):
                qmp = QMP(self.qmp_path, timeout=2)
                try:
                    qmp.execute("quit")
                finally:
                    qmp.close()
        self.kill()

    def kill(self) -> None:
        if self.proc is not None:
            state.kill_process(self.proc.pid, None)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
            self.record.remove("processes", self.proc.pid)
        self.qmp_path.unlink(missing_ok=True)

    def snapshot(self, new_top: Path) -> Path:
        """Freeze the disk as it is now: QMP blockdev-snapshot-sync puts a new, empty qcow2 overlay
        (`new_top`, made by QEMU) over the current one, which QEMU flushes and never writes again.
        Returns the frozen file (consistent if the guest synced its file systems first)."""
        qmp = QMP(self.qmp_path, timeout=60)
        try:
            frozen = self._disk
            device = next(
                (
                    entry
                    for entry in qmp.execute("query-block")
                    if Path(entry.get("inserted", {}).get("file", "")) == frozen
                ),
                None,
            )
            if device is None:
                raise MachineError(f"machine {self.id}: QEMU does not show its disk {frozen}")
            target = (
                {"device": device["device"]}
                if device.get("device")
                else {"node-name": device["inserted"]["node-name"]}
            )
            qmp.execute(
                "blockdev-snapshot-sync", **target, **{"snapshot-file": str(new_top), "format": "qcow2"}
            )
        finally:
            qmp.close()
        self._disk = new_top
        return frozen

    def save_image(self, dest: Path, fmt: ImageFormat = "qcow2", compress: bool = False) -> Path:
        if self.is_running():
            raise MachineError(f"machine {self.id} is running", "stop it before saving its disk")
        if not self._disk.exists():
            raise MachineError(f"machine {self.id} has no disk yet", "start it first")
        return convert_image(self._disk, dest, fmt, compress)

    def save_running_image(self, dest: Path, fmt: ImageFormat = "qcow2") -> Path:
        """QEMU's drive-backup (sync=full): a point-in-time copy of the whole disk, backing chain
        flattened, taken while the guest runs on (writes during the copy go to the disk, not the copy).
        Crash-consistent, as the cloud's snapshots of a running disk are: what the guest still holds
        in its own page cache is not in it."""
        return self._backup(self._disk, dest, fmt)

    def save_running_data_disk(self, disk: Path, dest: Path) -> Path:
        """As save_running_image, for one of the data disks."""
        return self._backup(disk, dest, "raw")

    def _backup(self, disk: Path, dest: Path, fmt: ImageFormat) -> Path:
        if not self.is_running():
            raise MachineError(f"machine {self.id} is not running", "use save_image for a stopped machine")
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        qmp = QMP(self.qmp_path, timeout=10)
        try:
            device = next(
                (b["device"] or b["qdev"] for b in qmp.execute("query-block")
                 if b.get("inserted", {}).get("file") == str(disk)),
                None,
            )  # fmt: skip
            if device is None:
                raise MachineError(f"machine {self.id}: QEMU does not show its disk {disk}")
            qmp.execute(
                "drive-backup", **{"job-id": "kiln-save", "device": device, "target": str(partial),
                "sync": "full", "format": fmt, "auto-dismiss": False},
            )  # fmt: skip
            while True:
                job = next((j for j in qmp.execute("query-jobs") if j["id"] == "kiln-save"), None)
                if job is None or job["status"] == "concluded":
                    break
                time.sleep(0.05)
            qmp.execute("job-dismiss", id="kiln-save")
            if job is not None and job.get("error"):
                raise MachineError(f"machine {self.id}: copying the running disk failed: {job['error']}")
            os.replace(partial, dest)
            return dest
        finally:
            qmp.close()
            partial.unlink(missing_ok=True)


def convert_image(source: Path, dest: Path, fmt: ImageFormat, compress: bool = False) -> Path:
    """A standalone copy of `source` (backing chain flattened), written atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    argv = ["qemu-img", "convert", "-O", fmt]
    if compress and fmt == "qcow2":
        argv.append("-c")
    argv += [str(source), str(partial)]
    try:
        command.run(argv, f"saving the image to {dest}", hint="check free space")
    except MachineError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, dest)
    return dest


def _which(name: str) -> bool:
    import shutil

    return shutil.which(name) is not None


def kvm_works(spec: MachineSpec, timeout: float = 40.0) -> bool:
    """Whether a guest boots to SSH under KVM here; measured once, then cached per kernel and QEMU."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    version = command.run([QEMU, "--version"], "asking QEMU its version", check=False).stdout
    key = f"{os.uname().release} {version.splitlines()[0] if version else ''}"
    cache = paths.state_dir() / "kvm-probe.json"
    with contextlib.suppress(OSError, ValueError):
        verdict = json.loads(cache.read_text())
        if verdict.get("key") == key:
            return bool(verdict["works"])
    probe = VirtualMachine(
        MachineSpec(image=spec.image, name="kvmprobe", cpus=1, memory_mb=512, accelerator="kvm")
    )
    works = False
    try:
        probe.start()
        works = wait_for_banner(probe.ssh_host, probe.ssh_port, timeout, stop=lambda: not probe.is_running())
    except MachineError:
        works = False
    finally:
        probe.destroy()
    paths.private_dir(cache.parent)
    cache.write_text(json.dumps({"key": key, "works": works}))
    return works
