"""Fault injection through authenticated calls: errors N times, at a rate, throttling, latency."""

from __future__ import annotations

import time

from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient

from kiln.localcloud import LocalCloudProcess, client

from .conftest import REGION, error_of


def admin(cloud: LocalCloudProcess, action: str, **params: str) -> dict[str, object]:
    answer = client.call(
        cloud.url, cloud.access_key_id, cloud.secret, action, params, version=client.ADMIN_VERSION
    )
    assert answer.status == 200, answer.body
    return answer.json()


def test_fault_n_times_then_success(cloud: LocalCloudProcess, ecs3: EcsClient) -> None:
    admin(cloud, "KilnInjectFault", TargetAction="DescribeZones", Code="ServiceUnavailable", Count="2")
    try:
        for _ in range(2):
            err = error_of(lambda: ecs3.describe_zones(ecs.DescribeZonesRequest(region_id=REGION)))
            assert (err.code, err.status_code) == ("ServiceUnavailable", 503)
        assert ecs3.describe_zones(ecs.DescribeZonesRequest(region_id=REGION)).body.zones.zone
    finally:
        admin(cloud, "KilnClearFaults")


def test_throttling_and_rate(cloud: LocalCloudProcess, ecs3: EcsClient) -> None:
    admin(cloud, "KilnInjectFault", TargetAction="DescribeRegions", MaxPerSecond="3")
    try:
        codes = []
        for _ in range(6):
            try:
                ecs3.describe_regions(ecs.DescribeRegionsRequest())
                codes.append("ok")
            except Exception as err:
                codes.append(getattr(err, "code", "?"))
        assert codes.count("ok") == 3 and codes.count("Throttling.User") == 3
    finally:
        admin(cloud, "KilnClearFaults")
    admin(cloud, "KilnInjectFault", TargetAction="Describe*", Code="InternalError", Rate="0")
    try:
        assert ecs3.describe_regions(ecs.DescribeRegionsRequest()).body.regions.region  # rate 0 never fires
        faults = admin(cloud, "KilnDescribeFaults")["Faults"]
        assert faults["Fault"][0]["Code"] == "InternalError"  # type: ignore[index]
    finally:
        admin(cloud, "KilnClearFaults")


def test_added_latency(cloud: LocalCloudProcess, ecs3: EcsClient) -> None:
    admin(cloud, "KilnInjectFault", TargetAction="DescribeRegions", LatencyMs="300")
    try:
        began = time.monotonic()
        ecs3.describe_regions(ecs.DescribeRegionsRequest())
        assert time.monotonic() - began >= 0.3
    finally:
        admin(cloud, "KilnClearFaults")
    began = time.monotonic()
    ecs3.describe_regions(ecs.DescribeRegionsRequest())
    assert time.monotonic() - began < 0.3


def test_faults_need_a_signature(cloud: LocalCloudProcess) -> None:
    answer = client.call(
        cloud.url,
        cloud.access_key_id,
        "wrong-secret",
        "KilnInjectFault",
        {"TargetAction": "*", "Code": "InternalError"},
        version=client.ADMIN_VERSION,
    )
    assert answer.status == 400 and answer.json()["Code"] == "SignatureDoesNotMatch"
    assert admin(cloud, "KilnDescribeFaults")["Faults"] == {"Fault": []}
