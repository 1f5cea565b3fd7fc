"""The qemu builder from an installer ISO, end to end (examples/qemu/iso with kiln's Debian installer
ISO): the GRUB menu waits through boot_wait until the typed boot command adds url= to the kernel
command line, the live system fetches the answer file from http_directory, installs Debian onto the
blank disk and reboots from it; SSH answers with the password the answer file set, the shell
provisioner leaves a mark, the machine powers off, and the disk is saved. Then the saved disk boots
alone (kiln's VM runner, no CD, its own GRUB) and holds the mark. And a build interrupted during the
install leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiln.machines import MachineSpec
from kiln.machines.qemu import VirtualMachine
from tests.machines.conftest import ISO_ROOT_PASSWORD, IsoBuild, iso_template, ssh_password

pytestmark = [pytest.mark.machine, pytest.mark.slow]

MARK = "/etc/kiln-iso-build"


@pytest.mark.timeout(2700)
def test_iso_build_installs_reboots_provisions_and_the_disk_boots_alone(iso_build: IsoBuild) -> None:
    out = iso_build.stdout
    assert iso_build.returncode == 0, out[-4000:] + iso_build.stderr[-4000:]
    # the menu waited 10 s (boot_wait) for the typed command, which the server then answered
    assert "Waiting 10s for boot..." in out and "Typing the boot command..." in out
    assert re.search(r'http: .*"GET /install\.sh HTTP/1\.1" 200', iso_build.debug_log), iso_build.debug_log[
        -3000:
    ]
    # SSH with the answer file's password: the live system has none, so this is the installed system
    assert "Connected to SSH!" in out
    assert "built by qemu from the installer ISO" in out
    assert "Gracefully halting virtual machine..." in out and "Converting hard drive..." in out
    info = subprocess.run(["qemu-img", "info", str(iso_build.image)], capture_output=True, text=True).stdout
    assert "file format: qcow2" in info and "backing file" not in info
    assert not list((iso_build.folder / "state" / "machines").glob("*/machine.json"))

    spec = MachineSpec(image=iso_build.image, name="isoagain", kernel_boot=False, memory_mb=1024)
    with VirtualMachine(spec) as machine:
        machine.start()
        machine.wait_for_ssh(timeout=600)
        assert "-drive" in machine._argv_launched and not any(
            "media=cdrom" in a for a in machine._argv_launched
        )
        mark = ssh_password(
            machine.ssh_host, machine.ssh_port, ISO_ROOT_PASSWORD, f"cat {MARK}; findmnt -no SOURCE /"
        )
        assert mark.splitlines()[0] == "built by qemu from the installer ISO"
        assert mark.splitlines()[1] == "/dev/vda1"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _qemu_processes(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"qemu-system" in cmdline and marker.encode() in cmdline:
                found.append(int(entry.name))
    return found


@pytest.mark.timeout(900)
def test_a_build_interrupted_during_the_install_leaves_nothing(installer_iso: Path, tmp_path: Path) -> None:
    template = iso_template(tmp_path, installer_iso, boot_wait="1s")
    state = tmp_path / "state"
    env = {**os.environ, "KILN_STATE_DIR": str(state)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiln", "build", template.name], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        installing = False
        while time.monotonic() < deadline and proc.poll() is None and not installing:
            time.sleep(1)
            installing = any(
                "install.sh: installing Debian" in log.read_text(errors="replace")
                for log in state.glob("machines/*/console.log")
            )
        assert installing, "the install never started"
        assert _qemu_processes(str(state)), "no QEMU runs the install"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    assert "Cleanly cancelled builds after being interrupted." in out, out[-3000:]
    port = int(re.search(r"Starting HTTP server on port (\d+)", out).group(1))  # type: ignore[union-attr]
    assert not _port_open(port)
    assert not _qemu_processes(str(state))
    assert not (tmp_path / "output-debian").exists()
    assert not list(state.glob("machines/*"))  # the blank disk went with the machine's folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["debian.json", "http", "state"]
