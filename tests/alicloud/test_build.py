"""The seed's build through the real `kiln build`, against localcloud over HTTP (record-only
instances: the API flow, Packer's log lines, the artifact, nothing left; secrets never printed)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from kiln.localcloud import LocalCloudProcess

from .conftest import SEED_BUILDER, inventory, kiln, leaks, template

#: The seed log's lines kiln must print, in this order (the shell provisioner's and SSH lines
#: belong to the machine test).
SEED_LINES = [
    "==> alicloud-ecs: Prevalidating image name...",
    "    alicloud-ecs: Found image ID: debian_12_x64_20G_kiln_20261128.vhd",
    "==> alicloud-ecs: Creating temporary keypair: packer_",
    "==> alicloud-ecs: Creating vpc",
    "==> alicloud-ecs: Creating vswitch...",
    "==> alicloud-ecs: Creating security groups...",
    "==> alicloud-ecs: Creating instance.",
    "==> alicloud-ecs: Allocating eip",
    "==> alicloud-ecs: Allocated eip ",
    "    alicloud-ecs: Attach keypair packer_",
    "==> alicloud-ecs: Starting instance: i-",
    "==> alicloud-ecs: Stopping instance: i-",
    "==> alicloud-ecs: Waiting instance stopped: i-",
    "==> alicloud-ecs: Creating image: packer_basic",
    "    alicloud-ecs: Detach keypair packer_",
    "==> alicloud-ecs: Cleaning up 'EIP'",
    "==> alicloud-ecs: Cleaning up 'instance'",
    "==> alicloud-ecs: Cleaning up 'security group'",
    "==> alicloud-ecs: Cleaning up 'vSwitch'",
    "==> alicloud-ecs: Cleaning up 'VPC'",
    "==> alicloud-ecs: Deleting temporary keypair...",
    "Build 'alicloud-ecs' finished",
    "==> Builds finished. The artifacts of successful builds are:",
    "--> alicloud-ecs: Alicloud images were created:",
]


def _in_order(text: str, expected: list[str]) -> None:
    lines = text.splitlines()
    position = 0
    for want in expected:
        for i in range(position, len(lines)):
            if lines[i].startswith(want):
                position = i + 1
                break
        else:
            raise AssertionError(f"line {want!r} missing or out of order in:\n{text}")


def test_seed_flow_lines_artifact_and_nothing_left(
    cloud: LocalCloudProcess, cloud_env: dict[str, str], tmp_path: Path, state_dir: Path
) -> None:
    before = inventory(cloud)
    # A temporary key pair as in the seed (an SSH build), without SSH: nothing boots here.
    builder = {
        **SEED_BUILDER,
        "image_name": "seed_flow",
        "communicator": "none",
        "temporary_key_pair_name": f"packer_{uuid.uuid4()}",
    }
    path = template(tmp_path, builder)
    result = kiln("build", "-machine-readable", str(path), env=cloud_env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    human = kiln("build", "-force", str(path), env=cloud_env, cwd=tmp_path)
    assert human.returncode == 0, human.stdout + human.stderr
    text = human.stdout
    _in_order(text.replace("seed_flow", "packer_basic"), SEED_LINES)
    assert re.search(r"^cn-beijing: m-[a-z0-9]+$", text, re.M), text
    # The second build replaced the first build's image (-force), so exactly one image remains.
    image = re.search(r"^cn-beijing: (m-[a-z0-9]+)$", text, re.M).group(1)  # type: ignore[union-attr]
    assert leaks(cloud, before, kept={image}) == {}
    assert image in inventory(cloud)["image"]
    for journal in (state_dir / "journal").glob("*.json"):
        data = json.loads(journal.read_text())
        assert data["status"] == "finished"
        assert all(r["state"] in ("deleted", "kept") for r in data["resources"]), data
    # The machine-readable run carries the artifact id in Packer's `region:imageId` form.
    assert re.search(r",alicloud-ecs,artifact,0,id,cn-beijing:m-[a-z0-9]+", result.stdout), result.stdout


def test_existing_image_name_fails_without_force(
    cloud: LocalCloudProcess, cloud_env: dict[str, str], tmp_path: Path
) -> None:
    builder = {**SEED_BUILDER, "image_name": "taken_name", "communicator": "none"}
    path = template(tmp_path, builder)
    first = kiln("build", str(path), env=cloud_env, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    before = inventory(cloud)
    second = kiln("build", str(path), env=cloud_env, cwd=tmp_path)
    assert second.returncode == 1
    assert (
        "Image Name: 'taken_name' is used by an existing alicloud image: m-" in second.stdout + second.stderr
    )
    assert leaks(cloud, before) == {}


def test_secret_key_never_printed(
    cloud: LocalCloudProcess, cloud_env: dict[str, str], tmp_path: Path
) -> None:
    """Neither a successful build, nor a failing one (a refused signature echoes the string to sign),
    nor the debug log prints the secret key."""
    builder = {**SEED_BUILDER, "image_name": "secret_check", "communicator": "none"}
    path = template(tmp_path, builder)
    log = tmp_path / "kiln.log"
    env = {**cloud_env, "PACKER_LOG": "1", "PACKER_LOG_PATH": str(log), "DEBUG": "sdk"}
    ok = kiln("build", "-machine-readable", str(path), env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wrong = kiln(
        "build", str(path), env={**env, "ALICLOUD_SECRET_KEY": "wrong-" + cloud.secret[:10]}, cwd=tmp_path
    )
    assert wrong.returncode == 1
    assert "SignatureDoesNotMatch" in wrong.stdout + wrong.stderr
    assert "DescribeRegions failed: SignatureDoesNotMatch:" in wrong.stderr
    channels = [ok.stdout, ok.stderr, wrong.stdout, wrong.stderr, log.read_text() if log.exists() else ""]
    for text in channels:
        assert cloud.secret not in text
        assert ("wrong-" + cloud.secret[:10]) not in text


def test_image_disk_mappings_make_data_disks_that_reach_the_image(
    cloud: LocalCloudProcess, cloud_env: dict[str, str], tmp_path: Path
) -> None:
    """image_disk_mappings: the instance gets the data disks (real ones, in localcloud), the image maps
    them as data disks, and the disks go with the instance (disk_delete_with_instance)."""
    from .conftest import api

    builder = {
        **SEED_BUILDER,
        "image_name": "with_data_disks",
        "communicator": "none",
        "image_disk_mappings": [
            {"disk_size": 30, "disk_category": "cloud_ssd", "disk_delete_with_instance": True},
            {"disk_size": 20, "disk_device": "/dev/xvdc", "disk_delete_with_instance": True},
        ],
    }
    before = inventory(cloud)
    disks_before = {d["DiskId"] for d in api(cloud).call("DescribeDisks", {"PageSize": 100})["Disks"]["Disk"]}
    result = kiln("build", str(template(tmp_path, builder)), env=cloud_env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    image_id = re.search(r"^cn-beijing: (m-[a-z0-9]+)$", result.stdout, re.M).group(1)  # type: ignore[union-attr]
    image = api(cloud).call("DescribeImages", {"ImageId": image_id})["Images"]["Image"][0]
    mappings = sorted(
        (m["Type"], m["Device"], m["Size"]) for m in image["DiskDeviceMappings"]["DiskDeviceMapping"]
    )
    assert mappings == [
        ("data", "/dev/xvdb", "30"),
        ("data", "/dev/xvdc", "20"),
        ("system", "/dev/xvda", "20"),
    ]
    assert leaks(cloud, before, kept={image_id}) == {}
    disks_after = {d["DiskId"] for d in api(cloud).call("DescribeDisks", {"PageSize": 100})["Disks"]["Disk"]}
    assert disks_after - disks_before == set()
