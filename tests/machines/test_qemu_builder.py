"""The qemu builder and the VM runner end to end: a template with only `ssh_username = root` builds an
image from the kiln base image in a QEMU VM (temporary key through the NoCloud seed), installs and
enables redis, saves the disk; the output boots again, under QEMU (direct kernel boot and its own GRUB) and as a namespace machine, and
redis answers. (One test for both: every VM boot costs minutes under TCG emulation.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiln.machines import MachineSpec, Metadata, create_machine
from tests.machines.conftest import BOOTED_PING, ssh_ok

pytestmark = [pytest.mark.machine, pytest.mark.slow]


def kiln(*args: str, cwd: Path, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kiln", *args], cwd=cwd, capture_output=True, text=True,
        env=os.environ.copy(), timeout=timeout,
    )  # fmt: skip


@pytest.mark.timeout(2400)
def test_qemu_build_redis_image_and_boot_it(base_image: Path, tmp_path: Path, ssh_key: Path) -> None:
    template = {
        "builders": [
            {
                "type": "qemu",
                "disk_image": True,
                "iso_url": base_image.as_uri(),
                "iso_checksum": "none",
                "output_directory": "out",
                "vm_name": "redis.qcow2",
                "format": "qcow2",
                "disk_size": "5G",
                "memory": 1024,
                "cpus": 2,
                "boot_wait": "1s",
                "ssh_username": "root",
                "ssh_timeout": "15m",
                "ssh_temporary_key_pair_type": "ed25519",
                "shutdown_command": "systemctl poweroff",
            }
        ],
        "provisioners": [
            {
                "type": "shell",
                "inline": [
                    "apt-get update -q",
                    "DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server",
                    "systemctl enable --now redis-server",
                    "redis-cli ping",
                ],
                "cache": False,  # apt-get update against a moving mirror: always run (an uncached build)
            }
        ],
    }
    (tmp_path / "redis.json").write_text(json.dumps(template))
    done = kiln("build", "redis.json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "PONG" in done.stdout
    assert "Connected to SSH!" in done.stdout
    image = tmp_path / "out" / "redis.qcow2"
    info = subprocess.run(["qemu-img", "info", str(image)], capture_output=True, text=True).stdout
    assert "file format: qcow2" in info and "backing file" not in info
    assert not list((Path(os.environ["KILN_STATE_DIR"]) / "machines").glob("*/machine.json"))

    # the output boots again with the VM runner: a key and hostname from metadata, the root grown to
    # the 5G disk, redis enabled; then (as root) the same file with the namespace runner
    pub = ssh_key.with_suffix(".pub").read_text()
    metadata = Metadata(ssh_authorized_keys=(pub,), hostname="redis-again")
    spec = MachineSpec(image=image, name="redisvm", ssh_host="127.0.0.9", metadata=metadata)
    with create_machine(spec, "vm") as machine:
        machine.start()
        machine.wait_for_ssh(900)
        host, port = machine.ssh_host, machine.ssh_port
        assert ssh_ok(host, port, ssh_key, "hostname").strip() == "redis-again"
        assert int(ssh_ok(host, port, ssh_key, "df --output=size -B1M / | tail -1")) > 4500
        assert ssh_ok(host, port, ssh_key, BOOTED_PING).strip() == "PONG"
        # the agent's early address (from the seed, before any DHCP) and networkd's lease side by side
        # on eth0, and a boot that finished with no failed unit
        addresses = ssh_ok(host, port, ssh_key, "ip -4 -o addr show dev eth0")
        assert "10.0.2.15 peer 10.0.2.2/32" in addresses and "10.0.2.15/24" in addresses, addresses
        assert ssh_ok(host, port, ssh_key, "systemctl --failed --no-legend").strip() == ""
        # on NVMe the agent read the seed's text bundle (found by serial number), not the CIDATA disk
        agent_log = ssh_ok(host, port, ssh_key, "journalctl -b -u kiln-agent -o cat")
        assert "seed: kiln bundle on /dev/nvme" in agent_log, agent_log
        machine.stop(graceful=True, timeout=120)
        assert not machine.is_running()
        assert machine.console_log.stat().st_size > 0  # the serial console was captured
        assert "-kernel" in (machine.work_dir / "qemu.cmdline").read_text()
    # the image's own GRUB still boots it (what a cloud import relies on), without -kernel
    spec = MachineSpec(image=image, name="redisgrub", metadata=metadata, kernel_boot=False)
    with create_machine(spec, "vm") as machine:
        machine.start()
        assert "-kernel" not in (machine.work_dir / "qemu.cmdline").read_text()
        machine.wait_for_ssh(900)
        host, port = machine.ssh_host, machine.ssh_port
        assert ssh_ok(host, port, ssh_key, BOOTED_PING).strip() == "PONG"
        # GRUB's command line mounts the root read-only: the agent made it writable after fsck
        assert "rw" in ssh_ok(host, port, ssh_key, "findmnt -no OPTIONS /").split(",")
        # a virtio disk has no serial number: the agent found the seed by its label
        agent_log = ssh_ok(host, port, ssh_key, "journalctl -b -u kiln-agent -o cat")
        assert "seed: CIDATA disk /dev/vd" in agent_log, agent_log
        assert ssh_ok(host, port, ssh_key, "systemctl --failed --no-legend").strip() == ""
    if os.geteuid() == 0:
        spec = MachineSpec(image=image, name="redisns", metadata=Metadata(ssh_authorized_keys=(pub,)))
        with create_machine(spec, "namespace") as light:
            light.start()
            light.wait_for_ssh(60)
            assert ssh_ok(light.ssh_host, light.ssh_port, ssh_key, BOOTED_PING).strip() == "PONG"


def test_a_build_whose_vm_never_boots_resets_it_and_keeps_its_console(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk with nothing to boot: the firmware waits with no disk activity. The build says each reset
    of the stuck boot, fails on ssh_timeout, names the kept console log, and leaves no machine."""
    image = tmp_path / "blank.raw"
    image.write_bytes(b"\0" * (1 << 20))
    template = {
        "builders": [
            {
                "type": "qemu",
                "disk_image": True,
                "iso_url": str(image),
                "iso_checksum": "none",
                "output_directory": "out",
                "ssh_username": "root",
                "ssh_timeout": "35s",
                "boot_wait": "500ms",
            }
        ]
    }
    (tmp_path / "blank.json").write_text(json.dumps(template))
    monkeypatch.setenv("KILN_BOOT_STALL_SECONDS", "3")
    done = kiln("build", "blank.json", cwd=tmp_path, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Waiting 500ms for boot..." in output  # as Go prints a duration
    assert "Timeout waiting for SSH" in output
    assert output.count("The VM runner: the boot was stuck (no disk activity for") == 2, output
    state = Path(os.environ["KILN_STATE_DIR"])
    kept = sorted((state / "logs").glob("*.console.log"))
    assert len(kept) == 1 and f"The VM's console log is kept in {kept[0]}" in output
    assert len(list((state / "logs").glob("*.stall-*.txt"))) == 2
    assert not list((state / "machines").glob("*/machine.json"))
    assert not (tmp_path / "out").exists()


def test_qemu_template_errors_name_the_field(tmp_path: Path) -> None:
    template = {
        "builders": [
            {
                "type": "qemu",
                "iso_url": "x.img",
                "iso_checksum": "none",
                "format": "vmdk",
                "disk_interface": "usb",
            }
        ]
    }
    (tmp_path / "bad.json").write_text(json.dumps(template))
    done = kiln("validate", "bad.json", cwd=tmp_path, timeout=60)
    assert done.returncode != 0
    text = done.stdout + done.stderr
    assert "format" in text and "vmdk" in text
    assert "disk_interface" in text and '"usb" is not one of virtio, virtio-scsi' in text
    assert "ssh_username" in text


@pytest.mark.parametrize("interface", ["virtio-scsi"])
def test_virtio_scsi_disk_boots_through_the_initramfs(
    base_image: Path, ssh_key: Path, interface: str
) -> None:
    """nvme (the runner's default) and virtio (Packer's) boot in the tests above; virtio-scsi is a
    device with a controller, its root found by the initramfs. (sata and ide are accepted too, for
    images whose kernel has an AHCI driver: Debian's cloud kernel, in kiln's base images, has none.)"""
    pub = ssh_key.with_suffix(".pub").read_text()
    spec = MachineSpec(
        image=base_image,
        name="disks",
        disk_interface=interface,
        metadata=Metadata(ssh_authorized_keys=(pub,)),
    )
    with create_machine(spec, "vm") as machine:
        machine.start()
        machine.wait_for_ssh(600)
        root = ssh_ok(machine.ssh_host, machine.ssh_port, ssh_key, "findmnt -no SOURCE /").strip()
        # a SCSI disk's name is the order the kernel probed it in (the seed's disk sits on the same
        # controller): sda or sdb, found by the initramfs either way
        assert re.fullmatch(r"/dev/sd[ab]1", root), root
        assert "-initrd" in (machine.work_dir / "qemu.cmdline").read_text()
        # stopped right after SSH answered, before the rest of the boot is done: the power button is
        # pressed until the guest listens, and it powers off cleanly (not killed after the timeout)
        began = time.monotonic()
        machine.stop(graceful=True, timeout=120)
        assert time.monotonic() - began < 60
        assert "reboot: Power down" in machine.console_log.read_text(errors="replace")
