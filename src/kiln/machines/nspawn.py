"""The namespace runner: the same disk image booted by systemd-nspawn, no VM.

The image's root partition is attached read-only through an offset loop device (no partition
scanning needed), and an overlay file system puts the machine's writes in its own upper folder, so
the base image is shared and never changed. The machine gets its own network namespace; slirp4netns
gives it outbound network (10.0.2.100, DNS 10.0.2.3) and forwards the chosen loopback address and
port on the host to its sshd. A small shell loop restarts systemd-nspawn when the machine reboots
(nspawn exits with 133 then). `save_image` copies the base disk sparsely and syncs the overlay's
merged view onto the copy's root file system, giving a whole bootable disk again;
`save_running_image` does the same from the live merged view with the machine's processes stopped.

Needs root (loop devices, mounts, network namespaces); the VM runner does not.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from kiln.errors import MachineError
from kiln.machines import command, seed, state
from kiln.machines.qemu import convert_image, image_format
from kiln.machines.spec import ImageFormat, Machine, MachineSpec

REBOOT_EXIT = 133


def root_partition(image: Path) -> tuple[int, int]:
    """(offset, size) in bytes of the image's largest partition: the root file system of kiln images."""
    table = json.loads(
        command.output(["sfdisk", "--json", str(image)], f"reading the partition table of {image}")
    )
    parts = table.get("partitiontable", {}).get("partitions", [])
    if not parts:
        raise MachineError(f"image {image} has no partition", "use an image from `kiln baseimage build`")
    best = max(parts, key=lambda p: int(p["size"]))
    sector = int(table["partitiontable"].get("sectorsize", 512))
    return int(best["start"]) * sector, int(best["size"]) * sector


