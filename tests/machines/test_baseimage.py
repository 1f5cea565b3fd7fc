"""The Debian base image: built once per session, cached by recipe, shaped as promised."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.machine, pytest.mark.slow]

OFFSET = 1048576  # the root partition starts at sector 2048


def inside(image: Path, path: str) -> str:
    """A file of the image's root file system, read without mounting it."""
    done = subprocess.run(
        ["debugfs", "-R", f"cat {path}", f"{image}?offset={OFFSET}"], capture_output=True, text=True
    )
    return done.stdout


def test_second_call_is_cached_and_fast(base_image: Path) -> None:
    from kiln.machines.baseimage import build_base_image

    began = time.monotonic()
    again = build_base_image("debian-12", "raw", progress=None)
    assert time.monotonic() - began < 1.0
    assert again == base_image


def test_disk_layout_and_first_boot_hygiene(base_image: Path) -> None:
    table = subprocess.run(["sfdisk", "--dump", str(base_image)], capture_output=True, text=True).stdout
    assert "label: dos" in table and "start=        2048" in table and "bootable" in table
    with open(base_image, "rb") as disk:
        mbr = disk.read(512)
    assert mbr[510:512] == b"\x55\xaa" and b"GRUB" in mbr
    fsck = subprocess.run(["e2fsck", "-fn", f"{base_image}?offset={OFFSET}"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert inside(base_image, "/etc/machine-id") == ""
    listing = subprocess.run(
        ["debugfs", "-R", "ls /etc/ssh", f"{base_image}?offset={OFFSET}"], capture_output=True, text=True
    ).stdout
    assert "sshd_config" in listing and "ssh_host_" not in listing
    sources = inside(base_image, "/etc/apt/sources.list")
    assert "http://deb.debian.org/debian bookworm main" in sources
    assert "http://deb.debian.org/debian bookworm-updates main" in sources
    assert "http://deb.debian.org/debian-security bookworm-security main" in sources
    assert "console=ttyS0" in inside(base_image, "/boot/grub/grub.cfg")


def test_cli_writes_qcow2_to_output(base_image: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "kiln", "baseimage", "build", "debian-12", "--output", str(out)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    image = out / "debian-12.qcow2"
    assert done.stdout.strip() == str(image)
    info = subprocess.run(["qemu-img", "info", str(image)], capture_output=True, text=True).stdout
    assert "file format: qcow2" in info and "backing file" not in info
    assert "==> baseimage:" in done.stderr


def test_cli_unknown_image_is_one_line_error(cache_root: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kiln", "baseimage", "build", "windows-11"], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.startswith("Error: unknown base image 'windows-11'") and "Traceback" not in done.stderr


def test_kernel_boot_files_read_out_of_the_image(base_image: Path, tmp_path: Path) -> None:
    from kiln.machines.kernelboot import boot_files

    found = boot_files(base_image, "raw")
    assert found is not None
    assert found.kernel.read_bytes()[0x202:0x206] == b"HdrS"  # the Linux x86 boot protocol's magic
    assert found.initrd.stat().st_size > 1 << 20
    assert "root=LABEL=root" in found.append and "console=ttyS0" in found.append
    # Debian's cloud kernel has NVMe and ext4 built in: from an NVMe disk it boots without the initrd,
    # the root named by the partition's PARTUUID (MBR signature, partition 1)
    with open(base_image, "rb") as handle:
        handle.seek(440)
        signature = int.from_bytes(handle.read(4), "little")
    assert found.nvme_root == f"{signature:08x}-01"
    direct = found.without_initrd()
    assert direct is not None and direct.startswith(f"root=PARTUUID={signature:08x}-01 rootwait ")
    assert "root=LABEL" not in direct and "console=ttyS0" in direct
    assert boot_files(base_image, "raw") == found  # cached: same files
    blank = tmp_path / "blank.raw"
    blank.write_bytes(bytes(1 << 20))
    assert boot_files(blank, "raw") is None  # no partition table: the runner boots through the disk
