"""The namespace runner: a machine in its own network namespace, provisioned like a real one."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import kiln
from kiln.machines import MachineSpec, Metadata, create_machine
from tests.machines.conftest import BOOTED_PING, ssh, ssh_ok

pytestmark = [pytest.mark.machine, pytest.mark.root, pytest.mark.slow]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the namespace runner needs root")


@needs_root
@pytest.mark.timeout(900)
def test_redis_install_reboot_save_and_boot_again(base_image: Path, ssh_key: Path, tmp_path: Path) -> None:
    pub = ssh_key.with_suffix(".pub").read_text()
    metadata = Metadata(
        ssh_authorized_keys=(pub,),
        hostname="ns-build",
        user_data="#!/bin/sh\necho ran >>/root/user-data-ran\n",
    )
    spec = MachineSpec(image=base_image, name="nsbuild", ssh_host="127.0.0.7", metadata=metadata)
    saved = tmp_path / "saved.raw"
    base_mtime = base_image.stat().st_mtime_ns
    with create_machine(spec, "namespace") as machine:
        machine.start()
        assert machine.wait_for_ssh(60) < 30
        host, port = machine.ssh_host, machine.ssh_port
        assert ssh_ok(host, port, ssh_key, "hostname").strip() == "ns-build"
        # the host key is the one kiln made and handed in through the seed
        served = ssh_ok(host, port, ssh_key, "ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key")
        assert served.split()[:2] == machine.host_key.public.split()[:2]
        assert ssh_ok(host, port, ssh_key, "ls /etc/ssh/ | grep -c '^ssh_host_.*_key$'").strip() == "1"
        ssh_ok(
            host,
            port,
            ssh_key,
            "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server",
        )
        ssh_ok(host, port, ssh_key, "systemctl enable --now redis-server")
        assert ssh_ok(host, port, ssh_key, BOOTED_PING).strip() == "PONG"
        boot_id = ssh_ok(host, port, ssh_key, "cat /proc/sys/kernel/random/boot_id")
        # a reboot: nspawn exits with 133 and kiln boots the machine again
        subprocess.run(
            ["ssh", "-i", str(ssh_key), "-p", str(port), "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", f"root@{host}", "systemctl reboot"],
            capture_output=True, timeout=60,
        )  # fmt: skip
        # sshd may answer for a moment before the old boot goes down: wait for a new boot id
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = ssh(host, port, ssh_key, "cat /proc/sys/kernel/random/boot_id", timeout=30)
            if done.returncode == 0 and done.stdout != boot_id:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the machine did not come back after its reboot")
        assert machine.is_running()
        ssh_ok(host, port, ssh_key, "systemctl is-active redis-server || sleep 2")
        assert ssh_ok(host, port, ssh_key, BOOTED_PING).strip() == "PONG"
        # the user data ran at first boot only, not again after the reboot
        assert ssh_ok(host, port, ssh_key, "cat /root/user-data-ran") == "ran\n"
        machine.stop(graceful=True, timeout=60)
        assert not machine.is_running()
        machine.save_image(saved, "raw")
    assert base_image.stat().st_mtime_ns == base_mtime, "the base image must never be written"

    # the saved image, as a new instance with a new key, still serves redis
    other_key = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    metadata2 = Metadata(
        ssh_authorized_keys=(other_key.with_suffix(".pub").read_text(),), hostname="ns-again"
    )
    spec2 = MachineSpec(image=saved, name="nsagain", ssh_host="127.0.0.8", metadata=metadata2)
    with create_machine(spec2, "namespace") as again:
        again.start()
        again.wait_for_ssh(60)
        ssh_ok(again.ssh_host, again.ssh_port, other_key, "systemctl is-active redis-server || sleep 2")
        assert ssh_ok(again.ssh_host, again.ssh_port, other_key, BOOTED_PING).strip() == "PONG"
        assert ssh_ok(again.ssh_host, again.ssh_port, other_key, "hostname").strip() == "ns-again"
        work_dir = again.work_dir
    assert not work_dir.exists()


def test_namespace_runner_without_root_points_to_the_vm_runner(base_image: Path) -> None:
    code = (
        "from pathlib import Path\n"
        "from kiln.errors import MachineError\n"
        "from kiln.machines import MachineSpec, create_machine\n"
        f"try:\n    create_machine(MachineSpec(image=Path({str(base_image)!r})), 'namespace')\n"
        "except MachineError as e:\n    print(e.render())\n"
    )
    if os.geteuid() != 0:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    else:
        with readable_copy_of_kiln() as folder:
            # The base interpreter, not the checkout's .venv: nobody may be unable to enter it.
            argv = [os.path.realpath(sys.executable), "-s", "-c", code]
            env = {**os.environ, "HOME": "/tmp", "PYTHONPATH": str(folder)}
            nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            done = subprocess.run([*nobody, *argv], capture_output=True, text=True, env=env)
    assert "needs root" in done.stdout and "VM runner" in done.stdout, done.stdout + done.stderr


@contextlib.contextmanager
def readable_copy_of_kiln() -> Iterator[Path]:
    """A copy of the kiln package that every user can read, removed afterwards: the checkout may
    sit in a folder other users cannot enter (a clone under /root, or in a `mktemp -d` folder)."""
    folder = Path(tempfile.mkdtemp(prefix="kiln-readable-"))
    try:
        shutil.copytree(
            Path(kiln.__file__).parent, folder / "kiln", ignore=shutil.ignore_patterns("__pycache__")
        )
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield folder
    finally:
        shutil.rmtree(folder)
