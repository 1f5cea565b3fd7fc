"""Instances that are real machines: the seed's workflow with SSH, a package installed, and an image that boots.

These boot machines (namespace runner; one QEMU VM test) and need root and the Debian base image
(built on first use by `kiln baseimage`, cached in KILN_CACHE_DIR).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_vpc20160428.client import Client as VpcClient

from kiln.localcloud import LocalCloudProcess, start
from kiln.localcloud.sdkcalls import instance_status

from .conftest import REGION, config
from .sshutil import ssh, wait_for_ssh, write_key
from .workflow import build_up, leftovers, make_image, start_from_image, tear_down, wait_for

pytestmark = [
    pytest.mark.machine,
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="namespace machines need root"),
]

USER_DATA = base64.b64encode(b"#!/bin/sh\necho first-boot > /root/user-data-ran\n").decode()


@pytest.fixture(scope="module")
def light(state_root: Path) -> Iterator[LocalCloudProcess]:
    with start(state_root / "light", runner="light", timeout=120) as process:
        yield process


def test_seed_workflow_on_real_machines(light: LocalCloudProcess, tmp_path: Path) -> None:
    client, vpc = EcsClient(config(light)), VpcClient(config(light))
    built = build_up(client, vpc, "machine1", image_name="packer_redis", user_data=USER_DATA)
    key = write_key(tmp_path, built.private_key)
    wait_for_ssh(key, built.address)
    # the key pair reached authorized_keys through AttachKeyPair + StartInstance; UserData ran at first boot
    # user data runs in the background of the boot, as cloud-init does: sshd may answer first
    wait_for(
        "user data",
        lambda: ssh(key, built.address, "cat /root/user-data-ran").stdout.strip() == "first-boot",
        timeout=120,
        every=1.0,
    )
    installed = ssh(
        key,
        built.address,
        "apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends jq >/dev/null && jq --version",
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    image_id = make_image(client, built, "packer_redis")
    assert (light.state_dir / "images" / f"{image_id}.img").stat().st_size > 1 << 20

    # the image is a real disk: an instance started from it has the package
    second, address = start_from_image(client, built, image_id)
    wait_for_ssh(key, address)
    assert ssh(key, address, "jq --version").returncode == 0
    client.delete_instance(ecs.DeleteInstanceRequest(instance_id=second, force=True))

    tear_down(client, vpc, built)
    assert leftovers(client, vpc, built) == []
    assert (
        client.describe_instances(
            ecs.DescribeInstancesRequest(region_id=REGION, instance_ids=json.dumps([second]))
        ).body.total_count
        == 0
    )
    wait_for(
        "instance folders removed", lambda: not any((light.state_dir / "instances").iterdir()), timeout=60
    )
    assert not any((light.state_dir / "images").iterdir())


@pytest.mark.skipif(not Path("/usr/bin/qemu-system-x86_64").exists(), reason="QEMU not installed")
def test_vm_runner_boots_an_instance(state_root: Path, tmp_path: Path) -> None:
    with start(state_root / "vm", runner="vm", timeout=120) as cloud:
        client, vpc = EcsClient(config(cloud)), VpcClient(config(cloud))
        built = build_up(client, vpc, "vm1", image_name="vm_image")
        key = write_key(tmp_path, built.private_key)
        waited = wait_for_ssh(key, built.address, timeout=300)
        assert ssh(key, built.address, "systemd-detect-virt").stdout.strip() in ("qemu", "kvm"), waited
        tear_down(client, vpc, built)
        assert leftovers(client, vpc, built) == []


def test_running_instance_comes_back_after_kill_9(state_root: Path, tmp_path: Path) -> None:
    """The disk is the live one: what was written before a stop, and what was written (and synced)
    after the next start, right before the server's kill -9, are both there when it comes back."""
    state = state_root / "light-crash"
    with start(state, runner="light", timeout=120) as first:
        client, vpc = EcsClient(config(first)), VpcClient(config(first))
        built = build_up(client, vpc, "crash1", image_name="crash_image")
        key = write_key(tmp_path, built.private_key)
        wait_for_ssh(key, built.address)
        assert ssh(key, built.address, "echo before-stop > /root/first && sync").returncode == 0
        client.stop_instance(ecs.StopInstanceRequest(instance_id=built.instance_id))
        wait_for("Stopped", lambda: instance_status(client, built.instance_id) == "Stopped", timeout=300)
        client.start_instance(ecs.StartInstanceRequest(instance_id=built.instance_id))
        wait_for("Running", lambda: instance_status(client, built.instance_id) == "Running", timeout=300)
        wait_for_ssh(key, built.address)
        assert ssh(key, built.address, "echo after-start > /root/second && sync").returncode == 0
        first.kill()
    assert not (state / "instances" / built.instance_id / "disk.img").exists()  # no copy made at a stop
    with start(state, runner="light", timeout=120) as second:
        client, vpc = EcsClient(config(second)), VpcClient(config(second))
        wait_for(
            "Running again", lambda: instance_status(client, built.instance_id) == "Running", timeout=300
        )
        wait_for_ssh(key, built.address)  # same public address, forwarded again
        found = ssh(key, built.address, "cat /root/first /root/second").stdout.split()
        assert found == ["before-stop", "after-start"], found
        tear_down(client, vpc, built)
        assert leftovers(client, vpc, built) == []
