"""Fixtures: a real localcloud process (record-only instances unless a test boots machines), the
builder run in-process or through the real `kiln` command line, fault injection, and an inventory
of everything localcloud holds, to prove that a build left nothing behind."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kiln.alicloud.access import AccessConfig
from kiln.alicloud.client import AlicloudClient
from kiln.components import Artifact, BuildContext
from kiln.config import DecodeContext
from kiln.core.cancel import CancelToken
from kiln.core.secrets import REDACTOR
from kiln.core.ui import BuildUi, Output
from kiln.localcloud import LocalCloudProcess, client, start

REGION = "cn-beijing"
IMAGE = "debian_12_x64_20G_kiln_20261128.vhd"

#: The seed's builder, with what localcloud needs instead (and no SSH unless a test wants it).
SEED_BUILDER: dict[str, Any] = {
    "type": "alicloud-ecs",
    "region": REGION,
    "image_name": "packer_basic",
    "source_image": IMAGE,
    "ssh_username": "root",
    "instance_type": "ecs.t5-lc1m1.small",
    "internet_charge_type": "PayByTraffic",
    "io_optimized": "true",
}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloudProcess]:
    with start(tmp_path_factory.mktemp("localcloud"), runner="none") as process:
        yield process


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("KILN_STATE_DIR", str(path))
    return path


@pytest.fixture
def cloud_env(cloud: LocalCloudProcess, monkeypatch: pytest.MonkeyPatch, state_dir: Path) -> dict[str, str]:
    """The environment a user gets from `eval "$(kiln localcloud env)"`, set for this process too."""
    env = {
        "ALICLOUD_ACCESS_KEY": cloud.access_key_id,
        "ALICLOUD_SECRET_KEY": cloud.secret,
        "KILN_ALICLOUD_ENDPOINT": cloud.url,
        "KILN_STATE_DIR": str(state_dir),
    }
    for key in (
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        "ALICLOUD_PROFILE",
        "DEBUG",
    ):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture(autouse=True)
def clean_redactor() -> Iterator[None]:
    REDACTOR.clear()
    yield
    REDACTOR.clear()


def admin(cloud: LocalCloudProcess, action: str, **params: str) -> dict[str, Any]:
    answer = client.call(
        cloud.url, cloud.access_key_id, cloud.secret, action, params, version=client.ADMIN_VERSION
    )
    assert answer.status == 200, answer.body
    result: dict[str, Any] = answer.json()
    return result


@pytest.fixture
def faults(cloud: LocalCloudProcess) -> Iterator[Any]:
    """`faults(TargetAction=..., Code=..., Count=...)` injects one; all are cleared afterwards."""

    def inject(**params: str) -> dict[str, Any]:
        return admin(cloud, "KilnInjectFault", **params)

    yield inject
    admin(cloud, "KilnClearFaults")


def api(cloud: LocalCloudProcess, region: str = REGION) -> AlicloudClient:
    access = AccessConfig(
        access_key=cloud.access_key_id, secret_key=cloud.secret, region=region, custom_endpoint_ecs=cloud.url
    )
    return AlicloudClient(access, region)


_KINDS = {
    "instance": ("DescribeInstances", "Instances", "Instance", "InstanceId", {}),
    "eip": ("DescribeEipAddresses", "EipAddresses", "EipAddress", "AllocationId", {}),
    "security_group": ("DescribeSecurityGroups", "SecurityGroups", "SecurityGroup", "SecurityGroupId", {}),
    "vswitch": ("DescribeVSwitches", "VSwitches", "VSwitch", "VSwitchId", {}),
    "vpc": ("DescribeVpcs", "Vpcs", "Vpc", "VpcId", {}),
    "key_pair": ("DescribeKeyPairs", "KeyPairs", "KeyPair", "KeyPairName", {}),
    "image": ("DescribeImages", "Images", "Image", "ImageId", {"ImageOwnerAlias": "self"}),
    "snapshot": ("DescribeSnapshots", "Snapshots", "Snapshot", "SnapshotId", {}),
    "disk": ("DescribeDisks", "Disks", "Disk", "DiskId", {}),
}


def inventory(cloud: LocalCloudProcess, region: str = REGION) -> dict[str, set[str]]:
    """Everything localcloud holds in the region, by kind (not by tag: a missing tag must not hide a leak)."""
    c = api(cloud, region)
    held: dict[str, set[str]] = {}
    for kind, (action, outer, inner, id_field, extra) in _KINDS.items():
        body = c.call(action, {**extra, "PageSize": 50})
        held[kind] = {str(i[id_field]) for i in (body.get(outer) or {}).get(inner) or []}
    return held


def leaks(
    cloud: LocalCloudProcess, before: dict[str, set[str]], kept: set[str] | None = None
) -> dict[str, set[str]]:
    """What appeared since `before`, except the images the build was meant to leave (and the
    snapshots those images are made of)."""
    from kiln.alicloud.reaper import image_snapshots

    after = inventory(cloud)
    allowed = set(kept or ())
    for image in kept or ():
        allowed |= set(image_snapshots(api(cloud), image))
    out = {k: after[k] - before[k] - allowed for k in after}
    return {k: v for k, v in out.items() if v}


@dataclass
class InProcessBuild:
    """The builder run in this process (the SDK is imported once for many builds)."""

    out: str
    error: BaseException | None
    artifact: Artifact | None

    def journal(self, state_dir: Path) -> dict[str, Any]:
        files = sorted((state_dir / "journal").glob("*.json"))
        assert len(files) == 1, files
        data: dict[str, Any] = json.loads(files[0].read_text())
        return data


def build_in_process(builder_cfg: dict[str, Any], cancel: CancelToken | None = None) -> InProcessBuild:
    from kiln.builders.alicloud_ecs import AlicloudEcsBuilder

    raw = {k: v for k, v in builder_cfg.items() if k != "type"}
    builder = AlicloudEcsBuilder()
    dctx = DecodeContext()
    builder.prepare(raw, dctx, "builders[0]")
    assert not dctx.errors, dctx.errors
    REDACTOR.add(*dctx.secrets)
    buffer = io.StringIO()
    ctx = BuildContext(
        name="alicloud-ecs",
        builder_type="alicloud-ecs",
        ui=BuildUi(Output(out=buffer, err=buffer, inp=None), "alicloud-ecs"),
        cancel=cancel or CancelToken(),
        log=logging.getLogger("kiln.test.alicloud"),
        run_uuid=str(uuid.uuid4()),
        work_dir=Path.cwd(),
    )
    try:
        artifact = builder.run(ctx)
    except Exception as exc:
        return InProcessBuild(buffer.getvalue(), exc, None)
    return InProcessBuild(buffer.getvalue(), None, artifact)


def template(
    tmp_path: Path, builder: dict[str, Any], provisioners: list[dict[str, Any]] | None = None
) -> Path:
    data: dict[str, Any] = {
        "variables": {
            "access_key": "{{env `ALICLOUD_ACCESS_KEY`}}",
            "secret_key": "{{env `ALICLOUD_SECRET_KEY`}}",
        },
        "builders": [
            {**builder, "access_key": "{{user `access_key`}}", "secret_key": "{{user `secret_key`}}"}
        ],
    }
    if provisioners:
        data["provisioners"] = provisioners
    path = tmp_path / "alicloud.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def kiln(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kiln", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def popen_kiln(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kiln", *args],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
