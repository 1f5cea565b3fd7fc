"""The journal of a build's cloud resources: `state_dir()/journal/<run-id>.json`.

A build writes each temporary resource here the moment the API says it exists (and, before a create
call, that the call is about to be made), each write fsynced, so that a build killed at any instant
leaves behind a file saying what to delete. Every temporary resource also carries the tag
`kiln-run-id=<run-id>`, so `kiln cleanup` can find even a resource whose create response never
arrived. Images the build produced are marked `kept` when the build succeeds; cleanup leaves them.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kiln import paths

TAG_KEY = "kiln-run-id"

#: Resource kinds, in the order a cleanup deletes them (dependents first).
KINDS = ("eip", "instance", "image", "snapshot", "security_group", "vswitch", "vpc", "key_pair")

RUNNING, FINISHED, FAILED = "running", "finished", "failed"


@dataclass
class Entry:
    kind: str
    id: str  #: resource id (the key pair's name for key pairs); "" while pending
    region: str
    state: str = "created"  #: pending | created | deleted | kept
    token: str = ""  #: ClientToken of the create call
    time: float = field(default_factory=time.time)


def journal_dir() -> Path:
    return paths.state_dir() / "journal"


class Journal:
    """One build's journal. Thread-safe; every change is on disk (fsynced) before it returns."""

    def __init__(self, run_id: str, region: str, endpoint: str | None, path: Path | None = None) -> None:
        self.run_id = run_id
        self.region = region
        self.endpoint = endpoint
        self.path = path or journal_dir() / f"{run_id}.json"
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.started = time.time()
        self.status = RUNNING
        self.entries: list[Entry] = []
        self._lock = threading.Lock()

    # -- recording ---------------------------------------------------------------------------------

    def pending(self, kind: str, region: str, token: str) -> None:
        with self._lock:
            self.entries.append(Entry(kind, "", region, "pending", token))
            self._save()

    def created(self, kind: str, rid: str, region: str, token: str = "") -> None:
        with self._lock:
            for entry in self.entries:
                if token and entry.token == token and entry.state == "pending":
                    entry.id, entry.state, entry.time = rid, "created", time.time()
                    break
            else:
                self.entries.append(Entry(kind, rid, region, "created", token))
            self._save()

    def mark(self, kind: str, rid: str, state: str) -> None:
        with self._lock:
            for entry in self.entries:
                if entry.kind == kind and entry.id == rid:
                    entry.state = state
            self._save()

    def deleted(self, kind: str, rid: str) -> None:
        self.mark(kind, rid, "deleted")

    def forget_pending(self, token: str) -> None:
        """A create call failed for good: nothing was made with this token."""
        with self._lock:
            self.entries = [e for e in self.entries if not (e.state == "pending" and e.token == token)]
            self._save()

    def finish(self, status: str) -> None:
        with self._lock:
            self.status = status
            self._save()

    def leftovers(self) -> list[Entry]:
        return [e for e in self.entries if e.state in ("pending", "created")]

    # -- persistence -------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pid": self.pid,
            "host": self.host,
            "started": self.started,
            "status": self.status,
            "region": self.region,
            "endpoint": self.endpoint,
            "resources": [asdict(e) for e in self.entries],
        }

    def _save(self) -> None:
        directory = paths.private_dir(self.path.parent)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
        data = json.dumps(self.to_json(), indent=1).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @classmethod
    def load(cls, path: Path) -> Journal:
        data = json.loads(path.read_text())
        journal = cls(str(data["run_id"]), str(data.get("region") or ""), data.get("endpoint"), path)
        journal.pid = int(data.get("pid") or 0)
        journal.host = str(data.get("host") or "")
        journal.started = float(data.get("started") or 0)
        journal.status = str(data.get("status") or RUNNING)
        journal.entries = [Entry(**e) for e in data.get("resources", [])]
        return journal

    def is_alive(self) -> bool:
        """Whether the build that writes this journal still runs (on this host)."""
        if self.status != RUNNING or self.host != socket.gethostname() or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _process_started_before(self.pid, self.started)


def _process_started_before(pid: int, started: float) -> bool:
    """Guard against pid reuse: the process must be older than the journal."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK") <= started + 1.0
    return True


def all_journals() -> list[Journal]:
    journals = []
    directory = journal_dir()
    if not directory.is_dir():
        return []
    for path in sorted(directory.glob("*.json")):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            journals.append(Journal.load(path))
    return journals
