"""localcloud on a full disk (the file-writing tests' small tmpfs): every answer is 200 or an API
error with a RequestId, memory never holds what the database refused, a retry with the same ClientToken creates
nothing twice, and after a restart its resources are exactly those it answered 200 for."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from kiln.localcloud import LocalCloudProcess, client, start

from ..components import test_disk_full

fill = test_disk_full.fill
small_disk = test_disk_full.small_disk  # the fixture: a 1 MiB tmpfs, unmounted after the test

REGION = "cn-beijing"


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
        fill(small_disk)
        filler = small_disk / "filler"
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
