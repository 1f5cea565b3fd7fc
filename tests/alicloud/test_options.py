"""The rest of the builder's options, against localcloud (records only): image copies, sharing,
tags, disk mappings, user data, run tags, forced replacement, skip_create_image, and existing
network resources that are used and never deleted. Plus config validation with field paths."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from kiln.config import DecodeContext
from kiln.localcloud import LocalCloudProcess

from .conftest import SEED_BUILDER, api, build_in_process, inventory, leaks


def _builder(**extra: Any) -> dict[str, Any]:
    return {**SEED_BUILDER, "image_name": f"opt_{uuid.uuid4().hex[:8]}", "communicator": "none", **extra}


def _image(cloud: LocalCloudProcess, image_id: str, region: str = "cn-beijing") -> dict[str, Any]:
    body = api(cloud, region).call(
        "DescribeImages", {"ImageId": image_id, "ImageOwnerAlias": "self", "Status": "Available,Creating"}
    )
    images: list[dict[str, Any]] = body["Images"]["Image"]
    assert images, image_id
    return images[0]


def test_copies_share_tags(cloud: LocalCloudProcess, cloud_env: dict[str, str]) -> None:
    before = inventory(cloud)
    before_sh = inventory(cloud, "cn-shanghai")
    result = build_in_process(
        _builder(
            image_copy_regions=["cn-shanghai", "cn-shanghai"],
            image_copy_names=["copied_name"],
            image_share_account=["1234567890"],
            tags={"team": "kiln", "purpose": "test"},
            image_version="1.2",
            image_description="made by a test",
        )
    )
    assert result.error is None, result.out
    assert result.artifact is not None
    ids = dict(part.split(":") for part in result.artifact.id.split(","))
    assert set(ids) == {"cn-beijing", "cn-shanghai"}
    assert result.artifact.string().startswith("Alicloud images were created:\n\ncn-beijing: m-")
    main, copy = _image(cloud, ids["cn-beijing"]), _image(cloud, ids["cn-shanghai"], "cn-shanghai")
    assert copy["ImageName"] == "copied_name"
    tags = {t["TagKey"]: t["TagValue"] for t in main["Tags"]["Tag"]}
    assert tags["team"] == "kiln" and tags["purpose"] == "test"
    assert main.get("ImageVersion") == "1.2" and main.get("Description") == "made by a test"
    shared = api(cloud).call("DescribeImageSharePermission", {"ImageId": ids["cn-beijing"]})
    accounts = [a["AliyunId"] for a in shared["Accounts"]["Account"]]
    assert accounts == ["1234567890"]
    assert leaks(cloud, before, kept={ids["cn-beijing"]}) == {}
    after_sh = inventory(cloud, "cn-shanghai")
    assert after_sh["image"] - before_sh["image"] == {ids["cn-shanghai"]}
    assert not any(
        after_sh[k] - before_sh[k] for k in ("instance", "vpc", "vswitch", "security_group", "eip")
    )
    # Destroying the artifact (keep_input_artifact false) deletes every copy and its snapshots.
    result.artifact.destroy()
    assert ids["cn-beijing"] not in inventory(cloud)["image"]
    assert ids["cn-shanghai"] not in inventory(cloud, "cn-shanghai")["image"]


def test_instance_options_reach_the_api(
    cloud: LocalCloudProcess, cloud_env: dict[str, str], tmp_path: Path
) -> None:
    """user_data_file, run_tags, disk mappings, instance name: seen on the instance while it exists."""
    seen: dict[str, Any] = {}
    import kiln.builders.alicloud_ecs.steps_instance as steps_instance

    original = steps_instance.StepRunInstance.run

    def spy(self: Any, state: Any, ctx: Any) -> None:
        original(self, state, ctx)
        c = state.client
        found = c.call("DescribeInstances", {"InstanceIds": json.dumps([state.instance_id])})["Instances"][
            "Instance"
        ]
        seen["instance"] = found[0]
        seen["disks"] = c.call("DescribeDisks", {"InstanceId": state.instance_id})["Disks"]["Disk"]

    steps_instance.StepRunInstance.run = spy  # type: ignore[method-assign]
    script = tmp_path / "user-data.sh"
    script.write_text("#!/bin/sh\necho hello\n")
    try:
        result = build_in_process(
            _builder(
                user_data_file=str(script),
                run_tags={"owner": "ci"},
                instance_name="kiln-test-instance",
                system_disk_mapping={"disk_size": 40, "disk_category": "cloud_efficiency"},
                image_disk_mappings=[
                    {"disk_size": 20, "disk_category": "cloud_ssd", "disk_delete_with_instance": True}
                ],
                skip_create_image=True,
            )
        )
    finally:
        steps_instance.StepRunInstance.run = original  # type: ignore[method-assign]
    assert result.error is None, result.out
    assert result.artifact is None  # skip_create_image: no image, no artifact
    assert "Creating image" not in result.out
    instance = seen["instance"]
    assert instance["InstanceName"] == "kiln-test-instance"
    tags = {t["TagKey"]: t["TagValue"] for t in instance["Tags"]["Tag"]}
    assert tags["owner"] == "ci" and tags["kiln-run-id"]
    sizes = sorted(int(d["Size"]) for d in seen["disks"])
    assert sizes == [20, 40], seen["disks"]


def test_existing_network_is_used_and_kept(cloud: LocalCloudProcess, cloud_env: dict[str, str]) -> None:
    c = api(cloud)
    vpc = c.call("CreateVpc", {"CidrBlock": "192.168.0.0/16"})["VpcId"]
    time.sleep(0.3)
    zone = c.call("DescribeZones", {})["Zones"]["Zone"][0]["ZoneId"]
    vsw = c.call("CreateVSwitch", {"VpcId": vpc, "ZoneId": zone, "CidrBlock": "192.168.1.0/24"})["VSwitchId"]
    sg = c.call("CreateSecurityGroup", {"VpcId": vpc})["SecurityGroupId"]
    time.sleep(0.3)
    try:
        before = inventory(cloud)
        result = build_in_process(_builder(vpc_id=vpc, vswitch_id=vsw, security_group_id=sg))
        assert result.error is None, result.out
        assert "Creating vpc" not in result.out and "Cleaning up 'VPC'" not in result.out
        after = inventory(cloud)
        assert vpc in after["vpc"] and vsw in after["vswitch"] and sg in after["security_group"]
        assert result.artifact is not None
        assert leaks(cloud, before, kept={result.artifact.id.split(":")[1]}) == {}
        missing = build_in_process(_builder(vpc_id="vpc-doesnotexist0000000"))
        assert missing.error is not None
        assert str(missing.error) == "The specified vpc {vpc-doesnotexist0000000} doesn't exist."
    finally:
        c.call("DeleteSecurityGroup", {"SecurityGroupId": sg})
        c.call("DeleteVSwitch", {"VSwitchId": vsw})
        time.sleep(0.3)
        c.call("DeleteVpc", {"VpcId": vpc})


def test_force_replaces_image_and_snapshots(cloud: LocalCloudProcess, cloud_env: dict[str, str]) -> None:
    name = f"forced_{uuid.uuid4().hex[:6]}"
    first = build_in_process(_builder(image_name=name))
    assert first.error is None and first.artifact is not None, first.out
    old = first.artifact.id.split(":")[1]
    from kiln.alicloud.reaper import image_snapshots

    old_snapshots = set(image_snapshots(api(cloud), old))
    again = build_in_process(_builder(image_name=name))
    assert again.error is not None and "is used by an existing alicloud image" in str(again.error)
    forced = build_in_process(
        _builder(image_name=name, image_force_delete=True, image_force_delete_snapshots=True)
    )
    assert forced.error is None and forced.artifact is not None, forced.out
    held = inventory(cloud)
    assert old not in held["image"] and not (old_snapshots & held["snapshot"])
    assert forced.artifact.id.split(":")[1] in held["image"]


def test_deprecated_image_with_the_name_is_found(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image with the target name counts in any status, Deprecated included: without -force the
    build stops before it makes anything, with it the Deprecated image is replaced."""
    from kiln.alicloud.reaper import ALL_IMAGES
    from kiln.localcloud import start
    from kiln.localcloud.service import open_store

    def use(cloud: LocalCloudProcess) -> None:
        for key, value in (
            ("ALICLOUD_ACCESS_KEY", cloud.access_key_id),
            ("ALICLOUD_SECRET_KEY", cloud.secret),
        ):
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("KILN_ALICLOUD_ENDPOINT", cloud.url)

    builder = _builder(image_name="deprecated_name")
    with start(tmp_path / "cloud", runner="none") as first:
        use(first)
        made = build_in_process(builder)
        assert made.error is None and made.artifact is not None, made.out
    old = made.artifact.id.split(":")[1]
    # Deprecating an image (ModifyImageAttribute Status=Deprecated) is not an action of localcloud:
    # its state is changed while it is stopped.
    store = open_store(tmp_path / "cloud")
    image = store.get("image", old)
    assert image is not None
    store.put("image", old, {**image, "Status": "Deprecated"})
    store.close()
    with start(tmp_path / "cloud", runner="none") as cloud:
        use(cloud)
        named = {"ImageName": "deprecated_name", "ImageOwnerAlias": "self", "Status": ALL_IMAGES}
        listed = api(cloud).call("DescribeImages", named)["Images"]["Image"]
        assert [(i["ImageId"], i["Status"]) for i in listed] == [(old, "Deprecated")]
        before = inventory(cloud)
        refused = build_in_process(builder)
        assert refused.error is not None, refused.out
        assert f"Image Name: 'deprecated_name' is used by an existing alicloud image: {old}" in str(
            refused.error
        )
        assert leaks(cloud, before) == {}
        forced = build_in_process({**builder, "image_force_delete": True})
        assert forced.error is None and forced.artifact is not None, forced.out
        assert f"Deleting duplicated image and snapshot: {old}" in forced.out
        listed = api(cloud).call("DescribeImages", named)["Images"]["Image"]
        assert [i["ImageId"] for i in listed] == [forced.artifact.id.split(":")[1]]


