"""ClientToken bookkeeping in the server process itself (a real store and the record-only backend)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kiln.localcloud.auth import Caller
from kiln.localcloud.backend import NoMachines
from kiln.localcloud.errors import ApiError
from kiln.localcloud.model.cloud import Cloud
from kiln.localcloud.profile import LatencyProfile
from kiln.localcloud.server import Server
from kiln.localcloud.service import first_key, open_store


def test_a_failed_request_leaves_no_token_lock_behind(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = open_store(tmp_path)
        cloud = Cloud(tmp_path, store, NoMachines(), LatencyProfile())
        server = Server(cloud)
        caller = Caller(first_key(store), "v3", action="", version="")  # dispatch is given both
        params = {
            "RegionId": "cn-beijing",
            "VpcId": "vpc-nope",
            "ZoneId": "cn-beijing-a",
            "ClientToken": "t1",
        }
        for attempt in range(3):
            with pytest.raises(ApiError, match=r"InvalidVpcId\.NotFound"):
                await server.rpc.dispatch(caller, "CreateVSwitch", "2016-04-28", params, f"req-{attempt}")
        concurrent = [
            server.rpc.dispatch(caller, "CreateVSwitch", "2016-04-28", params, f"req-c{n}") for n in range(3)
        ]
        outcomes = await asyncio.gather(*concurrent, return_exceptions=True)
        assert all(isinstance(o, ApiError) for o in outcomes)
        created = await server.rpc.dispatch(
            caller, "CreateVpc", "2016-04-28", {"RegionId": "cn-beijing", "ClientToken": "t2"}, "req-ok"
        )
        assert created["VpcId"].startswith("vpc-")
        assert len(server.rpc.token_locks) == 0
        await cloud.close()
        store.close()

    asyncio.run(scenario())
