"""Whether the kiln process that owns something (a build's journal, a run's folder, a machine) still
runs, decided from what can be proven, never from what is merely absent.

An `Owner` is a process as seen from outside: its pid and kernel start time (a reused pid is not
mistaken for it), the host name, the boot id (a reboot ends every process) and the pid namespace
(a container's pid 12 is not the host's). Only a reader on the same host, boot and pid namespace can
look the process up; anyone else learns nothing from `/proc` and must go by a heartbeat instead.
A zombie (killed, not yet reaped by its parent, which in a container without an init may be never)
is dead.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


class Verdict(StrEnum):
    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"  #: another host, boot or pid namespace: /proc cannot tell


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: the fields start after the last ')'
    return stat[stat.rindex(")") + 2 :].split()


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None if there is no such process."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def started_by(pid: int, when: float) -> bool:
    """Whether `pid` started no later than `when` (a wall-clock time, 1 s of slack), so that a pid
    reused by a newer process is told from the one recorded then. True when it cannot be told."""
    ticks = process_start_time(pid)
    with contextlib.suppress(OSError, ValueError, StopIteration):
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
        if ticks is not None:
            return boot + ticks / os.sysconf("SC_CLK_TCK") <= when + 1.0
    return True


def running(pid: int, start_time: int | None) -> bool:
    """Whether `pid` is a running process (not a zombie) that started at `start_time` (if given)."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return start_time is None or int(fields[19]) == start_time


def boot_id() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return ""


def pid_namespace() -> str:
    with contextlib.suppress(OSError):
        return os.readlink("/proc/self/ns/pid")
    return ""


def host_name() -> str:
    return socket.gethostname()


@dataclass(frozen=True)
class Owner:
    pid: int
    start_time: int | None
    host: str
    boot_id: str = ""
    pid_ns: str = ""

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(pid, process_start_time(pid), host_name(), boot_id(), pid_namespace())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Owner:
        start = data.get("start_time")
        return cls(
            int(data.get("pid") or 0),
            int(start) if start is not None else None,
            str(data.get("host") or ""),
            str(data.get("boot_id") or ""),
            str(data.get("pid_ns") or ""),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def to_tag(self) -> str:
        """The owner as one tag value (at most 128 characters): `pid/start/boot id/pid namespace`."""
        start = "" if self.start_time is None else str(self.start_time)
        return f"{self.pid}/{start}/{self.boot_id}/{self.pid_ns.removeprefix('pid:')}"

    @classmethod
    def from_tag(cls, text: str, host: str) -> Owner | None:
        parts = text.split("/")
        if len(parts) != 4 or not parts[0].isdigit() or not (parts[1].isdigit() or not parts[1]):
            return None
        start = int(parts[1]) if parts[1] else None
        return cls(int(parts[0]), start, host, parts[2], f"pid:{parts[3]}" if parts[3] else "")

    def local(self) -> bool:
        """Whether this process can look the owner up: same host, boot and pid namespace."""
        return (
            self.pid > 0
            and self.host == host_name()
            and bool(self.boot_id)
            and self.boot_id == boot_id()
            and self.pid_ns == pid_namespace()
        )

    def verdict(self) -> Verdict:
        if not self.local():
            return Verdict.UNKNOWN
        return Verdict.ALIVE if running(self.pid, self.start_time) else Verdict.DEAD

    def describe(self) -> str:
        where = "this host" if self.host == host_name() else f"host {self.host or '?'}"
        return f"pid {self.pid} on {where}"
