"""Fixtures for machine tests: one base image per session (cached under the repo's .kiln/ so reruns
are instant), a state folder per test, an SSH key pair, and a plain OpenSSH client."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cache_root() -> Iterator[Path]:
    root = Path(os.environ.get("KILN_TEST_CACHE_DIR", REPO / ".kiln" / "test-cache"))
    root.mkdir(parents=True, exist_ok=True)
    old = os.environ.get("KILN_CACHE_DIR")
    os.environ["KILN_CACHE_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("KILN_CACHE_DIR", None)
    else:
        os.environ["KILN_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def base_image(cache_root: Path) -> Path:
    from kiln.machines.baseimage import build_base_image

    return build_base_image("debian-12", "raw")


@pytest.fixture(autouse=True)
def machine_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("KILN_STATE_DIR", str(state))
    return state


#: sshd answers before the rest of the boot is done (as on a cloud): a check of a service the image
#: starts at boot waits for the boot to finish first
BOOTED_PING = "systemctl is-system-running --wait >/dev/null; redis-cli ping"


@pytest.fixture
def ssh_key(tmp_path: Path) -> Path:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def ssh(
    host: str, port: int, key: Path, command: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `command` on the machine as root with the OpenSSH client; never asks anything."""
    argv = [
        "ssh", "-i", str(key), "-p", str(port),
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
        "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "IdentitiesOnly=yes",
        f"root@{host}", command,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def ssh_ok(host: str, port: int, key: Path, command: str, timeout: float = 600) -> str:
    done = ssh(host, port, key, command, timeout)
    assert done.returncode == 0, f"{command!r} failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed machine test shows the end of every console log and stall report its machines kept (a
    machine that never answered keeps them in state_dir()/logs/): CI's only view of a boot."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    state = getattr(item, "funcargs", {}).get("machine_state")
    if not report.failed or not isinstance(state, Path):
        return
    for log in sorted((state / "logs").glob("*")):
        lines = log.read_text(errors="replace").splitlines()[-80:]
        report.sections.append((f"{log.name} (last {len(lines)} lines)", "\n".join(lines)))
