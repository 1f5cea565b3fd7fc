"""Each machine's record of what it holds, so that a later kiln can remove what a killed one left.

A record is `state_dir()/machines/<id>/machine.json`: the owning process (pid and start time, so a
reused pid is not mistaken for it), and every process, mount, loop device and network namespace the
machine made, written down *before* or right after the resource exists. `sweep_stale()` releases
every resource of every record whose owner is gone, then the record and the machine's work folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from kiln import paths
from kiln.errors import MachineError
from kiln.liveness import process_start_time, running
from kiln.machines import command


def records_dir() -> Path:
    return paths.state_dir() / "machines"


def record_path(machine_id: str) -> Path:
    return records_dir() / machine_id / "machine.json"


class Record:
    """The live record of one machine; every change is written to disk at once."""

    def __init__(self, machine_id: str, runner: str, work_dir: Path, keep: Path | None = None) -> None:
        self.path = record_path(machine_id)
        paths.private_dir(self.path.parent)
        me = os.getpid()
        self.data: dict[str, Any] = {
            "id": machine_id,
            "runner": runner,
            "owner_pid": me,
            "owner_start": process_start_time(me),
            "work_dir": str(work_dir),
            "processes": [],
            "mounts": [],
            "loops": [],
            "netns": [],
        }
        if keep is not None:
            self.data["keep"] = str(keep)  # the disk that outlives the machine (MachineSpec.keep_disk)
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)

    def add(self, kind: str, value: Any) -> None:
        if kind == "processes":
            value = [value, process_start_time(value)]
        self.data[kind].append(value)
        self._write()

    def remove(self, kind: str, value: Any) -> None:
        self.data[kind] = [
            v for v in self.data[kind] if v != value and (kind != "processes" or v[0] != value)
        ]
        self._write()


def forget(machine_id: str) -> None:
    path = record_path(machine_id)
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()


# -- releasing resources (used by the runners and by the sweep; never raise) ----------------------------
def kill_process(pid: int, start_time: int | None, grace: float = 0.0) -> None:
    """SIGTERM (if grace) then SIGKILL `pid` and its process group if it leads one; wait for it to go."""
    if not running(pid, start_time):
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)  # a zombie child of ours: reap it
        return
    targets = [pid]
    with contextlib.suppress(OSError):
        if os.getpgid(pid) == pid:
            targets = [-pid]
    for sig in ([signal.SIGTERM] if grace else []) + [signal.SIGKILL]:
        for target in targets:
            with contextlib.suppress(OSError):
                os.kill(target, sig)
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            if not running(pid, start_time):
                return
            time.sleep(0.02)


def netns_pids(name: str) -> list[int]:
    result = command.run(["ip", "netns", "pids", name], f"listing the processes of {name}", check=False)
    return [int(p) for p in result.stdout.split()] if result.returncode == 0 else []


def delete_netns(name: str) -> None:
    """Kill whatever still lives in the namespace, then delete it."""
    if not Path("/run/netns", name).exists():
        return
    for _ in range(50):
        pids = netns_pids(name)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    command.run(["ip", "netns", "delete", name], f"deleting network namespace {name}", check=False)


def is_mounted(path: str) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split()[4] == target for line in mounts)


def unmount(path: str) -> None:
    for _ in range(20):
        if not is_mounted(path):
            return
        done = command.run(["umount", path], f"unmounting {path}", check=False)
        if done.returncode != 0:
            time.sleep(0.1)
    if is_mounted(path):
        command.run(["umount", "--lazy", path], f"unmounting {path}", check=False)


def detach_loop(device: str) -> None:
    command.run(["losetup", "-d", device], f"detaching {device}", check=False)


def loops_backed_by(folder: Path) -> list[str]:
    """Loop devices whose backing file lies in `folder` (catches one made just before a SIGKILL)."""
    try:
        argv = ["losetup", "--list", "--json", "--output", "NAME,BACK-FILE"]
        listing = command.run(argv, "listing loop devices", check=False)
        devices = json.loads(listing.stdout or "{}").get("loopdevices", [])
    except (MachineError, ValueError):  # no losetup: no loop devices either
        return []
    prefix = str(folder.resolve()) + "/"
    return [d["name"] for d in devices if str(d.get("back-file") or "").startswith(prefix)]


def release(data: dict[str, Any]) -> None:
    """Release everything a record lists, in reverse order of creation."""
    for pid, start in reversed(data.get("processes", [])):
        kill_process(pid, start)
    for name in data.get("netns", []):
        delete_netns(name)
    for mount in reversed(data.get("mounts", [])):
        unmount(mount)
    loops = list(data.get("loops", [])) + loops_backed_by(Path(data["work_dir"]))
    for device in dict.fromkeys(loops):
        detach_loop(device)


def remove_work_dir(work_dir: Path, keep: Path | None) -> None:
    """Remove a machine's folder, or, with `keep` (its disk, in that folder), all but that."""
    if keep is None:
        shutil.rmtree(work_dir, ignore_errors=True)
        return
    with contextlib.suppress(OSError):
        for entry in work_dir.iterdir():
            if entry == keep:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def sweep_stale() -> list[str]:
    """Remove what machines of dead kiln processes left behind; return the ids swept.

    Safe to call at any time: records of machines whose owner still runs are left alone.
    """
    swept: list[str] = []
    folder = records_dir()
    if not folder.is_dir():
        return swept
    for entry in sorted(folder.iterdir()):
        path = entry / "machine.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if running(int(data["owner_pid"]), data.get("owner_start")):
            continue
        release(data)
        remove_work_dir(Path(data["work_dir"]), Path(data["keep"]) if data.get("keep") else None)
        forget(data["id"])
        swept.append(str(data["id"]))
    return swept
