"""The local path to an ECS image, end to end on real machines: a disk-image qemu build from kiln's base
image (a provisioner leaves a mark), alicloud-import of its disk (converted to VHD) into localcloud
with namespace-machine instances, then RunInstances of the imported image answers SSH and holds the
mark; and the same for the disk the installer-ISO example installed (the session's `iso_build`, shared
with the ISO test, so nothing is installed twice)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncssh
import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_vpc20160428.client import Client as VpcClient

from kiln.localcloud import start
from kiln.localcloud.sdkcalls import instance_status
from tests.localcloud.conftest import REGION, config
from tests.localcloud.sshutil import ssh, wait_for_ssh, write_key
from tests.localcloud.workflow import wait_for
from tests.machines.conftest import ISO_ROOT_PASSWORD, IsoBuild, ssh_password

pytestmark = [
    pytest.mark.machine,
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="namespace machines need root"),
]


@pytest.mark.timeout(2400)
def test_qemu_disk_imported_and_booted_as_an_instance(base_image: Path, tmp_path: Path) -> None:
    template = {
        "builders": [
            {
                "type": "qemu",
                "disk_image": True,
                "iso_url": base_image.as_uri(),
                "iso_checksum": "none",
                "output_directory": "out",
                "vm_name": "disk.qcow2",
                "format": "qcow2",
                "disk_size": "5G",
                "memory": 1024,
                "boot_wait": "1s",
                "ssh_username": "root",
                "ssh_timeout": "15m",
                "shutdown_command": "systemctl poweroff",
            }
        ],
        "provisioners": [{"type": "shell", "inline": ["echo imported-by-kiln > /root/provisioned"]}],
        "post-processors": [
            [
                {
                    "type": "alicloud-import",
                    "oss_bucket_name": "kiln-machine-import",
                    "oss_key_name": "disk.vhd",
                    "image_name": "imported-disk",
                    "image_os_type": "linux",
                    "image_platform": "Debian",
                    "image_architecture": "x86_64",
                    "format": "vhd",
                },
                {"type": "manifest", "output": "manifest.json"},
            ]
        ],
    }
    (tmp_path / "import.json").write_text(json.dumps(template))
    import_and_boot(
        tmp_path, "cat /root/provisioned", "imported-by-kiln", "Converting disk.qcow2 (qcow2) to vhd"
    )


@pytest.mark.timeout(2700)
def test_iso_installed_disk_imported_and_booted_as_an_instance(iso_build: IsoBuild, tmp_path: Path) -> None:
    """The second half of the seed's local path: the disk the installer ISO's build made (its
    provisioner wrote /etc/kiln-iso-build) goes through alicloud-import and boots as an ECS instance."""
    assert iso_build.returncode == 0, iso_build.stdout[-3000:] + iso_build.stderr[-3000:]
    template = {
        "builders": [{"type": "file", "source": str(iso_build.image), "target": "disk.qcow2"}],
        "post-processors": [
            [
                {
                    "type": "alicloud-import",
                    "oss_bucket_name": "kiln-iso-import",
                    "oss_key_name": "debian.raw",
                    "image_name": "imported-iso-install",
                    "image_os_type": "linux",
                    "image_platform": "Debian",
                    "image_architecture": "x86_64",
                    "format": "raw",
                },
                {"type": "manifest", "output": "manifest.json"},
            ]
        ],
    }
    (tmp_path / "import.json").write_text(json.dumps(template))
    # the installed system has no cloud-init (as on the cloud, a key pair reaches no image without
    # it): root logs in with the password its answer file set
    import_and_boot(
        tmp_path, "head -1 /etc/kiln-iso-build", "built by qemu from the installer ISO", "to raw",
        password=ISO_ROOT_PASSWORD,
    )  # fmt: skip


def import_and_boot(
    tmp_path: Path, command: str, expected: str, converted: str, password: str | None = None
) -> None:
    """`kiln build import.json` in `tmp_path` against a localcloud with namespace machines, then an
    instance of the imported image: `command` over SSH prints `expected`."""
    # a short folder: the machines' unix sockets live under it (at most 108 bytes of path)
    state = Path(tempfile.mkdtemp(prefix="kiln-import-"))
    try:
        run_import(state, tmp_path, command, expected, converted, password)
    finally:
        shutil.rmtree(state, ignore_errors=True)


def run_import(
    state: Path, tmp_path: Path, command: str, expected: str, converted: str, password: str | None
) -> None:
    with start(state / "cloud", runner="light", timeout=120) as cloud:
        env = {
            **os.environ,
            "ALICLOUD_ACCESS_KEY": cloud.access_key_id,
            "ALICLOUD_SECRET_KEY": cloud.secret,
            "ALICLOUD_REGION": REGION,
            "KILN_ALICLOUD_ENDPOINT": cloud.url,
            "KILN_OSS_ENDPOINT": cloud.url,
        }
        done = subprocess.run(
            [sys.executable, "-m", "kiln", "build", "import.json"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        out = done.stdout[-4000:] + done.stderr[-4000:]
        assert done.returncode == 0, out
        assert converted in done.stdout, out
        manifest = json.loads((tmp_path / "manifest.json").read_text())
        image_id = manifest["builds"][-1]["artifact_id"].split(":")[1]

        client, vpc = EcsClient(config(cloud)), VpcClient(config(cloud))
        network = network_for(client, vpc)
        pair = client.create_key_pair(
            ecs.CreateKeyPairRequest(region_id=REGION, key_pair_name="imported")
        ).body
        key = write_key(tmp_path, pair.private_key_body)
        run = ecs.RunInstancesRequest(
            region_id=REGION,
            image_id=image_id,
            instance_type="ecs.t5-lc1m1.small",
            security_group_id=network["group"],
            v_switch_id=network["vswitch"],
            key_pair_name="imported",
        )
        instance = client.run_instances(run).body.instance_id_sets.instance_id_set[0]
        log = cloud.state_dir / "server.log"
        for _ in range(3):  # a start that failed (a busy host: slirp4netns late) is started again
            wait_for(
                "start", lambda: instance_status(client, instance) in ("Running", "Stopped"), timeout=600
            )
            if instance_status(client, instance) == "Running":
                break
            client.start_instance(ecs.StartInstanceRequest(instance_id=instance))
        else:
            raise AssertionError("instance not Running:\n" + log.read_text()[-3000:])
        address = client.allocate_public_ip_address(
            ecs.AllocatePublicIpAddressRequest(instance_id=instance)
        ).body.ip_address
        assert read_over_ssh(key, address, command, password).strip() == expected
        client.delete_instance(ecs.DeleteInstanceRequest(instance_id=instance, force=True))
        client.delete_image(ecs.DeleteImageRequest(region_id=REGION, image_id=image_id))


def read_over_ssh(key: Path, address: str, command: str, password: str | None) -> str:
    """`command`'s output on the instance, once its sshd lets root in (with `key`, or `password`)."""
    if password is None:
        wait_for_ssh(key, address)
        done = ssh(key, address, command)
        assert done.returncode == 0, done.stderr
        return done.stdout
    deadline = time.monotonic() + 300
    while True:
        try:
            return ssh_password(address, 22, password, command)
        except (OSError, asyncssh.Error) as exc:  # not up yet
            if time.monotonic() > deadline:
                raise AssertionError(f"no password SSH to {address} after 300 s: {exc}") from None
            time.sleep(3)


