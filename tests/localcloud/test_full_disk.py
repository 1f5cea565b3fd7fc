"""localcloud on a full disk (a small tmpfs of its own): every answer is 200 or an API error with a
RequestId, memory never holds what the database refused, a retry with the same ClientToken creates
nothing twice, and after a restart its resources are exactly those it answered 200 for."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.localcloud import LocalCloudProcess, client, start

REGION = "cn-beijing"


@pytest.fixture
def small_disk(state_root: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = state_root / f"disk-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
        mount_point.rmdir()


def fill(disk: Path) -> Path:
    """Take every free byte of `disk`; the filler file is returned, to be removed to free it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as err:
                assert err.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def call(cloud: LocalCloudProcess, action: str, params: dict[str, str]) -> tuple[int, dict[str, object]]:
    answer = client.call(
        cloud.url,
        cloud.access_key_id,
        cloud.secret,
        action,
        {"RegionId": REGION, **params},
        version=client.VPC_VERSION,
    )
    assert answer.content_type.startswith("application/json"), (answer.status, answer.body[:300])
    data = json.loads(answer.body)
    assert data.get("RequestId"), data
    if answer.status != 200:
        assert (answer.status, data["Code"]) == (500, "InternalError"), data
    return answer.status, data


def vpcs(cloud: LocalCloudProcess, name: str) -> set[str]:
    status, data = call(cloud, "DescribeVpcs", {"VpcName": name, "PageSize": "50"})
    assert status == 200, data
    return {v["VpcId"] for v in data["Vpcs"]["Vpc"]}  # type: ignore[index]


def test_a_full_disk_gives_api_errors_and_a_truthful_state(small_disk: Path) -> None:
    state = small_disk / "state"
    name = f"full-{uuid.uuid4().hex[:6]}"
    with start(state, runner="none") as cloud:
        status, first = call(cloud, "CreateVpc", {"VpcName": name, "CidrBlock": "10.0.0.0/16"})
        assert status == 200
        answered = {str(first["VpcId"])}
        filler = fill(small_disk)
        refused = 0
        for _ in range(30):
            status, data = call(cloud, "CreateVpc", {"VpcName": name, "CidrBlock": "10.0.0.0/16"})
            if status == 200:
                answered.add(str(data["VpcId"]))
            else:
                refused += 1
        status, data = call(cloud, "CreateVpc", {"VpcName": name, "ClientToken": "full-retry"})
        assert refused and status == 500, "the disk was full, yet nothing was refused"
        filler.unlink()
        assert vpcs(cloud, name) == answered  # memory holds nothing the database refused
        status, retried = call(cloud, "CreateVpc", {"VpcName": name, "ClientToken": "full-retry"})
        assert status == 200
        answered.add(str(retried["VpcId"]))
        status, again = call(cloud, "CreateVpc", {"VpcName": name, "ClientToken": "full-retry"})
        assert (status, again["VpcId"]) == (200, retried["VpcId"])
        assert vpcs(cloud, name) == answered
    with start(state, runner="none") as restarted:
        assert vpcs(restarted, name) == answered  # exactly what was answered 200, no more, no less
