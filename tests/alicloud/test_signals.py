"""Interrupted builds leave nothing: SIGINT at several points (kiln cleans up by itself), and SIGKILL
mid-build followed by `kiln cleanup` (from the journal and by tag)."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from kiln.localcloud import LocalCloudProcess

from .conftest import SEED_BUILDER, admin, inventory, kiln, leaks, popen_kiln, template


class Reader:
    """Collects a process's output on a thread, so a test can wait for a line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never came:\n" + "\n".join(self.lines))

    def finish(self, timeout: float = 180) -> str:
        self.proc.wait(timeout)
        self._thread.join(10)
        return "\n".join(self.lines)


def _builder() -> dict[str, Any]:
    return {
        **SEED_BUILDER,
        "image_name": f"sig_{uuid.uuid4().hex[:8]}",
        "communicator": "none",
        "temporary_key_pair_name": f"packer_{uuid.uuid4()}",
    }


def _interrupted_build(
    cloud_env: dict[str, str], tmp_path: Path, line: str, sig: signal.Signals, settle: float = 0.0
) -> tuple[int, str]:
    """Starts a build, sends `sig` `settle` seconds after `line` comes, waits for the end: the exit
    status and the output."""
    path = template(tmp_path, _builder())
    reader = Reader(popen_kiln("build", str(path), env=cloud_env, cwd=tmp_path))
    try:
        reader.wait_for(line)
        if settle:
            time.sleep(settle)
        reader.proc.send_signal(sig)
        out = reader.finish()
    finally:
        if reader.proc.poll() is None:
            reader.proc.kill()
    return reader.proc.returncode, out


# (line to wait for, action to slow down so that the interrupt lands there)
POINTS = [
    ("Creating vpc", "CreateVpc"),  # a create call in flight: its answer comes after the interrupt
    ("Starting instance:", "DescribeInstances"),  # waiting for the instance to run
    ("Waiting instance stopped:", "DescribeInstances"),
    ("Creating image:", "CreateImage"),  # the image is being made when the interrupt lands
]


@pytest.mark.parametrize(("line", "slow"), POINTS, ids=[p[1] + "@" + p[0].split()[-1] for p in POINTS])
def test_sigint_leaves_nothing(
    line: str, slow: str, cloud: LocalCloudProcess, cloud_env: dict[str, str], faults: Any, tmp_path: Path
) -> None:
    before = inventory(cloud)
    faults(TargetAction=slow, LatencyMs="1500")
    returncode, out = _interrupted_build(cloud_env, tmp_path, line, signal.SIGINT, settle=0.3)
    assert returncode == 1, out
    assert "Cleanly cancelled builds after being interrupted." in out, out
    assert leaks(cloud, before) == {}, out


def test_sigkill_then_cleanup_leaves_nothing(
    cloud: LocalCloudProcess, cloud_env: dict[str, str], faults: Any, tmp_path: Path, state_dir: Path
) -> None:
    before = inventory(cloud)
    faults(TargetAction="DescribeInstances", LatencyMs="2000")
    _interrupted_build(cloud_env, tmp_path, "Starting instance:", signal.SIGKILL)
    admin(cloud, "KilnClearFaults")
    left = leaks(cloud, before)
    assert {"vpc", "vswitch", "security_group", "instance", "key_pair", "eip"} <= set(left), left
    journal = json.loads(next((state_dir / "journal").glob("*.json")).read_text())
    assert journal["status"] == "running"  # the build never got to say otherwise

    dry = kiln("cleanup", "--stale", "--dry-run", env=cloud_env, cwd=tmp_path)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"Would delete instance {next(iter(left['instance']))}" in dry.stdout
    assert leaks(cloud, before) == left  # a dry run deletes nothing

    done = kiln("cleanup", "--stale", env=cloud_env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Deleting vpc" in done.stdout
    assert leaks(cloud, before) == {}
    again = kiln("cleanup", "--stale", env=cloud_env, cwd=tmp_path)
    assert again.returncode == 0 and "Nothing to clean up." in again.stdout, again.stdout + again.stderr
    assert cloud.secret not in done.stdout + done.stderr + dry.stdout + dry.stderr


def test_cleanup_by_tag_without_journal(
    cloud: LocalCloudProcess, cloud_env: dict[str, str], faults: Any, tmp_path: Path, state_dir: Path
) -> None:
    """The journal is lost too: `kiln cleanup --run-id ID --region R` finds the run's resources by tag."""
    before = inventory(cloud)
    faults(TargetAction="DescribeInstances", LatencyMs="2000")
    _interrupted_build(cloud_env, tmp_path, "Starting instance:", signal.SIGKILL)
    journal_file = next((state_dir / "journal").glob("*.json"))
    run_id = json.loads(journal_file.read_text())["run_id"]
    journal_file.unlink()
    assert leaks(cloud, before)
    done = kiln("cleanup", "--run-id", run_id, "--region", "cn-beijing", env=cloud_env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert leaks(cloud, before) == {}
