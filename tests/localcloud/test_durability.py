"""State survives a clean restart and a kill -9; running instances come back."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_vpc20160428.client import Client as VpcClient

from kiln.errors import KilnError
from kiln.localcloud import start
from kiln.localcloud.sdkcalls import instance_status, network, run_instances, vpc_status

from .conftest import REGION, config
from .workflow import wait_for


@pytest.mark.parametrize("how", ["sigterm", "kill-9"])
def test_restart_loses_nothing(state_root: Path, how: str) -> None:
    state = state_root / f"durable-{how}"
    with start(state, runner="none") as first:
        client, vpc = EcsClient(config(first)), VpcClient(config(first))
        vpc_id, vsw, group = network(client, vpc, wait_for)
        kept = run_instances(client, vsw, group, client_token="durable-run")[0]
        wait_for("Running", lambda: instance_status(client, kept) == "Running")
        stopped = run_instances(client, vsw, group)[0]
        wait_for("Running", lambda: instance_status(client, stopped) == "Running")
        client.stop_instance(ecs.StopInstanceRequest(instance_id=stopped))
        wait_for("Stopped", lambda: instance_status(client, stopped) == "Stopped")
        client.create_key_pair(ecs.CreateKeyPairRequest(region_id=REGION, key_pair_name="durable"))
        if how == "kill-9":
            first.kill()
        else:
            first.stop()
        assert not first.alive()
    with start(state, runner="none") as second:
        client, vpc = EcsClient(config(second)), VpcClient(config(second))
        assert vpc_status(vpc, vpc_id) == "Available"
        assert (
            client.describe_key_pairs(
                ecs.DescribeKeyPairsRequest(region_id=REGION, key_pair_name="durable")
            ).body.total_count
            == 1
        )
        wait_for("comes back Running", lambda: instance_status(client, kept) == "Running")
        assert instance_status(client, stopped) == "Stopped"
        again = run_instances(client, vsw, group, client_token="durable-run")
        assert again == [kept]  # ClientToken remembered across the restart
    rows = sqlite3.connect(state / "localcloud.sqlite3").execute("SELECT data FROM resources").fetchall()
    assert all("PrivateKeyBody" not in json.loads(r[0]) for r in rows)


def test_second_server_on_same_state_is_refused(state_root: Path) -> None:
    state = state_root / "locked"
    with start(state, runner="none"):
        with pytest.raises(KilnError, match="exited at start"):
            start(state, runner="none", timeout=20)
        assert "another localcloud already serves" in (state / "server.log").read_text()