def test_ignore_data_disks_keeps_the_snapshot_of_its_image(
    cloud: LocalCloudProcess, cloud_env: dict[str, str], state_dir: Path
) -> None:
    """image_ignore_data_disks: the image is made of a snapshot of the system disk, which a
    successful build keeps (the cloud refuses to delete it while the image exists)."""
    from kiln.alicloud.reaper import image_snapshots

    before = inventory(cloud)
    began = time.monotonic()
    result = build_in_process(
        _builder(
            image_ignore_data_disks=True,
            # disk_delete_with_instance left to its default: the data disk goes with the instance
            image_disk_mappings=[{"disk_size": 20, "disk_category": "cloud_ssd"}],
        )
    )
    assert result.error is None and result.artifact is not None, result.out
    assert "kiln cleanup" not in result.out and "Could not delete" not in result.out, result.out
    assert time.monotonic() - began < 30, result.out
    image = result.artifact.id.split(":")[1]
    snapshots = image_snapshots(api(cloud), image)
    assert len(snapshots) == 1 and snapshots[0] in inventory(cloud)["snapshot"]
    assert leaks(cloud, before, kept={image}) == {}
    journal = result.journal(state_dir)
    assert journal["status"] == "finished"
    kept = {(r["kind"], r["id"]) for r in journal["resources"] if r["state"] == "kept"}
    assert kept == {("image", image), ("snapshot", snapshots[0])}, journal


