"""localcloud as an HTTP(S) proxy for Alibaba's API names, after `eval "$(kiln localcloud env)"`:
official SDKs reach it under the public host names over HTTP and over HTTPS (CONNECT, ended by
localcloud with its own CA), and any other host is refused without being connected to."""

from __future__ import annotations

import json
import socket
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from kiln.localcloud import LocalCloudProcess
from kiln.localcloud.tls import Authority, bundle_file, ca_file

from .conftest import shell_env


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A Python client with only the exported variables (and PATH) as its environment."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def raw(cloud: LocalCloudProcess, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", cloud.port), timeout=10) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


@pytest.fixture
def bystander() -> Iterator[tuple[int, list[bytes]]]:
    """A listener on another loopback port, recording every connection made to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    seen: list[bytes] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            seen.append(conn.recv(1024))
            conn.close()

    thread = threading.Thread(target=accept)
    thread.start()
    yield server.getsockname()[1], seen
    done.set()
    thread.join()
    server.close()


def test_env_exports_the_proxy_and_the_ca(cloud: LocalCloudProcess) -> None:
    env = shell_env(cloud)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        assert env[name] == cloud.url
    assert "127.0.0.1" in env["NO_PROXY"].split(",") and env["no_proxy"] == env["NO_PROXY"]
    bundle = Path(env["SSL_CERT_FILE"])
    assert env["REQUESTS_CA_BUNDLE"] == env["ALIBABA_CLOUD_CA_BUNDLE"] == str(bundle)
    assert env["ALICLOUD_ACCESS_KEY"] == env["ALIBABA_CLOUD_ACCESS_KEY_ID"] == cloud.access_key_id
    assert "KILN_ALICLOUD_ENDPOINT" not in env  # kiln reaches it by the public names, as Packer does
    # The bundle keeps the system's CAs (SSL_CERT_FILE replaces them) and ends with localcloud's.
    ca_pem = ca_file(cloud.state_dir).read_bytes()
    system = Path("/etc/ssl/certs/ca-certificates.crt").read_bytes().strip()
    assert bundle.read_bytes().endswith(ca_pem) and system in bundle.read_bytes()
    assert stat.S_IMODE((cloud.state_dir / "ca-key.pem").stat().st_mode) == 0o600


def test_the_ca_vouches_for_aliyuncs_com_names_only(cloud: LocalCloudProcess) -> None:
    ca = x509.load_pem_x509_certificate(ca_file(cloud.state_dir).read_bytes())
    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical and constraints.value.permitted_subtrees == [x509.DNSName("aliyuncs.com")]
    with pytest.raises(ValueError, match=r"not an aliyuncs\.com name"):
        Authority(cloud.state_dir).context("example.com")


def test_sdk_over_https_through_the_proxy(cloud: LocalCloudProcess) -> None:
    # The official SDK's default endpoint and protocol (https://ecs.cn-beijing.aliyuncs.com); the Tea
    # SDK reads no CA variable itself, so the client passes the exported one, as kiln's client does.
    code = """if True:
        import json, os
        from alibabacloud_ecs20140526.client import Client as Ecs
        from alibabacloud_ecs20140526 import models as ecs
        from alibabacloud_vpc20160428.client import Client as Vpc
        from alibabacloud_vpc20160428 import models as vpc
        from alibabacloud_tea_openapi.models import Config
        def config():
            return Config(access_key_id=os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"],
                          access_key_secret=os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
                          region_id=os.environ["ALIBABA_CLOUD_REGION_ID"],
                          ca=os.environ["ALIBABA_CLOUD_CA_BUNDLE"])
        e, v = Ecs(config()), Vpc(config())
        regions = e.describe_regions(ecs.DescribeRegionsRequest()).body.regions.region
        made = v.create_vpc(vpc.CreateVpcRequest(region_id="cn-beijing", cidr_block="10.9.0.0/16")).body.vpc_id
        import requests
        answer = requests.get("https://ecs-cn-hangzhou.aliyuncs.com/?Format=JSON")
        print(json.dumps({"endpoint": e._endpoint, "protocol": e._protocol, "regions": len(regions),
                          "vpc": made, "requests": answer.json()["Code"]}))
    """
    done = run_python(code, shell_env(cloud))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["endpoint"].endswith(".aliyuncs.com") and result["protocol"] in (None, "https")
    assert result["regions"] > 1 and result["vpc"].startswith("vpc-")
    assert result["requests"] == "MissingParameter"  # requests trusts the bundle by REQUESTS_CA_BUNDLE


def test_sdk_over_plain_http_with_the_public_names(cloud: LocalCloudProcess) -> None:
    code = """if True:
        import os
        from alibabacloud_ecs20140526.client import Client as Ecs
        from alibabacloud_ecs20140526 import models as ecs
        from alibabacloud_tea_openapi.models import Config
        e = Ecs(Config(access_key_id=os.environ["ALICLOUD_ACCESS_KEY"],
                       access_key_secret=os.environ["ALICLOUD_SECRET_KEY"],
                       region_id="cn-hangzhou", endpoint="ecs-cn-hangzhou.aliyuncs.com", protocol="http"))
        print(len(e.describe_zones(ecs.DescribeZonesRequest(region_id="cn-hangzhou")).body.zones.zone))
    """
    done = run_python(code, shell_env(cloud))
    assert done.returncode == 0 and int(done.stdout) >= 1, done.stderr[-3000:]


def test_tls_for_a_name_is_verified_against_the_exported_bundle(cloud: LocalCloudProcess) -> None:
    context = ssl.create_default_context(cafile=str(bundle_file(cloud.state_dir)))
    with socket.create_connection(("127.0.0.1", cloud.port), timeout=10) as sock:
        sock.sendall(
            b"CONNECT vpc.cn-beijing.aliyuncs.com:443 HTTP/1.1\r\nHost: vpc.cn-beijing.aliyuncs.com:443\r\n\r\n"
        )
        assert sock.recv(1024).startswith(b"HTTP/1.1 200 ")
        with context.wrap_socket(sock, server_hostname="vpc.cn-beijing.aliyuncs.com") as tls:
            names = [v for _, v in tls.getpeercert()["subjectAltName"]]
            assert names == ["vpc.cn-beijing.aliyuncs.com"]
            tls.sendall(
                b"GET /?Format=JSON HTTP/1.1\r\nHost: vpc.cn-beijing.aliyuncs.com\r\nConnection: close\r\n\r\n"
            )
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    error = json.loads(body)
    assert head.startswith(b"HTTP/1.1 400") and error["RequestId"], answer
    assert error["HostId"] == "vpc.cn-beijing.aliyuncs.com"


@pytest.mark.parametrize(
    "request_for",
    [
        "GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
        "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
        "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        "CONNECT slb.aliyuncs.com:443 HTTP/1.1\r\nHost: slb.aliyuncs.com:443\r\n\r\n",
    ],
)
def test_any_other_host_is_refused_and_never_connected(
    cloud: LocalCloudProcess, bystander: tuple[int, list[bytes]], request_for: str
) -> None:
    port, seen = bystander
    answer = raw(cloud, request_for.format(port=port).encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"403", answer
    assert body.startswith(b"localcloud: ") and b"nothing was connected" in body, body
    assert seen == []


def test_a_proxy_request_for_localcloud_itself_is_answered(cloud: LocalCloudProcess) -> None:
    # The Tea SDKs send even loopback requests through HTTP_PROXY: they ignore NO_PROXY.
    answer = raw(
        cloud,
        f"GET {cloud.url}/console/state HTTP/1.1\r\nHost: {cloud.endpoint}\r\nConnection: close\r\n\r\n".encode(),
    )
    assert answer.startswith(b"HTTP/1.1 200 ") and b'"Regions"' in answer


def test_kiln_builds_with_the_exported_variables_alone(cloud: LocalCloudProcess, tmp_path: Path) -> None:
    # No KILN_ALICLOUD_ENDPOINT: kiln's client calls Alibaba's names over HTTPS, which this machine
    # reaches only through the proxy (there is no Internet here).
    template = {
        "builders": [
            {
                "type": "alicloud-ecs",
                "region": "cn-beijing",
                "image_name": f"proxied_{tmp_path.name[-8:]}",
                "source_image": "debian_12_x64_20G_kiln_20261128.vhd",
                "instance_type": "ecs.t5-lc1m1.small",
                "internet_charge_type": "PayByTraffic",
                "communicator": "none",
            }
        ]
    }
    (tmp_path / "t.json").write_text(json.dumps(template))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KILN_STATE_DIR": str(tmp_path / "state")}
    env.update(shell_env(cloud))
    done = subprocess.run(
        [sys.executable, "-m", "kiln", "build", "t.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "cn-beijing: m-" in done.stdout


def test_a_direct_request_is_answered_whatever_its_host_says(cloud: LocalCloudProcess) -> None:
    # Not a proxy request (origin-form): the Host header of a name this machine has is no reason to refuse.
    answer = raw(
        cloud, b"GET /?Format=JSON HTTP/1.1\r\nHost: build-host.example:8720\r\nConnection: close\r\n\r\n"
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and json.loads(body)["Code"] == "MissingParameter", answer
