"""A kiln killed with SIGKILL leaves machines running; `kiln cleanup --stale` removes all of it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kiln.machines import sweep_stale
from kiln.machines.state import is_mounted

pytestmark = [pytest.mark.machine, pytest.mark.slow]

HOLDER = """
import json, os, sys, time
from pathlib import Path
from kiln.machines import MachineSpec, create_machine
image = Path(sys.argv[1])
machines = [create_machine(MachineSpec(image=image, name="doomedvm"), "vm")]
if os.geteuid() == 0:
    machines.append(create_machine(MachineSpec(image=image, name="doomedns"), "namespace"))
report = []
for m in machines:
    m.start()
    report.append({"id": m.id, "work_dir": str(m.work_dir), "record": m.record.data})
print(json.dumps(report), flush=True)
time.sleep(600)
"""


def test_sweep_after_sigkill(base_image: Path, machine_state: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(base_image)],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert holder.stdout is not None
        report = json.loads(holder.stdout.readline())
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert report, "the holder started no machine"
    pids = [pid for m in report for pid, _ in m["record"]["processes"]]
    mounts = [path for m in report for path in m["record"]["mounts"]]
    netns = [name for m in report for name in m["record"]["netns"]]
    loops = [device for m in report for device in m["record"]["loops"]]
    # what the killed run left: machines still running
    assert pids and all(Path(f"/proc/{pid}").exists() for pid in pids)
    if os.geteuid() == 0:
        assert mounts and all(is_mounted(path) for path in mounts)
        assert netns and all(Path("/run/netns", name).exists() for name in netns)

    # what a user runs after a killed build
    cleanup = subprocess.run(
        [sys.executable, "-m", "kiln", "cleanup", "--stale"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    swept = re.findall(r"^Removed what machine (\S+) left", cleanup.stdout, re.M)

    assert sorted(swept) == sorted(m["id"] for m in report)
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().split(") ")[1].startswith("Z")
    assert not any(is_mounted(path) for path in mounts)
    assert not any(Path("/run/netns", name).exists() for name in netns)
    attached = subprocess.run(
        ["losetup", "--list", "--noheadings", "-O", "NAME"], capture_output=True, text=True
    )
    assert not set(loops) & set(attached.stdout.split())
    assert not any(Path(m["work_dir"]).exists() for m in report)
    assert not list((machine_state / "machines").glob("*/machine.json"))
    assert sweep_stale() == []
