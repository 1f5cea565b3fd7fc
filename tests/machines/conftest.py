"""Fixtures for machine tests: one base image per session (cached under the repo's .kiln/ so reruns
are instant), a state folder per test, an SSH key pair, and a plain OpenSSH client."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
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


def ssh_password(host: str, port: int, password: str, command: str, timeout: float = 120) -> str:
    """Run `command` as root, logging in with a password (asyncssh: OpenSSH's client takes none
    without a terminal); returns its output, asserting it succeeded."""
    import asyncio

    import asyncssh

    async def run() -> asyncssh.SSHCompletedProcess:
        async with asyncssh.connect(
            host, port, username="root", password=password, known_hosts=None, client_keys=None,
            agent_path=None, connect_timeout=30,
        ) as conn:  # fmt: skip
            return await conn.run(command, check=False, timeout=timeout)

    done = asyncio.run(run())
    assert done.exit_status == 0, f"{command!r} failed ({done.exit_status}): {done.stderr!r}"
    return str(done.stdout)


#: the example whose build the ISO tests run (and issue 13's import test reuses: `iso_build`)
ISO_EXAMPLE = REPO / "examples" / "qemu" / "iso"
ISO_ROOT_PASSWORD = "kilnroot"  # what its answer file sets


@pytest.fixture(scope="session")
def installer_iso(cache_root: Path) -> Path:
    """kiln's Debian installer ISO, built once into the test cache."""
    from kiln.machines.installer import build_installer_iso

    return build_installer_iso("debian-12-installer", progress=None)


def iso_template(folder: Path, iso: Path, boot_wait: str = "10s") -> Path:
    """The example (template and http/) copied into `folder`, its boot_wait set: 10 s, Packer's
    default, outlasts any boot menu's timeout (GRUB's default is 5 s), so a build that installs proves
    the menu waited for the typed command."""
    import json
    import shutil

    shutil.copytree(ISO_EXAMPLE / "http", folder / "http")
    template = json.loads((ISO_EXAMPLE / "debian.json").read_text())
    template["builders"][0]["boot_wait"] = boot_wait
    template["variables"] = {"iso_url": str(iso), "iso_checksum": f"file:{iso.with_name('SHA256SUMS')}"}
    (folder / "debian.json").write_text(json.dumps(template, indent=2))
    return folder / "debian.json"


@dataclass(frozen=True)
class IsoBuild:
    """One `kiln build` of the ISO example: what it printed, its debug log, and the disk it made."""

    returncode: int
    stdout: str
    stderr: str
    debug_log: str
    image: Path
    folder: Path


@pytest.fixture(scope="session")
def iso_build(installer_iso: Path, tmp_path_factory: pytest.TempPathFactory) -> IsoBuild:
    """The ISO example built once per session (minutes under TCG): tests that need an installed
    Debian disk (the e2e test, an import into localcloud) share it instead of installing twice."""
    folder = tmp_path_factory.mktemp("iso-build")
    template = iso_template(folder, installer_iso)
    log = folder / "kiln.log"
    env = {**os.environ, "KILN_STATE_DIR": str(folder / "state"), "KILN_LOG": "1", "KILN_LOG_PATH": str(log)}
    done = subprocess.run(
        [sys.executable, "-m", "kiln", "build", "-timestamp-ui", template.name],
        cwd=folder, capture_output=True, text=True, env=env, timeout=2400, check=False,
    )  # fmt: skip
    return IsoBuild(
        done.returncode, done.stdout, done.stderr, log.read_text(errors="replace") if log.exists() else "",
        folder / "output-debian" / "debian.qcow2", folder,
    )  # fmt: skip
