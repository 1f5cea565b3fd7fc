"""boot_command typed through QMP into a real guest: the base image's kernel with a busybox initramfs
whose init puts the first virtual console in raw mode and copies every byte the keyboard gives it to
the serial console. What the guest read must be exactly what the boot command says: every printable
character (shifted ones included), the special keys' escape sequences, Ctrl and Alt chords: nothing
dropped, doubled or reordered. Ctrl-C (the cancel token) stops the typing at once."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.builders.qemu.bootcommand import Intervals, parse, type_actions
from kiln.core.cancel import CancelToken
from kiln.errors import CancelledError
from kiln.machines.kernelboot import boot_files
from kiln.machines.qemu import QMP

pytestmark = [pytest.mark.machine, pytest.mark.slow]

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


def initramfs(folder: Path) -> Path:
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.fail("busybox is not installed (./dev setup installs busybox-static)")
    root = folder / "root"
    for sub in ("bin", "dev", "proc"):
        (root / sub).mkdir(parents=True)
    shutil.copy(busybox, root / "bin" / "busybox")
    (root / "init").write_text(INIT)
    (root / "init").chmod(0o755)
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    archive = folder / "init.cpio"
    with open(archive, "wb") as out:
        subprocess.run([busybox, "cpio", "-o", "-H", "newc"], input="\n".join(names).encode(), cwd=root, stdout=out, stderr=subprocess.DEVNULL, check=True)  # fmt: skip
    return archive


class Guest:
    def __init__(self, kernel: Path, initrd: Path, folder: Path) -> None:
        self.log, sock = folder / "serial.log", folder / "qmp.sock"
        self.proc = subprocess.Popen(
            ["qemu-system-x86_64", "-machine", "pc", "-accel", "tcg", "-m", "256", "-nodefaults",
             "-display", "none", "-no-user-config", "-kernel", str(kernel), "-initrd", str(initrd),
             "-append", "console=ttyS0 quiet loglevel=0", "-serial", f"file:{self.log}",
             "-qmp", f"unix:{sock},server=on,wait=off"],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 180
        while READY not in (self.log.read_bytes() if self.log.exists() else b""):
            assert self.proc.poll() is None and time.monotonic() < deadline, "the guest did not start"
            time.sleep(0.1)
        self.qmp = QMP(sock)

    def typed(self, expected: int) -> bytes:
        """What the guest has read from its keyboard, once `expected` bytes are there (or 10 s)."""
        deadline = time.monotonic() + 10
        while True:
            got = self.log.read_bytes().split(READY, 1)[1]
            if len(got) >= expected or time.monotonic() > deadline:
                time.sleep(0.5)  # and nothing more (doubled keys) comes after
                return self.log.read_bytes().split(READY, 1)[1]
            time.sleep(0.1)

    def close(self) -> None:
        self.qmp.close()
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def guest(base_image: Path, tmp_path: Path) -> Iterator[Guest]:
    boot = boot_files(base_image, "raw")
    assert boot is not None
    machine = Guest(boot.kernel, initramfs(tmp_path), tmp_path)
    try:
        yield machine
    finally:
        machine.close()


TEXT = "".join(chr(c) for c in range(33, 127)) + " The quick brown fox<enter>"
SPECIALS = (
    "<tab><bs><esc><up><down><left><right><home><end><pageUp><pageDown><insert><del><f1><f5><f12>"
    "<spacebar><leftCtrlOn>c<leftCtrlOff><leftAltOn>x<leftAltOff><leftShiftOn>ab<leftShiftOff><return>"
)
#: what the Linux console sends for them (raw mode, US keymap)
SPECIALS_READ = b"\t\x7f\x1b\x1b[A\x1b[B\x1b[D\x1b[C\x1b[1~\x1b[4~\x1b[5~\x1b[6~\x1b[2~\x1b[3~\x1b[[A\x1b[[E\x1b[24~ \x03\x1bxAB\r"


def test_every_key_arrives_once_and_in_order(guest: Guest) -> None:
    lines = [TEXT] * 3 + [SPECIALS]
    expected = TEXT.replace("<enter>", "\r").encode() * 3 + SPECIALS_READ
    steps = parse(lines)
    # 20 ms between key events: measured exact here under TCG on a busy machine (5 ms drops keys)
    type_actions(guest.qmp, steps, Intervals(0.02), CancelToken(), logging.getLogger("kiln.test"))
    got = guest.typed(len(expected))
    assert got == expected


def test_cancel_stops_typing_at_once(guest: Guest) -> None:
    cancel = CancelToken()
    steps = parse(["abc<wait10>def"])
    timer = threading.Timer(1.0, cancel.cancel)
    timer.start()
    started = time.monotonic()
    with pytest.raises(CancelledError):
        type_actions(guest.qmp, steps, Intervals(0.02), cancel, logging.getLogger("kiln.test"))
    assert time.monotonic() - started < 3
    assert guest.typed(3) == b"abc"  # nothing after the wait was typed


def test_kiln_types_what_packer_types(base_image: Path, guest: Guest, tmp_path: Path) -> None:
    """The reference: Debian's Packer 1.6.6 types the same boot_command over VNC into the same guest
    (booted by its qemu builder through qemuargs); what that guest read is what kiln's guest reads."""
    import json
    import os

    if shutil.which("packer") is None:
        pytest.fail("packer is not installed (./dev setup installs it)")
    boot = boot_files(base_image, "raw")
    assert boot is not None
    folder = tmp_path / "packer"
    folder.mkdir()
    (folder / "http").mkdir()
    subprocess.run(["xorriso", "-no_rc", "-outdev", str(folder / "empty.iso"), "-map", str(folder / "http"), "/x"], check=True, capture_output=True)  # fmt: skip
    command = ["Ab~ http://{{ .HTTPIP }}:{{ .HTTPPort }}/<wait1s><enter><leftCtrlOn>c<leftCtrlOff><f1><tab>"]
    serial = folder / "serial.log"
    template = {
        "builders": [{
            "type": "qemu", "iso_url": "empty.iso", "iso_checksum": "none", "accelerator": "tcg",
            "headless": True, "vnc_bind_address": "127.0.0.1", "http_directory": "http",
            "http_bind_address": "127.0.0.1", "communicator": "none", "disk_size": "64M", "memory": 256,
            "boot_wait": "15s", "output_directory": "out", "shutdown_timeout": "1s",
            "qemuargs": [["-kernel", str(boot.kernel)], ["-initrd", str(initramfs(folder))],
                         ["-append", "console=ttyS0 quiet loglevel=0"], ["-serial", f"file:{serial}"]],
            "boot_command": command,
        }]
    }  # fmt: skip
    (folder / "t.json").write_text(json.dumps(template))
    done = subprocess.run(["packer", "build", "-color=false", "t.json"], cwd=folder, capture_output=True, text=True, timeout=600, env={**os.environ, "CHECKPOINT_DISABLE": "1"})  # fmt: skip
    assert "Typing the boot command over VNC..." in done.stdout, done.stdout + done.stderr
    port = re.search(r"Starting HTTP server on port (\d+)", done.stdout).group(1)  # type: ignore[union-attr]
    packer_read = serial.read_bytes().split(READY, 1)[1]
    assert packer_read == f"Ab~ http://10.0.2.2:{port}/".encode() + b"\r\x03\x1b[[A\t"

    rendered = [command[0].replace("{{ .HTTPIP }}", "10.0.2.2").replace("{{ .HTTPPort }}", port)]
    type_actions(
        guest.qmp, parse(rendered), Intervals.resolve(0, 0), CancelToken(), logging.getLogger("kiln.test")
    )
    assert guest.typed(len(packer_read)) == packer_read
