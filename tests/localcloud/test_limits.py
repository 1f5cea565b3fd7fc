"""Bounded requests: size and parameter count are checked before anything is parsed, and answered
as API errors (RequestId, in the format the client asked for); the real API's own limits fit."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_vpc20160428.client import Client as VpcClient

from kiln.localcloud import LocalCloudProcess
from kiln.localcloud.incoming import FORM, MAX_BODY, MAX_PARAMS, MAX_QUERY
from kiln.localcloud.sdkcalls import network, run_instances

from .workflow import wait_for


def post(cloud: LocalCloudProcess, query: str, body: bytes) -> tuple[int, bytes, float]:
    request = urllib.request.Request(
        f"{cloud.url}/?{query}",
        data=body,
        method="POST",
        headers={"Content-Type": FORM},
    )
    began = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read(), time.monotonic() - began
    except urllib.error.HTTPError as err:
        return err.code, err.read(), time.monotonic() - began


def form(count: int, value: str = "v") -> bytes:
    return "&".join(f"p{i}={value}" for i in range(count)).encode()


def test_too_many_parameters_are_refused_before_parsing(cloud: LocalCloudProcess) -> None:
    status, body, _ = post(cloud, "Format=JSON", form(MAX_PARAMS + 1))
    error = json.loads(body)
    assert (status, error["Code"]) == (400, "TooManyParameters") and error["RequestId"], error
    assert str(MAX_PARAMS) in error["Message"]


def test_the_error_comes_in_the_format_asked_for(cloud: LocalCloudProcess) -> None:
    status, body, _ = post(cloud, "Format=XML", form(MAX_PARAMS + 1))
    root = ET.fromstring(body)
    assert status == 400 and root.tag == "Error"
    assert root.findtext("Code") == "TooManyParameters" and root.findtext("RequestId")
    # Format in the form body itself is honoured too (V1 clients may send it there).
    status, body, _ = post(cloud, "", b"Format=XML&" + form(MAX_PARAMS + 1))
    assert status == 400 and ET.fromstring(body).findtext("Code") == "TooManyParameters"


def test_a_4mb_form_of_350k_parameters_does_not_hold_the_server(cloud: LocalCloudProcess) -> None:
    body = form(350_000)
    assert len(body) > 3_000_000
    status, answer, took = post(cloud, "Format=JSON", body)
    error = json.loads(answer)
    assert status == 413 and error["Code"] == "RequestBodyTooLarge" and error["RequestId"], error
    assert took < 1.0, took


@pytest.mark.parametrize("size", [MAX_BODY + 1, 6 * 1024 * 1024])
def test_a_body_over_the_bound_is_an_api_error(cloud: LocalCloudProcess, size: int) -> None:
    status, answer, _ = post(cloud, "Format=JSON", b"x=" + b"a" * (size - 2))
    error = json.loads(answer)
    assert (status, error["Code"]) == (413, "RequestBodyTooLarge") and error["RequestId"], error


def test_a_chunked_body_over_the_bound_is_an_api_error(cloud: LocalCloudProcess) -> None:
    chunks = iter([b"x=" + b"a" * 65536] * (MAX_BODY // 65536 + 2))  # no length: sent chunked
    request = urllib.request.Request(
        f"{cloud.url}/?Format=JSON", data=chunks, method="POST", headers={"Content-Type": FORM}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    error = json.loads(refused.value.read())
    assert (refused.value.code, error["Code"]) == (413, "RequestBodyTooLarge") and error["RequestId"]


def test_a_query_over_the_bound_is_an_api_error(cloud: LocalCloudProcess) -> None:
    status, answer, _ = post(cloud, "Format=JSON&x=" + "a" * MAX_QUERY, b"")
    error = json.loads(answer)
    assert (status, error["Code"]) == (414, "RequestURITooLarge") and error["RequestId"], error


def test_the_largest_user_data_the_api_allows_goes_through_the_sdk(ecs3: EcsClient, vpc: VpcClient) -> None:
    # UserData may be 32 KB of base64; the Tea SDK sends it in the query string.
    user_data = base64.b64encode(b"#!/bin/sh\n" + b"\xfb\xff" * 12_000)[:32768].decode()
    _, vsw, group = network(ecs3, vpc, wait_for)
    assert run_instances(ecs3, vsw, group, user_data=user_data)
