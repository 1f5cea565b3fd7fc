"""The model layer in-process: declared fields, status transitions, and a store that never holds
in memory what SQLite refused (a real SQLite file, the record-only backend)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from kiln.localcloud import errors
from kiln.localcloud.backend import NoMachines
from kiln.localcloud.model import lifecycle
from kiln.localcloud.model.cloud import Cloud
from kiln.localcloud.model.kinds import KINDS
from kiln.localcloud.profile import LatencyProfile
from kiln.localcloud.store import Store


def _vpc(cloud: Cloud, vpc_id: str = "vpc-one") -> dict[str, object]:
    return cloud.new(
        "vpc",
        vpc_id,
        "cn-beijing",
        VpcId=vpc_id,
        VpcName="one",
        CidrBlock="10.0.0.0/16",
        Description="",
        VRouterId="vrt-1",
        RouteTableId="vtb-1",
        IsDefault=False,
        Status="Available",
        Tags=[],
    )


@pytest.fixture
def cloud(tmp_path: Path) -> Cloud:
    return Cloud(tmp_path, Store(tmp_path / "state.sqlite3"), NoMachines(), LatencyProfile())


def test_every_kind_has_its_not_found_error() -> None:
    assert {kind.label for kind in KINDS.values()} <= errors.NOT_FOUND.keys()


def test_a_resource_must_match_its_declared_fields(cloud: Cloud) -> None:
    vpc = _vpc(cloud)
    cloud.put(vpc)
    with pytest.raises(TypeError, match="undeclared field"):
        cloud.put({**vpc, "Colour": "red"})
    with pytest.raises(TypeError, match="IsDefault is str"):
        cloud.put({**vpc, "IsDefault": "false"})
    with pytest.raises(TypeError, match="VpcName is missing"):
        cloud.put({k: v for k, v in vpc.items() if k != "VpcName"})
    assert "_transition" not in KINDS["vpc"].public({**vpc, "_transition": {}})


def test_find_gives_a_copy_and_put_stores_it(cloud: Cloud) -> None:
    cloud.put(_vpc(cloud))
    mine = cloud.find("vpc", "vpc-one", "cn-beijing")
    mine["VpcName"] = "changed"
    assert cloud.items("vpc")[0]["VpcName"] == "one"
    cloud.put(mine)
    assert cloud.items("vpc")[0]["VpcName"] == "changed"
    with pytest.raises(errors.ApiError, match=r"InvalidVpcId\.NotFound"):
        cloud.find("vpc", "vpc-one", "cn-hangzhou")


def test_a_refused_write_leaves_memory_as_it_was(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite3")
    store.put("vpc", "vpc-one", {"_kind": "vpc", "_id": "vpc-one", "VpcName": "one"})
    store.db.execute("PRAGMA query_only = ON")  # SQLite now refuses every write
    for refused in (
        lambda: store.put("vpc", "vpc-one", {"_kind": "vpc", "_id": "vpc-one", "VpcName": "refused"}),
        lambda: store.put("vpc", "vpc-two", {"_kind": "vpc", "_id": "vpc-two", "VpcName": "two"}),
        lambda: store.delete("vpc", "vpc-one"),
    ):
        with pytest.raises(sqlite3.OperationalError):
            refused()
    assert [dict(v) for v in store.all("vpc")] == [{"_kind": "vpc", "_id": "vpc-one", "VpcName": "one"}]
    store.close()


def test_a_transition_waits_for_its_time_and_its_work(cloud: Cloud) -> None:
    vpc = _vpc(cloud)
    lifecycle.begin(vpc, "Pending", "Available", 0.2, wait="work")
    cloud.put(vpc)
    time.sleep(0.25)
    assert cloud.items("vpc")[0]["Status"] == "Pending"  # the work is not done yet
    mine = cloud.find("vpc", "vpc-one", None)
    assert not lifecycle.work_done(mine, "other work") and lifecycle.work_done(mine, "work")
    cloud.put(mine)
    assert cloud.items("vpc")[0]["Status"] == "Available"
    assert "_transition" not in cloud.store.get("vpc", "vpc-one")  # type: ignore[operator]


def test_state_written_before_transitions_had_their_own_field_is_read(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite3")
    old = Cloud(tmp_path, store, NoMachines(), LatencyProfile())
    legacy = {**_vpc(old), "Status": "Pending", "_then": "Available", "_until": time.time() - 1}
    store.put("vpc", "vpc-one", legacy)
    store.close()
    again = Cloud(tmp_path, Store(tmp_path / "state.sqlite3"), NoMachines(), LatencyProfile())
    assert again.items("vpc")[0]["Status"] == "Available"
    assert not {"_then", "_until", "_wait"} & set(again.items("vpc")[0])