def network_for(client: EcsClient, vpc: VpcClient) -> dict[str, str]:
    """A VPC, a vSwitch and a security group that lets SSH in."""
    from alibabacloud_vpc20160428 import models as vpcm

    vpc_id = vpc.create_vpc(vpcm.CreateVpcRequest(region_id=REGION, cidr_block="172.16.0.0/16")).body.vpc_id
    wait_for(
        "VPC",
        lambda: bool(
            vpc.describe_vpcs(vpcm.DescribeVpcsRequest(region_id=REGION, vpc_id=vpc_id))
            .body.vpcs.vpc[0]
            .status
            == "Available"
        ),
    )
    zone = client.describe_zones(ecs.DescribeZonesRequest(region_id=REGION)).body.zones.zone[0].zone_id
    vswitch = vpc.create_vswitch(
        vpcm.CreateVSwitchRequest(region_id=REGION, vpc_id=vpc_id, zone_id=zone, cidr_block="172.16.0.0/24")
    ).body.v_switch_id
    wait_for(
        "vSwitch",
        lambda: bool(
            vpc.describe_vswitches(vpcm.DescribeVSwitchesRequest(region_id=REGION, v_switch_id=vswitch))
            .body.v_switches.v_switch[0]
            .status
            == "Available"
        ),
    )
    group = client.create_security_group(
        ecs.CreateSecurityGroupRequest(region_id=REGION, vpc_id=vpc_id)
    ).body.security_group_id
    client.authorize_security_group(
        ecs.AuthorizeSecurityGroupRequest(
            region_id=REGION, security_group_id=group, ip_protocol="tcp", port_range="22/22",
            source_cidr_ip="0.0.0.0/0", nic_type="internet",
        )
    )  # fmt: skip
    return {"vswitch": vswitch, "group": group}
