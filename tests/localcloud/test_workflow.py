"""The seed's workflow by hand through the official SDK, V3 and V1 signatures, with record-only instances."""

from __future__ import annotations

import pytest
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_vpc20160428.client import Client as VpcClient

from kiln.localcloud import LocalCloudProcess

from .conftest import config
from .workflow import build_up, leftovers, make_image, tear_down


@pytest.mark.parametrize("v1", [False, True], ids=["v3", "v1"])
def test_seed_workflow_leaves_nothing(cloud: LocalCloudProcess, v1: bool, name) -> None:  # type: ignore[no-untyped-def]
    client, vpc = EcsClient(config(cloud, v1=v1)), VpcClient(config(cloud, v1=v1))
    suffix = name("wf")
    built = build_up(client, vpc, suffix, image_name=f"packer_basic_{suffix}")
    assert built.address.startswith("127.100.")
    image_id = make_image(client, built, f"packer_basic_{suffix}")
    assert image_id.startswith("m-")
    tear_down(client, vpc, built)
    assert leftovers(client, vpc, built) == []
