"""Real Packer, unchanged: Debian's packer 1.6.6 builds the seed's template against localcloud with
namespace machines, in a shell that has only what `eval "$(kiln localcloud env)"` sets (its Go SDK
calls ecs-cn-hangzhou.aliyuncs.com, which localcloud answers as a proxy), and leaves nothing behind
but the image."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.localcloud import LocalCloudProcess, start
from tests.localcloud.conftest import shell_env

from .conftest import inventory, leaks

ROOT = Path(__file__).resolve().parents[2]
PACKER = "/usr/bin/packer"

pytestmark = [pytest.mark.machine, pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def machines_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloudProcess]:
    if os.geteuid() != 0:
        pytest.skip("namespace machines need root")
    if not os.access(PACKER, os.X_OK):
        pytest.skip("Debian's packer is not installed (./dev setup installs it)")
    with start(tmp_path_factory.mktemp("localcloud-packer"), runner="light", timeout=600) as process:
        yield process


def test_packer_1_6_6_builds_the_seed_after_env_alone(
    machines_cloud: LocalCloudProcess, tmp_path: Path
) -> None:
    cloud = machines_cloud
    version = subprocess.run([PACKER, "version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("Packer v1.6.6"), version
    before = inventory(cloud)
    shutil.copy(ROOT / "examples" / "alicloud" / "redis.json", tmp_path / "redis.json")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **shell_env(cloud)}
    built = subprocess.run(
        [PACKER, "build", "-color=false", "redis.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    out = built.stdout + built.stderr
    assert built.returncode == 0, out[-6000:]
    assert "alicloud-ecs: Setting up redis-server" in out, out[-6000:]
    image = re.search(r"^cn-beijing: (m-[a-z0-9]+)$", built.stdout, re.M)
    assert image, out[-3000:]
    assert leaks(cloud, before, kept={image.group(1)}) == {}
