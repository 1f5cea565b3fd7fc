"""boot_command typed through QMP into a real guest: the base image's kernel with a busybox initramfs
whose init puts the first virtual console in raw mode and copies every byte the keyboard gives it to
the serial console. What the guest read must be exactly what the boot command says: every printable
character (shifted ones included), the special keys' escape sequences, Ctrl and Alt chords: nothing
dropped, doubled or reordered. Ctrl-C (the cancel token) stops the typing at once."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.builders.qemu.bootcommand import Intervals, parse, type_actions
from kiln.core.cancel import CancelToken
from kiln.errors import CancelledError
from kiln.machines.kernelboot import boot_files
from tests.machines.echoguest import Guest, packer_types

pytestmark = [pytest.mark.machine, pytest.mark.slow]


@pytest.fixture
def guest(base_image: Path, tmp_path: Path) -> Iterator[Guest]:
    boot = boot_files(base_image, "raw")
    assert boot is not None
    machine = Guest(boot.kernel, tmp_path)
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
    if shutil.which("packer") is None:
        pytest.fail("packer is not installed (./dev setup installs it)")
    boot = boot_files(base_image, "raw")
    assert boot is not None
    command = ["Ab~ http://{{ .HTTPIP }}:{{ .HTTPPort }}/<wait1s><enter><leftCtrlOn>c<leftCtrlOff><f1><tab>"]
    packer = packer_types(boot.kernel, command, tmp_path / "packer")
    port = packer.http_port
    packer_read = packer.read
    assert packer_read == f"Ab~ http://10.0.2.2:{port}/".encode() + b"\r\x03\x1b[[A\t"

    rendered = [command[0].replace("{{ .HTTPIP }}", "10.0.2.2").replace("{{ .HTTPPort }}", port)]
    type_actions(
        guest.qmp, parse(rendered), Intervals.resolve(0, 0), CancelToken(), logging.getLogger("kiln.test")
    )
    assert guest.typed(len(packer_read)) == packer_read