def test_private_ip_without_eip(cloud: LocalCloudProcess, cloud_env: dict[str, str]) -> None:
    before = inventory(cloud)
    result = build_in_process(_builder(ssh_private_ip=True))
    assert result.error is None, result.out
    assert "Allocating eip" not in result.out
    assert result.artifact is not None
    assert leaks(cloud, before, kept={result.artifact.id.split(":")[1]}) == {}


def test_config_errors_name_the_field(cloud_env: dict[str, str]) -> None:
    from kiln.builders.alicloud_ecs import AlicloudEcsBuilder

    dctx = DecodeContext()
    AlicloudEcsBuilder().prepare(
        {
            "region": "cn-beijing",
            "image_name": "has space",
            "instance_type": "",
            "ssh_username": "root",
            "user_data": "x",
            "user_data_file": "y",
            "source_imge": "typo",
            "custom_endpoint_ecs": "ftp://x",
        },
        dctx,
        "builders[0]",
    )
    text = "\n".join(dctx.errors)
    assert 'builders[0]: unknown configuration key: "source_imge"; did you mean "source_image"?' in text
    assert "builders[0].image_name: image_name can't include spaces" in text
    assert "builders[0]: instance_type must be specified" in text
    assert "builders[0].source_image: A source_image must be specified" in text
    assert "builders[0].user_data_file: Only one of user_data or user_data_file can be specified." in text
    assert 'builders[0].custom_endpoint_ecs: invalid endpoint "ftp://x"' in text
