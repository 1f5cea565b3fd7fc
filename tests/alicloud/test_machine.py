"""The seed, end to end on real machines: `kiln build` of examples/alicloud/redis.json against
localcloud with namespace machines prints the seed log's steps, leaves nothing but the image, and an
instance started from that image answers `redis-cli ping` with PONG."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.localcloud import LocalCloudProcess, start

from .conftest import SEED_BUILDER, api, inventory, kiln, leaks, popen_kiln, template
from .test_build import SEED_LINES, _in_order
from .test_signals import Reader

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.machine, pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def machines_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloudProcess]:
    if os.geteuid() != 0:
        pytest.skip("namespace machines need root")
    with start(tmp_path_factory.mktemp("localcloud-light"), runner="light", timeout=600) as process:
        yield process


def user_env(cloud: LocalCloudProcess, tmp_path: Path) -> dict[str, str]:
    """What a user's shell has after `eval "$(kiln localcloud env)"`, and a state folder."""
    return {
        "ALICLOUD_ACCESS_KEY": cloud.access_key_id,
        "ALICLOUD_SECRET_KEY": cloud.secret,
        "KILN_ALICLOUD_ENDPOINT": cloud.url,
        "KILN_STATE_DIR": str(tmp_path / "state"),
    }


def test_seed_build_then_redis_answers(machines_cloud: LocalCloudProcess, tmp_path: Path) -> None:
    cloud = machines_cloud
    env = user_env(cloud, tmp_path)
    before = inventory(cloud)
    shutil.copy(ROOT / "examples" / "alicloud" / "redis.json", tmp_path / "alicloud.json")
    built = kiln("build", "alicloud.json", env=env, cwd=tmp_path, timeout=900)
    out = built.stdout + built.stderr
    assert built.returncode == 0, out
    _in_order(built.stdout, SEED_LINES[:11])
    _in_order(
        built.stdout,
        [
            "==> alicloud-ecs: Using ssh communicator to connect: 127.",
            "==> alicloud-ecs: Waiting for SSH to become available...",
            "==> alicloud-ecs: Connected to SSH!",
            "==> alicloud-ecs: Provisioning with shell script: ",
            "    alicloud-ecs: The following NEW packages will be installed:",
            *SEED_LINES[11:],
        ],
    )
    image = re.search(r"^cn-beijing: (m-[a-z0-9]+)$", built.stdout, re.M)
    assert image, out
    assert leaks(cloud, before, kept={image.group(1)}) == {}
    assert cloud.secret not in out

    # Prove the image: an instance started from it runs redis. kiln itself starts it (no image made).
    check = {
        **SEED_BUILDER,
        "image_name": "unused",
        "source_image": image.group(1),
        "skip_create_image": True,
    }
    path = template(
        tmp_path,
        check,
        provisioners=[
            {"type": "shell", "inline": ["systemctl is-system-running --wait >/dev/null; redis-cli ping"]}
        ],
    )
    proved = kiln("build", str(path), env=env, cwd=tmp_path, timeout=600)
    assert proved.returncode == 0, proved.stdout + proved.stderr
    assert "    alicloud-ecs: PONG" in proved.stdout, proved.stdout
    assert leaks(cloud, before, kept={image.group(1)}) == {}
    journals = list((tmp_path / "state" / "journal").glob("*.json"))
    assert len(journals) == 2
    assert all(json.loads(j.read_text())["status"] == "finished" for j in journals)


def test_instance_deleted_under_a_running_script_fails_the_build_at_once(
    machines_cloud: LocalCloudProcess, tmp_path: Path
) -> None:
    """The machine goes away mid-script: the build fails within 30 s (no waiting ssh_timeout to
    remove the script from a machine that is gone), says why, and leaves nothing."""
    cloud = machines_cloud
    env = user_env(cloud, tmp_path)
    before = inventory(cloud)
    builder = {**SEED_BUILDER, "image_name": "never_made", "ssh_timeout": "5m"}
    path = template(
        tmp_path, builder, provisioners=[{"type": "shell", "inline": ["echo started", "sleep 600"]}]
    )
    reader = Reader(popen_kiln("build", str(path), env=env, cwd=tmp_path))
    try:
        reader.wait_for("alicloud-ecs: started", timeout=600)
        found = api(cloud).call("DescribeInstances", {"Tag": [{"Key": "kiln-run-id"}]})
        (instance,) = found["Instances"]["Instance"]
        api(cloud).call("DeleteInstance", {"InstanceId": instance["InstanceId"], "Force": True})
        deleted = time.monotonic()
        reader.proc.wait(120)
        took = time.monotonic() - deleted
        out = reader.finish()
    finally:
        if reader.proc.poll() is None:
            reader.proc.kill()
    assert reader.proc.returncode == 1, out
    assert took < 30, f"the build took {took:.0f} s to fail:\n{out}"
    assert "Script disconnected unexpectedly" in out, out
    assert leaks(cloud, before) == {}, out
