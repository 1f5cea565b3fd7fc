"""`kiln cleanup --stale` never harms a live build, wherever it runs from (another state folder, another
host), and takes a killed one at once (a zombie too); a run it cannot look up is stale only once its
heartbeat is old."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kiln.alicloud.journal import HEARTBEAT_TAG, parse_heartbeat
from kiln.localcloud import LocalCloudProcess

from .conftest import REGION, api, inventory, kiln, leaks, popen_kiln, template
from .test_signals import Reader, _builder

ELSEWHERE = "elsewhere-runner"


def cleanup_from(
    where: str, tmp_path: Path, cloud_env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """`kiln cleanup ARGS` run with a state folder of its own, on this host or (`where="host"`)
    on a host of another name (a UTS namespace whose host name differs)."""
    other = tmp_path / f"other-state-{where}"
    env = {**os.environ, **cloud_env, "KILN_STATE_DIR": str(other)}
    command = [sys.executable, "-m", "kiln", "cleanup", *args, "--region", REGION]
    if where == "host":
        command = ["unshare", "--uts", "--", "sh", "-c", f'hostname {ELSEWHERE} && exec "$@"', "sh", *command]
    return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def needs_root(where: str) -> None:
    if where == "host" and os.geteuid() != 0:
        pytest.skip("a host of another name needs a UTS namespace (root)")


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    """ECS says TagKey / TagValue, VPC Key / Value."""
    tags = (resource.get("Tags") or {}).get("Tag") or []
    return {t.get("TagKey", t.get("Key")): t.get("TagValue", t.get("Value")) for t in tags}


@pytest.mark.parametrize("where", ["state", "host"])
def test_stale_cleanup_elsewhere_leaves_a_running_build_alone(
    where: str, cloud: LocalCloudProcess, cloud_env: dict[str, str], faults: Any, tmp_path: Path
) -> None:
    needs_root(where)
    before = inventory(cloud)
    faults(TargetAction="DescribeInstances", LatencyMs="1500")
    reader = Reader(popen_kiln("build", str(template(tmp_path, _builder())), env=cloud_env, cwd=tmp_path))
    try:
        reader.wait_for("Starting instance:")
        done = cleanup_from(where, tmp_path, cloud_env, "--stale")
        out = reader.finish()
    finally:
        if reader.proc.poll() is None:
            reader.proc.kill()
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "Deleting" not in said, said
    expected = "still running (pid" if where == "state" else "last heartbeat came "
    assert "Skipping run" in said and expected in said, said
    assert "Nothing to clean up." not in said, said  # runs skipped as alive are named instead
    assert reader.proc.returncode == 0, out
    image = json.loads((tmp_path / "state" / "journal").glob("*.json").__next__().read_text())
    kept = {r["id"] for r in image["resources"] if r["state"] == "kept"}
    assert kept and leaks(cloud, before, kept) == {}, out


def test_a_killed_build_elsewhere_is_stale_once_its_heartbeat_is_old(
    cloud: LocalCloudProcess, cloud_env: dict[str, str], faults: Any, tmp_path: Path
) -> None:
    needs_root("host")
    before = inventory(cloud)
    faults(TargetAction="DescribeInstances", LatencyMs="2000")
    reader = Reader(popen_kiln("build", str(template(tmp_path, _builder())), env=cloud_env, cwd=tmp_path))
    reader.wait_for("Starting instance:")
    reader.proc.kill()
    reader.finish()
    left = leaks(cloud, before)
    assert {"vpc", "instance", "key_pair"} <= set(left), left

    fresh = cleanup_from("host", tmp_path, cloud_env, "--stale")
    assert fresh.returncode == 0 and "Skipping run" in fresh.stdout, fresh.stdout + fresh.stderr
    assert leaks(cloud, before) == left
    run_id = fresh.stdout.split("Skipping run ")[1].split(":")[0]
    refused = cleanup_from("host", tmp_path, cloud_env, "--run-id", run_id)
    assert refused.returncode == 1 and "may still be running" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr

    time.sleep(2.1)
    old = cleanup_from("host", tmp_path, cloud_env, "--stale", "--older-than", "2s")
    assert old.returncode == 0, old.stdout + old.stderr
    assert f"Deleting vpc {next(iter(left['vpc']))}" in old.stdout, old.stdout
    assert leaks(cloud, before) == {}


def test_cleanup_right_after_kill_9_takes_the_zombie_build(
    cloud: LocalCloudProcess, cloud_env: dict[str, str], faults: Any, tmp_path: Path
) -> None:
    """The killed build is not reaped (its parent, this test, waits for nothing yet): a zombie."""
    before = inventory(cloud)
    faults(TargetAction="DescribeInstances", LatencyMs="2000")
    proc = popen_kiln("build", str(template(tmp_path, _builder())), env=cloud_env, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "Starting instance:" in line:
                break
        os.kill(proc.pid, signal.SIGKILL)
        time.sleep(1.0)
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
        assert stat.rsplit(")", 1)[1].split()[0] == "Z", stat  # still there, as a zombie
        left = leaks(cloud, before)
        assert {"vpc", "vswitch", "security_group", "instance", "key_pair", "eip"} <= set(left), left
        done = kiln("cleanup", "--stale", env=cloud_env, cwd=tmp_path)
    finally:
        proc.kill()
        proc.wait()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Nothing to clean up" not in done.stdout, done.stdout
    assert leaks(cloud, before) == {}, done.stdout


def test_a_running_build_refreshes_its_heartbeat(
    cloud: LocalCloudProcess, cloud_env: dict[str, str], faults: Any, tmp_path: Path, state_dir: Path
) -> None:
    faults(TargetAction="CreateImage", LatencyMs="7000")  # the build waits there, holding everything
    env = {**cloud_env, "KILN_HEARTBEAT_SECONDS": "1"}
    reader = Reader(popen_kiln("build", str(template(tmp_path, _builder())), env=env, cwd=tmp_path))
    try:
        reader.wait_for("Creating image:")
        c = api(cloud)
        vpc = c.call("DescribeVpcs", {"Tag": [{"Key": "kiln-run-id"}]})["Vpcs"]["Vpc"][0]
        first = parse_heartbeat(_tags(vpc)[HEARTBEAT_TAG])
        journal = json.loads(next((state_dir / "journal").glob("*.json")).read_text())
        time.sleep(3.5)
        vpc = c.call("DescribeVpcs", {"VpcId": vpc["VpcId"]})["Vpcs"]["Vpc"][0]
        instance = c.call("DescribeInstances", {"Tag": [{"Key": "kiln-run-id"}]})["Instances"]["Instance"][0]
        later = json.loads(next((state_dir / "journal").glob("*.json")).read_text())
        out = reader.finish()
    finally:
        if reader.proc.poll() is None:
            reader.proc.kill()
    assert reader.proc.returncode == 0, out
    assert first is not None
    refreshed = parse_heartbeat(_tags(vpc)[HEARTBEAT_TAG])
    assert refreshed is not None and refreshed >= first + 2, (first, refreshed)
    assert (parse_heartbeat(_tags(instance)[HEARTBEAT_TAG]) or 0) >= first + 2, _tags(instance)
    assert later["heartbeat"] >= journal["heartbeat"] + 2
    assert _tags(vpc)["kiln-host"] == os.uname().nodename


def test_bad_older_than_and_heartbeat_setting(cloud_env: dict[str, str], tmp_path: Path) -> None:
    bad = kiln("cleanup", "--stale", "--older-than", "soon", env=cloud_env, cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("Error: --older-than 'soon' is not a duration")
    assert "Traceback" not in bad.stderr
    env = {**cloud_env, "KILN_HEARTBEAT_SECONDS": "-3"}
    build = kiln("build", str(template(tmp_path, _builder())), env=env, cwd=tmp_path)
    assert (
        build.returncode == 1 and "KILN_HEARTBEAT_SECONDS='-3' is not a number" in build.stdout + build.stderr
    )
    assert "Traceback" not in build.stdout + build.stderr


def test_a_build_that_cannot_beat_says_so_once(
    cloud: LocalCloudProcess, cloud_env: dict[str, str], faults: Any, tmp_path: Path
) -> None:
    """Without the right to tag (a RAM policy without TagResources), the heartbeat cannot be
    refreshed: the build goes on, and says once what that means for cleanups elsewhere."""
    faults(TargetAction="CreateImage", LatencyMs="4000")
    faults(TargetAction="TagResources", Code="Forbidden.RAM", HttpStatus="403", Count="100")
    env = {**cloud_env, "KILN_HEARTBEAT_SECONDS": "1"}
    built = kiln("build", str(template(tmp_path, _builder())), env=env, cwd=tmp_path)
    out = built.stdout + built.stderr
    assert built.returncode == 0, out
    assert out.count("Cannot refresh this build's heartbeat tag") == 1, out
    assert "Forbidden.RAM" in out and "may take it for dead once it is 30m0s old" in out, out