class NamespaceMachine(Machine):
    runner = "namespace"

    def __init__(self, spec: MachineSpec) -> None:
        if os.geteuid() != 0:
            raise MachineError(
                "the namespace runner needs root (loop devices, mounts, network namespaces)",
                "run kiln as root, or use the VM runner (runner='vm'), which does not need root",
            )
        for tool, package in (("systemd-nspawn", "systemd-container"), ("slirp4netns", "slirp4netns")):
            if shutil.which(tool) is None:
                raise MachineError(f"{tool} is not installed", f"apt-get install {package}")
        super().__init__(spec)
        keep = self.work_dir / "upper" if spec.keep_disk else None
        self.record = state.Record(self.id, self.runner, self.work_dir, keep)
        self.netns = f"kiln-{self.id}"[:60]
        self.upper = self.work_dir / "upper"
        self.lower_mnt = self.work_dir / "lower"
        self.merged = self.work_dir / "merged"
        self.proc: subprocess.Popen[bytes] | None = None
        self.slirp: subprocess.Popen[bytes] | None = None
        self._lower_file: Path | None = None

    @property
    def disk_path(self) -> Path:
        return self.upper

    # -- resources, each recorded before or right after it exists -----------------------------------
    def _lower(self) -> Path:
        """The raw disk under the overlay: the image itself when raw, else a private raw copy."""
        if self._lower_file is None:
            image = self.spec.image.resolve()
            if image_format(image) == "raw":
                self._lower_file = image
            else:
                self._lower_file = convert_image(image, self.work_dir / "lower.raw", "raw")
        return self._lower_file

    def _attach(self, disk: Path, readonly: bool) -> str:
        offset, size = root_partition(disk)
        argv = ["losetup", "-f", "--show", "-o", str(offset), "--sizelimit", str(size), str(disk)]
        device = command.output(argv[:1] + (["-r"] if readonly else []) + argv[1:], f"attaching {disk}")
        self.record.add("loops", device)
        return device

    def _attach_data(self, disk: Path) -> str:
        """A loop device of a whole data disk file, read-write (the machine's /dev/vdX)."""
        device = command.output(["losetup", "-f", "--show", str(disk)], f"attaching {disk}")
        self.record.add("loops", device)
        return device

    def _mount(self, target: Path, *args: str) -> None:
        target.mkdir(parents=True, exist_ok=True)
        self.record.add("mounts", str(target))
        command.run(["mount", *args, str(target)], f"mounting {target}")

    def _unmount(self, target: Path) -> None:
        state.unmount(str(target))
        self.record.remove("mounts", str(target))

    def _mount_root(self) -> None:
        if state.is_mounted(str(self.merged)):
            return
        loop = self._attach(self._lower(), readonly=True)
        self._mount(self.lower_mnt, "-o", "ro,noload", loop)
        for folder in (self.upper, self.work_dir / "ovl-work"):
            folder.mkdir(exist_ok=True)
        options = f"lowerdir={self.lower_mnt},upperdir={self.upper},workdir={self.work_dir / 'ovl-work'}"
        self._mount(self.merged, "-t", "overlay", "overlay", "-o", options)

    def _release_mounts(self) -> None:
        for target in (self.merged, self.work_dir / "view", self.work_dir / "save-root", self.lower_mnt):
            self._unmount(target)
        for device in list(self.record.data["loops"]):
            state.detach_loop(device)
            self.record.remove("loops", device)

    def _network(self) -> None:
        if Path("/run/netns", self.netns).exists():
            return
        self.record.add("netns", self.netns)
        command.run(["ip", "netns", "add", self.netns], "creating the network namespace")
        command.run(["ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up"], "bringing up lo")
        api = self.work_dir / "slirp.sock"
        api.unlink(missing_ok=True)
        argv = [
            "slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback",
            "--api-socket", str(api), "--netns-type=path", f"/run/netns/{self.netns}", "tap0",
        ]  # fmt: skip
        (self.work_dir / "slirp4netns.log").unlink(missing_ok=True)
        self.slirp = command.spawn(argv, "starting slirp4netns", self.work_dir / "slirp4netns.log")
        self.record.add("processes", self.slirp.pid)
        request = {
            "execute": "add_hostfwd",
            "arguments": {
                "proto": "tcp",
                "host_addr": self.ssh_host,
                "host_port": self.ssh_port,
                "guest_port": 22,
            },
        }
        with self._slirp_api(api) as sock:
            sock.sendall(json.dumps(request).encode())
            reply = json.loads(sock.recv(4096) or b"{}")
        if "error" in reply:
            raise MachineError(
                f"cannot forward {self.ssh_host}:{self.ssh_port}: {reply['error'].get('desc')}",
                "choose another ssh_port (or 0 for a free one)",
            )

    def _slirp_api(self, path: Path) -> socket.socket:
        """A connection to slirp4netns' API socket; the socket file exists a moment before it listens."""
        deadline = time.monotonic() + 5
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            try:
                sock.connect(str(path))
                return sock
            except OSError:
                sock.close()
                assert self.slirp is not None
                if self.slirp.poll() is not None or time.monotonic() > deadline:
                    raise MachineError(
                        "slirp4netns did not start", f"see {self.work_dir / 'slirp4netns.log'}"
                    ) from None
                time.sleep(0.01)

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        if self.is_running():
            return
        try:
            self._mount_root()
            files = seed.seed_files(self.spec.metadata, self.id, seed.Extras(self.host_key, seed.SLIRP_DNS))
            seed_dir = seed.write_seed_dir(files, self.work_dir / "seed")
            self._network()
            disks = [f"--bind={self._attach_data(disk)}:/dev/vd{chr(ord('b') + n)}"
                     for n, disk in enumerate(self.spec.data_disks)]  # fmt: skip
            nspawn = [
                "systemd-nspawn", "--quiet", "-D", str(self.merged), "-b", "-M", self.id[:64],
                "--register=no", "--keep-unit", f"--network-namespace-path=/run/netns/{self.netns}",
                "--capability=CAP_NET_ADMIN",
                "--console=read-only", "--resolv-conf=off", "--timezone=off", "--link-journal=no",
                f"--bind-ro={seed_dir}:/run/kiln/seed", *disks,
            ]  # fmt: skip
            loop = f'while :; do "$@"; rc=$?; [ $rc -eq {REBOOT_EXIT} ] || exit $rc; done'
            self._console_begins()
            argv = ["sh", "-c", loop, "kiln-machine", *nspawn]
            self.proc = command.spawn(argv, "starting the container", self.console_log)
            self.record.add("processes", self.proc.pid)
        except BaseException:
            self.kill()
            raise

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _nspawn_pid(self) -> int | None:
        return self._child_of(self.proc.pid) if self.proc is not None else None

    def stop(self, graceful: bool = True, timeout: float = 60.0) -> None:
        if graceful and self.is_running() and self.proc is not None:
            # nspawn turns SIGTERM into an orderly shutdown of the machine's systemd
            deadline = time.monotonic() + timeout
            while self.is_running() and time.monotonic() < deadline:
                pid = self._nspawn_pid()
                if pid is not None:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(min(5.0, max(0.1, deadline - time.monotonic())))
        self.kill()

    def kill(self) -> None:
        for proc in (self.proc, self.slirp):
            if proc is not None:
                state.kill_process(proc.pid, None)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
                self.record.remove("processes", proc.pid)
        self.proc = self.slirp = None
        state.delete_netns(self.netns)
        self.record.remove("netns", self.netns)
        self._release_mounts()

    def save_image(self, dest: Path, fmt: ImageFormat = "qcow2", compress: bool = False) -> Path:
        if self.is_running():
            raise MachineError(f"machine {self.id} is running", "stop it before saving its disk")
        if not self.upper.is_dir():
            raise MachineError(f"machine {self.id} has no disk yet", "start it first")
        try:
            self._mount(self.lower_mnt, "-o", "ro,noload", self._attach(self._lower(), readonly=True))
            view = self.work_dir / "view"
            self._mount(view, "-t", "overlay", "overlay", "-o", f"ro,lowerdir={self.upper}:{self.lower_mnt}")
            return self._image_of(view, dest, fmt, compress)
        finally:
            self._release_mounts()

    def save_running_image(self, dest: Path, fmt: ImageFormat = "qcow2") -> Path:
        """The machine's processes are stopped (SIGSTOP) while its merged view is copied: the copy
        holds everything written before the call, page cache included (one kernel), and no file
        changes under the copy. They go on (SIGCONT) as soon as the files are copied."""
        if not self.is_running() or not state.is_mounted(str(self.merged)):
            raise MachineError(f"machine {self.id} is not running", "use save_image for a stopped machine")
        return self._image_of(self.merged, dest, fmt, False, frozen=True)

    def _image_of(
        self, tree: Path, dest: Path, fmt: ImageFormat, compress: bool, frozen: bool = False
    ) -> Path:
        """A whole disk: the base disk copied sparsely, its root file system made a copy of `tree`."""
        copy = self.work_dir / f"save-{os.getpid()}-{time.monotonic_ns()}.raw"
        loop = ""
        try:
            command.run(["cp", "--sparse=always", str(self._lower()), str(copy)], "copying the base disk")
            loop = self._attach(copy, readonly=False)
            self._mount(self.save_root, "-o", "rw", loop)
            stopped = self._freeze() if frozen else []
            try:
                command.run(
                    ["rsync", "-aHAX", "--numeric-ids", "--delete", f"{tree}/", f"{self.save_root}/"],
                    "copying the machine's files into the image",
                )
            finally:
                self._thaw(stopped)
            self._unmount(self.save_root)
            if fmt == "raw" and not compress:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(copy, dest)
                return dest
            return convert_image(copy, dest, fmt, compress)
        finally:
            self._unmount(self.save_root)
            if loop:
                state.detach_loop(loop)
                self.record.remove("loops", loop)
            copy.unlink(missing_ok=True)

    def save_running_data_disk(self, disk: Path, dest: Path) -> Path:
        """The machine's processes stopped, every file system written out (sync: the host kernel
        holds the data disk's caches too), the disk's file copied, the processes go on."""
        if not self.is_running():
            raise MachineError(f"machine {self.id} is not running", "copy the disk's file instead")
        partial = dest.with_name(dest.name + ".partial")
        stopped = self._freeze()
        try:
            os.sync()
            command.run(["cp", "--sparse=always", str(disk), str(partial)], f"copying the data disk {disk}")
        finally:
            self._thaw(stopped)
        os.replace(partial, dest)
        return dest

    def _container_pids(self) -> set[int]:
        """The processes in the machine's PID namespace (its init and everything under it)."""
        init = self._nspawn_pid()
        init = self._child_of(init) if init is not None else None
        if init is None:
            return set()
        try:
            namespace = os.readlink(f"/proc/{init}/ns/pid")
        except OSError:
            return set()
        found = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(entry / "ns" / "pid") == namespace:
                        found.add(int(entry.name))
        return found

    @staticmethod
    def _child_of(pid: int) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            return int(children[0]) if children else None
        return None

    def _freeze(self) -> list[int]:
        """SIGSTOP every process of the machine, again until no new one appears (a fork in flight)."""
        stopped: set[int] = set()
        for _ in range(20):
            fresh = self._container_pids() - stopped
            if not fresh:
                break
            for pid in fresh:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGSTOP)
            stopped |= fresh
        return sorted(stopped)

    @staticmethod
    def _thaw(pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)

    @property
    def save_root(self) -> Path:
        return self.work_dir / "save-root"
