"""A guest that echoes its keyboard, for boot_command tests and bench/boottyping: the base image's
kernel with a busybox initramfs whose init puts the first virtual console in raw mode and copies
every byte it reads to the serial console (a file). Booted by kiln (`Guest`, QMP on a socket) or by
Packer 1.6.6's qemu builder through qemuargs (`packer_types`), which types over VNC."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kiln.machines.qemu import QMP

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t devtmpfs dev /dev
mount -t proc proc /proc
exec 3</dev/tty1 4>/dev/ttyS0
stty raw -echo -icrnl <&3
stty raw -echo <&4
until grep -q "AT Translated" /proc/bus/input/devices; do sleep 0.1; done
printf 'KEYS-READY\\n' >&4
exec cat <&3 >&4
"""
READY = b"KEYS-READY\n"
APPEND = "console=ttyS0 quiet loglevel=0"


def initramfs(folder: Path) -> Path:
    busybox = shutil.which("busybox")
    if busybox is None:
        raise RuntimeError("busybox is not installed (./dev setup installs busybox-static)")
    root = folder / "root"
    for sub in ("bin", "dev", "proc"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(busybox, root / "bin" / "busybox")
    (root / "init").write_text(INIT)
    (root / "init").chmod(0o755)
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    archive = folder / "init.cpio"
    with open(archive, "wb") as out:
        subprocess.run([busybox, "cpio", "-o", "-H", "newc"], input="\n".join(names).encode(), cwd=root, stdout=out, stderr=subprocess.DEVNULL, check=True)  # fmt: skip
    return archive


def read_back(log: Path) -> bytes:
    data = log.read_bytes() if log.exists() else b""
    return data.split(READY, 1)[1] if READY in data else b""


class Guest:
    def __init__(self, kernel: Path, folder: Path) -> None:
        self.log, sock = folder / "serial.log", folder / "qmp.sock"
        self.proc = subprocess.Popen(
            ["qemu-system-x86_64", "-machine", "pc", "-accel", "tcg", "-m", "256", "-nodefaults",
             "-display", "none", "-no-user-config", "-kernel", str(kernel), "-initrd", str(initramfs(folder)),
             "-append", APPEND, "-serial", f"file:{self.log}", "-qmp", f"unix:{sock},server=on,wait=off"],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 180
        while READY not in (self.log.read_bytes() if self.log.exists() else b""):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("the echoing guest did not start")
            time.sleep(0.1)
        self.qmp = QMP(sock)

    def typed(self, expected: int) -> bytes:
        """What the guest has read from its keyboard, once `expected` bytes are there (or 10 s)."""
        deadline = time.monotonic() + 10
        while len(read_back(self.log)) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # and nothing more (doubled keys) comes after
        return read_back(self.log)

    def close(self) -> None:
        if getattr(self, "qmp", None) is not None:
            self.qmp.close()
        self.proc.kill()
        self.proc.wait()


@dataclass
class PackerTyped:
    read: bytes  #: what the guest read
    http_port: str
    seconds: float  #: from "Typing the boot command over VNC..." to the next step (whole seconds of its log)


def packer_types(kernel: Path, command: list[str], folder: Path) -> PackerTyped:
    """Run `packer build` (Debian's 1.6.6) of a qemu template that boots the echoing guest and types
    `command` over VNC; communicator none, so the build ends after the typing."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "http").mkdir(exist_ok=True)
    subprocess.run(["xorriso", "-no_rc", "-outdev", str(folder / "empty.iso"), "-map", str(folder / "http"), "/x"], check=True, capture_output=True)  # fmt: skip
    serial = folder / "serial.log"
    template = {
        "builders": [{
            "type": "qemu", "iso_url": "empty.iso", "iso_checksum": "none", "accelerator": "tcg",
            "headless": True, "vnc_bind_address": "127.0.0.1", "http_directory": "http",
            "http_bind_address": "127.0.0.1", "communicator": "none", "disk_size": "64M", "memory": 256,
            "boot_wait": "15s", "output_directory": "out", "shutdown_timeout": "1s",
            "qemuargs": [["-kernel", str(kernel)], ["-initrd", str(initramfs(folder))],
                         ["-append", APPEND], ["-serial", f"file:{serial}"]],
            "boot_command": command,
        }]
    }  # fmt: skip
    (folder / "t.json").write_text(json.dumps(template))
    env = {
        **os.environ,
        "CHECKPOINT_DISABLE": "1",
        "PACKER_LOG": "1",
        "PACKER_LOG_PATH": str(folder / "packer.log"),
    }
    done = subprocess.run(["packer", "build", "-color=false", "t.json"], cwd=folder, capture_output=True, text=True, timeout=900, env=env)  # fmt: skip
    if "Typing the boot command over VNC..." not in done.stdout:
        raise RuntimeError(f"packer did not type: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    port = re.search(r"Starting HTTP server on port (\d+)", done.stdout)
    ui_lines = [line for line in (folder / "packer.log").read_text().splitlines() if " ui: " in line]
    typing = next(i for i, line in enumerate(ui_lines) if "Typing the boot command" in line)

    def stamp(line: str) -> float:
        return time.mktime(time.strptime(line[:19], "%Y/%m/%d %H:%M:%S"))

    seconds = stamp(ui_lines[typing + 1]) - stamp(ui_lines[typing]) if typing + 1 < len(ui_lines) else -1.0
    return PackerTyped(read_back(serial), port.group(1) if port else "", seconds)
