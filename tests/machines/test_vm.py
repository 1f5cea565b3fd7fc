"""The VM runner: QEMU (TCG unless KVM proved to boot), provisioned over SSH, saved, booted again."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kiln.machines import MachineSpec, Metadata, create_machine
from tests.machines.conftest import ssh_ok

pytestmark = [pytest.mark.machine, pytest.mark.slow]


@pytest.mark.timeout(1800)
def test_redis_install_save_and_boot_again(base_image: Path, ssh_key: Path, tmp_path: Path) -> None:
    pub = ssh_key.with_suffix(".pub").read_text()
    spec = MachineSpec(
        image=base_image,
        name="vmbuild",
        ssh_host="127.0.0.9",
        metadata=Metadata(ssh_authorized_keys=(pub,), hostname="vm-build"),
        disk_size="6G",
    )
    saved = tmp_path / "saved.qcow2"
    with create_machine(spec, "vm") as machine:
        machine.start()
        machine.wait_for_ssh(600)
        host, port = machine.ssh_host, machine.ssh_port
        assert ssh_ok(host, port, ssh_key, "hostname").strip() == "vm-build"
        # the root partition grew to the 6G disk at first boot
        size = int(ssh_ok(host, port, ssh_key, "df --output=size -B1M / | tail -1"))
        assert size > 5000
        ssh_ok(
            host,
            port,
            ssh_key,
            "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server",
        )
        ssh_ok(host, port, ssh_key, "systemctl enable --now redis-server")
        assert ssh_ok(host, port, ssh_key, "redis-cli ping").strip() == "PONG"
        machine.stop(graceful=True, timeout=120)
        assert not machine.is_running()
        machine.save_image(saved, "qcow2")
        assert machine.console_log.stat().st_size > 0  # the serial console was captured
    info = subprocess.run(["qemu-img", "info", str(saved)], capture_output=True, text=True).stdout
    assert "file format: qcow2" in info and "backing file" not in info

    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    spec2 = MachineSpec(
        image=saved,
        name="vmagain",
        ssh_host="127.0.0.9",
        metadata=Metadata(ssh_authorized_keys=(other.with_suffix(".pub").read_text(),)),
    )
    with create_machine(spec2, "vm") as again:
        again.start()
        again.wait_for_ssh(600)
        ssh_ok(again.ssh_host, again.ssh_port, other, "systemctl is-active redis-server || sleep 3")
        assert ssh_ok(again.ssh_host, again.ssh_port, other, "redis-cli ping").strip() == "PONG"
        pid = again.proc.pid if hasattr(again, "proc") and again.proc else None
    assert pid is not None and not Path(f"/proc/{pid}").exists()
