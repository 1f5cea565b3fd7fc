"""Fixtures: a real localcloud server process (record-only instances unless a test boots machines) and
official Tea SDK clients pointed at it over HTTP."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi.models import Config
from alibabacloud_vpc20160428.client import Client as VpcClient

from kiln.localcloud import LocalCloudProcess, start

REGION = "cn-beijing"


@pytest.fixture(scope="session")
def state_root() -> Iterator[Path]:
    # Not under pytest's basetemp: concurrent pytest runs on this host prune each other's basetemp
    # folders, which would pull the state from under a running server.
    root = Path(tempfile.mkdtemp(prefix="kiln-localcloud-test-"))
    old = os.environ.get("KILN_STATE_DIR")
    os.environ["KILN_STATE_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("KILN_STATE_DIR", None)
    else:
        os.environ["KILN_STATE_DIR"] = old
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def no_traceback_logged(state_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Over the whole run, no localcloud the tests started logged a traceback: every server keeps its
    server.log in its state folder, under `state_root` or pytest's temporary folder."""
    yield
    logs = [*state_root.rglob("server.log"), *tmp_path_factory.getbasetemp().rglob("server.log")]
    found = {str(log): text for log in logs if "Traceback" in (text := log.read_text(errors="replace"))}
    assert not found, "\n".join(f"{name}:\n{text[-3000:]}" for name, text in found.items())


@pytest.fixture(scope="session")
def cloud(state_root: Path) -> Iterator[LocalCloudProcess]:
    """One record-only server shared by the API tests (each test makes its own resources)."""
    with start(state_root / "api", runner="none") as process:
        yield process
    # Background work (starts, stops, disk saves) logs its failures instead of answering them.
    log = (state_root / "api" / "server.log").read_text()
    assert "Traceback" not in log, log[-3000:]


def config(
    cloud: LocalCloudProcess,
    v1: bool = False,
    secret: str | None = None,
    key_id: str | None = None,
    token: str | None = None,
) -> Config:
    cfg = Config(
        access_key_id=key_id or cloud.access_key_id,
        access_key_secret=secret or cloud.secret,
        region_id=REGION,
        endpoint=cloud.endpoint,
        protocol="http",
        read_timeout=60000,
        connect_timeout=5000,
    )
    if token:
        cfg.security_token = token
    if v1:
        cfg.signature_algorithm = "v2"  # the Tea SDKs' name for the V1 HMAC-SHA1 signature
    return cfg


@pytest.fixture(params=["v3", "v1"])
def ecs(request: pytest.FixtureRequest, cloud: LocalCloudProcess) -> EcsClient:
    return EcsClient(config(cloud, v1=request.param == "v1"))


@pytest.fixture
def ecs3(cloud: LocalCloudProcess) -> EcsClient:
    return EcsClient(config(cloud))


@pytest.fixture
def vpc(cloud: LocalCloudProcess) -> VpcClient:
    return VpcClient(config(cloud))


@pytest.fixture
def name() -> Callable[[str], str]:
    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make


def error_of(fn: Callable[[], Any]) -> Any:
    """Run an SDK call that must fail; return the SDK's exception (it has .code and .status_code)."""
    try:
        fn()
    except Exception as err:  # the Tea SDK raises ClientException / ServerException
        return err
    raise AssertionError("the call succeeded but should have failed")


def shell_env(cloud: LocalCloudProcess) -> dict[str, str]:
    """Exactly the variables `kiln localcloud env` prints, as a shell's eval would set them."""
    done = subprocess.run(
        [sys.executable, "-m", "kiln", "localcloud", "env", "--state", str(cloud.state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    words = shlex.split(done.stdout)
    assert words[0] == "export", done.stdout
    return dict(word.split("=", 1) for word in words[1:])
