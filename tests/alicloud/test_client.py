"""kiln's Alibaba Cloud client over HTTP against localcloud: credentials from every source, retries
reusing the ClientToken, clear errors, and the adaptive waiter."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kiln.alicloud.access import AccessConfig
from kiln.alicloud.client import AlicloudClient, ApiError, CallRecord, RetryPolicy, items
from kiln.alicloud.waiter import WaitPolicy, WaitTimeout, wait_until
from kiln.core.cancel import CancelToken
from kiln.errors import CancelledError
from kiln.localcloud import LocalCloudProcess

from .conftest import REGION, inventory


def _client(access: AccessConfig, records: list[CallRecord] | None = None) -> AlicloudClient:
    fast = RetryPolicy(attempts=6, base=0.05, cap=0.2)
    return AlicloudClient(
        access, REGION, policy=fast, on_call=records.append if records is not None else None
    )


def test_retry_reuses_client_token(cloud: LocalCloudProcess, cloud_env: dict[str, str], faults: Any) -> None:
    """A create that fails twice with ServiceUnavailable is sent three times with one ClientToken:
    the cloud makes one VPC."""
    access = AccessConfig(region=REGION)
    access.apply_environment()
    records: list[CallRecord] = []
    before = inventory(cloud)["vpc"]
    faults(TargetAction="CreateVpc", Code="ServiceUnavailable", Count="2")
    body = _client(access, records).call("CreateVpc", {"CidrBlock": "10.0.0.0/8"}, token=True)
    assert [r.code for r in records if r.action == "CreateVpc"] == [
        "ServiceUnavailable",
        "ServiceUnavailable",
        None,
    ]
    assert inventory(cloud)["vpc"] - before == {body["VpcId"]}
    time.sleep(0.2)
    _client(access).call("DeleteVpc", {"VpcId": body["VpcId"]})


def test_same_token_returns_same_resource(cloud: LocalCloudProcess, cloud_env: dict[str, str]) -> None:
    access = AccessConfig(region=REGION)
    access.apply_environment()
    c = _client(access)
    first = c.call("CreateSecurityGroup", {"ClientToken": "kiln-test-token-1"})
    second = c.call("CreateSecurityGroup", {"ClientToken": "kiln-test-token-1"})
    assert first["SecurityGroupId"] == second["SecurityGroupId"]
    c.call("DeleteSecurityGroup", {"SecurityGroupId": first["SecurityGroupId"]})


def test_errors_are_one_clear_line(cloud: LocalCloudProcess, cloud_env: dict[str, str], faults: Any) -> None:
    access = AccessConfig(region=REGION)
    access.apply_environment()
    with pytest.raises(ApiError) as refused:
        _client(access).call("DescribeImages", {"ImageId": "m-doesnotexist", "Status": "Bogus"})
    assert refused.value.code == "InvalidParameter" or refused.value.code.startswith("Invalid")
    assert str(refused.value).startswith("DescribeImages failed: ")
    faults(TargetAction="DescribeRegions", Code="Throttling.User", Count="50")
    with pytest.raises(ApiError) as throttled:
        _client(access).call("DescribeRegions")
    assert throttled.value.code == "Throttling.User"
    nowhere = AccessConfig(
        access_key="a", secret_key="b", region=REGION, custom_endpoint_ecs="http://127.0.0.1:9"
    )
    with pytest.raises(ApiError) as unreachable:
        AlicloudClient(nowhere, REGION, policy=RetryPolicy(attempts=2, base=0.01, cap=0.01)).call(
            "DescribeRegions"
        )
    assert unreachable.value.code == "ConnectionFailed"
    assert "Connection refused" in str(unreachable.value)
    assert unreachable.value.hint and "KILN_ALICLOUD_ENDPOINT" in unreachable.value.hint


def test_backoff_is_full_jitter() -> None:
    """Attempt n waits uniform(0, min(cap, base * 2**n)), as documented (AWS's "full jitter")."""
    policy = RetryPolicy(base=0.3, cap=8.0, rng=random.Random(7))
    for attempt, ceiling in ((0, 0.3), (3, 2.4), (9, 8.0)):
        delays = [policy.delay(attempt) for _ in range(400)]
        assert all(0 <= d <= ceiling for d in delays)
        assert min(delays) < ceiling / 10 and max(delays) > ceiling * 0.9


def test_items_of_an_answer() -> None:
    body: dict[str, Any] = {"Images": {"Image": [{"ImageId": "m-1"}]}, "Vpcs": {"Vpc": None}, "Zones": None}
    assert items(body, "Images", "Image") == [{"ImageId": "m-1"}]
    assert items(body, "Vpcs", "Vpc") == items(body, "Zones", "Zone") == items(body, "Nothing", "At") == []
    assert items({"A": {"B": "not a list"}}, "A", "B") == []


def test_unknown_parameter_is_caught() -> None:
    access = AccessConfig(
        access_key="a", secret_key="b", region=REGION, custom_endpoint_ecs="http://127.0.0.1:9"
    )
    with pytest.raises(Exception, match="does not know parameter"):
        AlicloudClient(access, REGION).call("DescribeRegions", {"NoSuchParameter": "1"})


def _regions(access: AccessConfig) -> list[str]:
    body = _client(access).call("DescribeRegions")
    return [r["RegionId"] for r in body["Regions"]["Region"]]


def test_credentials_from_every_source(
    cloud: LocalCloudProcess, cloud_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in ("ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY"):
        monkeypatch.delenv(key)
    # The official default chain reads its variables when first imported: hence fresh processes.
    # (The ECS metadata lookup is disabled: tests talk to 127.0.0.0/8 only.)
    script = (
        "from kiln.alicloud.access import AccessConfig\n"
        "from kiln.alicloud.client import AlicloudClient, ApiError\n"
        "a = AccessConfig(region='cn-beijing'); a.apply_environment()\n"
        "try:\n"
        "    print(len(AlicloudClient(a, 'cn-beijing').call('DescribeRegions')['Regions']['Region']))\n"
        "except ApiError as e:\n"
        "    print(e.code, e.hint)\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "KILN_ALICLOUD_ENDPOINT": cloud.url,
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
    }
    # No credentials anywhere: one clear error, not retried.
    none = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert none.stdout.startswith("InvalidCredentials set access_key"), none.stdout + none.stderr
    # ALIBABA_CLOUD_* variables.
    env.update(ALIBABA_CLOUD_ACCESS_KEY_ID=cloud.access_key_id, ALIBABA_CLOUD_ACCESS_KEY_SECRET=cloud.secret)
    chain = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert chain.returncode == 0 and int(chain.stdout) > 0, chain.stdout + chain.stderr
    # A profile of an aliyun CLI config file, region included.
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "current": "other",
                "profiles": [
                    {"name": "other", "mode": "AK", "access_key_id": "x", "access_key_secret": "y"},
                    {
                        "name": "kiln",
                        "mode": "AK",
                        "access_key_id": cloud.access_key_id,
                        "access_key_secret": cloud.secret,
                        "region_id": REGION,
                    },
                ],
            }
        )
    )
    monkeypatch.setenv("ALICLOUD_PROFILE", "kiln")
    monkeypatch.setenv("ALICLOUD_SHARED_CREDENTIALS_FILE", str(config))
    profile = AccessConfig()
    profile.apply_environment()
    assert profile.region == REGION
    assert REGION in _regions(profile)
    monkeypatch.delenv("ALICLOUD_PROFILE")
    # An STS key: refused without its token, accepted with it (SECURITY_TOKEN as in Packer).
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "kiln",
            "localcloud",
            "keys",
            "create",
            "--sts",
            "--state",
            str(cloud.state_dir),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fields = dict(line.split(": ", 1) for line in made.strip().splitlines())
    sts = AccessConfig(access_key=fields["access key id"], secret_key=fields["secret"], region=REGION)
    with pytest.raises(ApiError):
        _regions(sts)
    monkeypatch.setenv("SECURITY_TOKEN", fields["security token"])
    sts = AccessConfig(access_key=fields["access key id"], secret_key=fields["secret"], region=REGION)
    sts.apply_environment()
    assert REGION in _regions(sts)


def test_waiter_polls_fast_then_backs_off_and_cancels() -> None:
    calls: list[float] = []
    began = time.monotonic()

    def probe() -> bool | None:
        calls.append(time.monotonic() - began)
        return True if len(calls) == 6 else None

    assert wait_until(probe, what="six polls", timeout=10)
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[0] < 0.4 and gaps[-1] < 1.5 and gaps[-1] > gaps[0]  # (loose: CI machines are busy)
    with pytest.raises(WaitTimeout, match=r"timed out after 0\.3s waiting for nothing"):
        wait_until(lambda: None, what="nothing", timeout=0.3)
    cancel = CancelToken()
    threading.Timer(0.2, cancel.cancel).start()
    began = time.monotonic()
    with pytest.raises(CancelledError):
        wait_until(
            lambda: None, what="a cancel", timeout=60, cancel=cancel, policy=WaitPolicy(first=5, cap=5)
        )
    assert time.monotonic() - began < 2
