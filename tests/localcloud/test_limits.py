"""Bounded requests: size and parameter count are checked before anything is parsed, and answered
as API errors (RequestId, in the format the client asked for); the real API's own limits fit."""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi.utils_models import OpenApiRequest, Params
from alibabacloud_tea_util.models import RuntimeOptions
from alibabacloud_vpc20160428.client import Client as VpcClient

from kiln.localcloud import LocalCloudProcess
from kiln.localcloud.incoming import FORM, MAX_BODY, MAX_PARAMS, MAX_QUERY, REQUEST_LINE
from kiln.localcloud.model.images import PUBLIC_IMAGE_ID
from kiln.localcloud.sdkcalls import network, run_instances

from .conftest import error_of
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


def user_data(size: int) -> str:
    """`size` bytes of a script, Base64-encoded; `\xfb\xff` makes `+` and `/`, the longest to send."""
    script = b"#!/bin/sh\n" + b"\xfb\xff" * size
    return base64.b64encode(script[:size]).decode()


def run_by(ecs3: EcsClient, method: str, query: dict[str, str]) -> dict[str, object]:
    """RunInstances through the SDK's own RPC call, by GET or by POST with the query parameters."""
    params = Params(
        action="RunInstances",
        version="2014-05-26",
        protocol="HTTP",
        pathname="/",
        method=method,
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    answer = ecs3.call_api(params, OpenApiRequest(query=query), RuntimeOptions())
    body: dict[str, object] = answer["body"]
    return body


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_16_kb_of_user_data_in_the_query(ecs3: EcsClient, vpc: VpcClient, method: str) -> None:
    _, vsw, group = network(ecs3, vpc, wait_for)
    query = {
        "RegionId": "cn-beijing",
        "ImageId": PUBLIC_IMAGE_ID,
        "InstanceType": "ecs.g6.large",
        "SecurityGroupId": group,
        "VSwitchId": vsw,
        "UserData": user_data(16 * 1024),
    }
    body = run_by(ecs3, method, query)
    assert body["InstanceIdSets"], body


def test_the_largest_user_data_the_api_allows_goes_through_the_sdk(ecs3: EcsClient, vpc: VpcClient) -> None:
    # 32 KB before Base64 encoding, as RunInstances documents it; the Tea SDK sends it in the query.
    _, vsw, group = network(ecs3, vpc, wait_for)
    assert run_instances(ecs3, vsw, group, user_data=user_data(32 * 1024))
    refused = error_of(lambda: run_instances(ecs3, vsw, group, user_data=user_data(32 * 1024 + 1)))
    assert refused.code == "InvalidUserData.SizeExceeded" and "32769 bytes" in refused.message


MALFORMED = [
    (b"GET /?Format=JSON HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", 400, "MalformedRequest"),
    (b"GET /\x01?Format=JSON HTTP/1.1\r\nHost: x\r\n\r\n", 400, "MalformedRequest"),
    (b"GARBAGE\r\n\r\n", 400, "MalformedRequest"),
    (
        b"GET /?Format=JSON HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        414,
        "RequestURITooLarge",
    ),
    (
        b"GET /?Format=JSON&x=" + b"a" * (REQUEST_LINE + 10) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        414,
        "RequestURITooLarge",
    ),
    (b"POST /?Format=JSON HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n", 400, "MalformedRequest"),
]


@pytest.mark.parametrize(("request_bytes", "status", "code"), MALFORMED, ids=range(len(MALFORMED)))
def test_what_cannot_be_parsed_is_an_api_error(
    cloud: LocalCloudProcess, request_bytes: bytes, status: int, code: str
) -> None:
    with socket.create_connection(("127.0.0.1", cloud.port), timeout=10) as sock:
        sock.sendall(request_bytes)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert int(head.split(b" ")[1]) == status, answer[:500]
    if b"Format=JSON" in request_bytes:
        error = json.loads(body)
    else:  # XML, as documented, when the request does not say
        root = ET.fromstring(body)
        error = {child.tag: child.text for child in root}
    assert error["Code"] == code and error["RequestId"] and error["HostId"] and error["Message"], error


def test_what_cannot_be_parsed_is_answered_in_xml_when_asked(cloud: LocalCloudProcess) -> None:
    with socket.create_connection(("127.0.0.1", cloud.port), timeout=10) as sock:
        sock.sendall(b"GET /?Format=XML HTTP/1.1\r\nBad Header\r\n\r\n")
        answer = sock.recv(65536)
    root = ET.fromstring(answer.partition(b"\r\n\r\n")[2])
    assert root.tag == "Error" and root.findtext("Code") == "MalformedRequest" and root.findtext("RequestId")
