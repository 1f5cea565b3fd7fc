"""Each API action the builder uses, failing once (injected by localcloud): the build fails with a
clear message naming the action and the cloud's error, and localcloud then holds nothing of that run.
A failing delete does not fail the build: the cleanup reports it and the sweep by tag removes it.
Also: 30% of all calls throttled, and the build still succeeds."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from kiln.localcloud import LocalCloudProcess

from .conftest import SEED_BUILDER, build_in_process, inventory, leaks

#: Actions of the seed's flow (with a temporary key pair), in the order the build first calls them.
RUN_ACTIONS = [
    "DescribeRegions", "DescribeImages", "DescribeZones", "CreateKeyPair", "CreateVpc", "DescribeVpcs",
    "CreateVSwitch", "DescribeVSwitches", "CreateSecurityGroup", "AuthorizeSecurityGroupEgress",
    "AuthorizeSecurityGroup", "RunInstances", "AllocateEipAddress", "DescribeInstances",
    "AssociateEipAddress", "DescribeEipAddresses", "StopInstance", "CreateImage",
]  # fmt: skip
CLEANUP_ACTIONS = [
    "DetachKeyPair", "UnassociateEipAddress", "ReleaseEipAddress", "DeleteInstance", "DeleteSecurityGroup",
    "DeleteVSwitch", "DeleteVpc", "DeleteKeyPairs",
]  # fmt: skip


def _builder(**extra: Any) -> dict[str, Any]:
    return {
        **SEED_BUILDER,
        "image_name": f"fault_{uuid.uuid4().hex[:8]}",
        "communicator": "none",
        "temporary_key_pair_name": f"packer_{uuid.uuid4()}",
        **extra,
    }


@pytest.mark.parametrize("action", RUN_ACTIONS)
def test_run_action_failure(
    action: str, cloud: LocalCloudProcess, cloud_env: dict[str, str], faults: Any, state_dir: Path
) -> None:
    before = inventory(cloud)
    faults(
        TargetAction=action,
        Code="Forbidden.RAM",
        HttpStatus="403",
        Message="User not authorized to operate on the specified resource.",
        Count="1",
    )
    result = build_in_process(_builder())
    assert result.error is not None, result.out
    message = str(result.error)
    assert message.startswith(f"{action} failed: Forbidden.RAM: User not authorized"), message
    assert "\n" not in message
    assert getattr(result.error, "hint", None) == "the credentials lack a RAM permission for this action"
    assert f"==> alicloud-ecs: {message}" in result.out
    assert leaks(cloud, before) == {}, result.out
    journal = result.journal(state_dir)
    assert journal["status"] == "failed"
    assert all(r["state"] == "deleted" for r in journal["resources"]), journal


@pytest.mark.parametrize("action", CLEANUP_ACTIONS)
def test_cleanup_action_failure(
    action: str, cloud: LocalCloudProcess, cloud_env: dict[str, str], faults: Any, state_dir: Path
) -> None:
    before = inventory(cloud)
    faults(TargetAction=action, Code="InvalidParameter", Message="Injected refusal.", Count="1")
    result = build_in_process(_builder())
    assert result.error is None, result.out
    assert result.artifact is not None
    image = result.artifact.id.split(":")[1]
    if action != "DetachKeyPair":  # its failure is harmless (the instance is deleted next) and not shown
        assert f"{action} failed: InvalidParameter: Injected refusal." in result.out, result.out
    assert leaks(cloud, before, kept={image}) == {}, result.out
    journal = result.journal(state_dir)
    assert all(r["state"] in ("deleted", "kept") for r in journal["resources"]), journal


def test_thirty_percent_throttled_build_succeeds(
    cloud: LocalCloudProcess, cloud_env: dict[str, str], faults: Any, state_dir: Path
) -> None:
    before = inventory(cloud)
    faults(
        TargetAction="*",
        Code="Throttling.User",
        Rate="0.3",
        Message="Request was denied due to user flow control.",
    )
    result = build_in_process(_builder())
    assert result.error is None, result.out
    assert result.artifact is not None
    image = result.artifact.id.split(":")[1]
    fired = sum(f["Fired"] for f in _faults(cloud))
    assert fired > 5  # the build really met throttling
    faults_cleared(cloud)
    assert leaks(cloud, before, kept={image}) == {}


def _faults(cloud: LocalCloudProcess) -> list[dict[str, Any]]:
    from .conftest import admin

    found: list[dict[str, Any]] = admin(cloud, "KilnDescribeFaults")["Faults"]["Fault"]
    return found


def faults_cleared(cloud: LocalCloudProcess) -> None:
    from .conftest import admin

    admin(cloud, "KilnClearFaults")
