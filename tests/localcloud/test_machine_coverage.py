"""What an instance that is a real machine must see: images of a running instance, security group rules
on its public address, data disks. Namespace machines (needs root and the Debian base image)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_vpc20160428.client import Client as VpcClient

from kiln.localcloud import LocalCloudProcess, start
from kiln.localcloud.sdkcalls import instance_status
from kiln.machines.nspawn import root_partition

from .conftest import REGION, config
from .sshutil import ssh, wait_for_ssh, write_key
from .workflow import ALL_IMAGE_STATUSES, build_up, leftovers, start_from_image, tear_down, wait_for

pytestmark = [
    pytest.mark.machine,
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="namespace machines need root"),
]


@pytest.fixture(scope="module")
def light(state_root: Path) -> Iterator[LocalCloudProcess]:
    with start(state_root / "light-coverage", runner="light", timeout=120) as process:
        yield process


def _image_available(client: EcsClient, image_id: str) -> bool:
    found = client.describe_images(
        ecs.DescribeImagesRequest(region_id=REGION, image_id=image_id, status=ALL_IMAGE_STATUSES)
    ).body.images.image
    assert found and found[0].status in ("Creating", "Available"), found
    return bool(found[0].status == "Available")


def test_image_of_a_running_instance_holds_what_it_just_wrote(
    light: LocalCloudProcess, tmp_path: Path
) -> None:
    client, vpc = EcsClient(config(light)), VpcClient(config(light))
    built = build_up(client, vpc, "live1", image_name="live_image")
    key = write_key(tmp_path, built.private_key)
    wait_for_ssh(key, built.address)
    # written, not synced: the copy is taken by the host kernel that holds the page cache
    assert ssh(key, built.address, "echo live > /root/live-marker").returncode == 0
    image_id = client.create_image(
        ecs.CreateImageRequest(region_id=REGION, instance_id=built.instance_id, image_name="live_image")
    ).body.image_id
    built.image_id = image_id
    wait_for("image Available", lambda: _image_available(client, image_id), timeout=300)
    # the instance ran on through the copy, and still answers
    assert instance_status(client, built.instance_id) == "Running"
    assert (
        ssh(key, built.address, "echo after > /root/after && cat /root/live-marker").stdout.strip() == "live"
    )

    second, address = start_from_image(client, built, image_id)
    wait_for_ssh(key, address)
    seen = ssh(key, address, "cat /root/live-marker; test -e /root/after && echo after-is-there")
    assert seen.stdout.split() == ["live"], seen
    client.delete_instance(ecs.DeleteInstanceRequest(instance_id=second, force=True))
    tear_down(client, vpc, built)
    assert leftovers(client, vpc, built) == []


def _rule(group: str, cidr: str, policy: str = "accept", priority: str = "1") -> dict[str, str]:
    return {
        "region_id": REGION,
        "security_group_id": group,
        "ip_protocol": "tcp",
        "port_range": "22/22",
        "source_cidr_ip": cidr,
        "policy": policy,
        "priority": priority,
    }


def test_ssh_follows_the_security_group_rules(light: LocalCloudProcess, tmp_path: Path) -> None:
    client, vpc = EcsClient(config(light)), VpcClient(config(light))
    built = build_up(client, vpc, "sg1", image_name="sg_image")
    key = write_key(tmp_path, built.private_key)
    wait_for_ssh(key, built.address)
    # build_up opened tcp/22 to 0.0.0.0/0; without it, no rule lets the caller in
    client.revoke_security_group(ecs.RevokeSecurityGroupRequest(**_rule(built.group_id, "0.0.0.0/0")))
    refused = ssh(key, built.address, "true", timeout=30)
    assert refused.returncode == 255, refused
    assert "reset" in refused.stderr.lower() or "closed" in refused.stderr.lower(), refused.stderr
    # a rule for another source does not let this caller (127.0.0.1) in either
    client.authorize_security_group(ecs.AuthorizeSecurityGroupRequest(**_rule(built.group_id, "10.0.0.0/8")))
    assert ssh(key, built.address, "true", timeout=30).returncode == 255
    client.authorize_security_group(ecs.AuthorizeSecurityGroupRequest(**_rule(built.group_id, "127.0.0.0/8")))
    assert ssh(key, built.address, "echo in", timeout=60).stdout.strip() == "in"
    # a drop of the same priority wins; a higher-priority accept (a smaller number) wins over it
    drop = _rule(built.group_id, "127.0.0.1/32", policy="drop")
    client.authorize_security_group(ecs.AuthorizeSecurityGroupRequest(**drop))
    assert ssh(key, built.address, "true", timeout=30).returncode == 255
    client.revoke_security_group(ecs.RevokeSecurityGroupRequest(**drop))
    client.authorize_security_group(ecs.AuthorizeSecurityGroupRequest(**{**drop, "priority": "5"}))
    assert ssh(key, built.address, "echo again", timeout=60).stdout.strip() == "again"
    tear_down(client, vpc, built)
    assert leftovers(client, vpc, built) == []


def _disk_status(client: EcsClient, disk_id: str) -> str:
    disks = client.describe_disks(
        ecs.DescribeDisksRequest(region_id=REGION, disk_ids=json.dumps([disk_id]))
    ).body.disks.disk
    return str(disks[0].status)


def test_a_data_disk_is_a_block_device_whose_data_reaches_the_image(
    light: LocalCloudProcess, tmp_path: Path
) -> None:
    client, vpc = EcsClient(config(light)), VpcClient(config(light))
    built = build_up(client, vpc, "disk1", image_name="disk_image")
    key = write_key(tmp_path, built.private_key)
    zone = client.describe_instance_attribute(
        ecs.DescribeInstanceAttributeRequest(instance_id=built.instance_id)
    ).body.zone_id
    disk = client.create_disk(ecs.CreateDiskRequest(region_id=REGION, zone_id=zone, size=21)).body.disk_id
    wait_for("disk Available", lambda: _disk_status(client, disk) == "Available")
    client.attach_disk(ecs.AttachDiskRequest(instance_id=built.instance_id, disk_id=disk))
    wait_for("disk In_use", lambda: _disk_status(client, disk) == "In_use")
    # the machine sees the disk from its next start on
    client.reboot_instance(ecs.RebootInstanceRequest(instance_id=built.instance_id))
    wait_for("Running", lambda: instance_status(client, built.instance_id) == "Running", timeout=300)
    wait_for_ssh(key, built.address)
    size = ssh(key, built.address, "lsblk -bdno SIZE /dev/vdb")
    assert size.stdout.strip() == str(21 << 30), size
    made = ssh(key, built.address, "mkfs.ext4 -q /dev/vdb && mount /dev/vdb /mnt && echo on-disk > /mnt/kept")
    assert made.returncode == 0, made.stderr

    # the image of the running instance holds the data disk too, mounted and unsynced as it is
    image_id = client.create_image(
        ecs.CreateImageRequest(region_id=REGION, instance_id=built.instance_id, image_name="disk_image")
    ).body.image_id
    built.image_id = image_id
    wait_for("image Available", lambda: _image_available(client, image_id), timeout=300)
    second, address = start_from_image(client, built, image_id)
    wait_for_ssh(key, address)
    seen = ssh(key, address, "mount /dev/vdb /mnt && cat /mnt/kept")
    assert seen.stdout.strip() == "on-disk", seen
    client.delete_instance(ecs.DeleteInstanceRequest(instance_id=second, force=True))
    ssh(key, built.address, "umount /mnt")
    tear_down(client, vpc, built)  # the image's data snapshot with it, as Packer's cleanup does
    wait_for("disk released", lambda: _disk_status(client, disk) == "Available", timeout=60)
    client.delete_disk(ecs.DeleteDiskRequest(disk_id=disk))
    assert leftovers(client, vpc, built) == []
    wait_for("disk files removed", lambda: not any((light.state_dir / "disks").iterdir()), timeout=60)


def _read_from_image(image: Path, path: str, work: Path) -> str:
    """A file of an image's root file system, read on the host (the image converted, mounted read-only)."""
    raw = work / "read.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(image), str(raw)], check=True)
    offset, size = root_partition(raw)
    loop = subprocess.run(
        ["losetup", "-f", "--show", "-r", "-o", str(offset), "--sizelimit", str(size), str(raw)],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    mnt = work / "mnt"
    mnt.mkdir()
    try:
        subprocess.run(["mount", "-o", "ro,noload", loop, str(mnt)], check=True)
        try:
            return (mnt / path.lstrip("/")).read_text()
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
    finally:
        subprocess.run(["losetup", "-d", loop], check=True)
        raw.unlink()


@pytest.mark.skipif(not Path("/usr/bin/qemu-system-x86_64").exists(), reason="QEMU not installed")
def test_vm_image_and_data_disk_snapshot_of_a_running_instance(state_root: Path, tmp_path: Path) -> None:
    with start(state_root / "vm-coverage", runner="vm", timeout=120) as cloud:
        client, vpc = EcsClient(config(cloud)), VpcClient(config(cloud))
        data = [ecs.RunInstancesRequestDataDisk(size=20)]
        built = build_up(client, vpc, "vmlive", image_name="vm_live", data_disks=data)
        key = write_key(tmp_path, built.private_key)
        wait_for_ssh(key, built.address, timeout=300)
        disks = ssh(
            key,
            built.address,
            "lsblk -bdno SIZE,NAME | grep -v $(findmnt -no SOURCE / | sed 's|/dev/||;s|p\\?[0-9]*$||')",
        )
        assert str(20 << 30) in disks.stdout.split(), disks
        data_dev = "/dev/" + next(
            line.split()[1] for line in disks.stdout.splitlines() if line.split()[0] == str(20 << 30)
        )
        # written and synced (a VM's copy is crash-consistent: the guest's own cache is not in it)
        wrote = ssh(
            key,
            built.address,
            f"echo vm-live > /root/vm-marker && printf on-the-disk | dd of={data_dev} conv=fsync status=none && sync",
        )
        assert wrote.returncode == 0, wrote
        data_disk = (
            client.describe_disks(
                ecs.DescribeDisksRequest(region_id=REGION, instance_id=built.instance_id, disk_type="data")
            )
            .body.disks.disk[0]
            .disk_id
        )
        snap = client.create_snapshot(ecs.CreateSnapshotRequest(disk_id=data_disk)).body.snapshot_id
        image_id = client.create_image(
            ecs.CreateImageRequest(region_id=REGION, instance_id=built.instance_id, image_name="vm_live")
        ).body.image_id
        built.image_id = image_id
        wait_for("image Available", lambda: _image_available(client, image_id), timeout=600)
        assert instance_status(client, built.instance_id) == "Running"
        assert ssh(key, built.address, "cat /root/vm-marker").stdout.strip() == "vm-live"
        image_file = cloud.state_dir / "images" / f"{image_id}.img"
        assert _read_from_image(image_file, "/root/vm-marker", tmp_path).strip() == "vm-live"

        def starts_with(file: Path, data: bytes) -> bool:
            with open(file, "rb") as handle:
                return handle.read(len(data)) == data

        others = [f for f in (cloud.state_dir / "images").iterdir() if f != image_file]
        snap_file = next(f for f in others if starts_with(f, b"on-the-disk"))
        assert snap_file.stat().st_size == 20 << 30
        client.delete_snapshot(ecs.DeleteSnapshotRequest(snapshot_id=snap))
        tear_down(client, vpc, built)
        assert leftovers(client, vpc, built) == []
