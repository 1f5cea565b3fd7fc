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
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiln import paths
from kiln.errors import KilnError
from kiln.liveness import Owner, Verdict, boot_id, host_name, pid_namespace, started_by

TAG_KEY = "kiln-run-id"
#: The host the build runs on, and when it last said it was alive (refreshed while it runs).
HOST_TAG = "kiln-host"
HEARTBEAT_TAG = "kiln-heartbeat"
#: The build's process (pid, start time, boot id, pid namespace): a reader on the same machine can
#: prove from it that the build is gone, even without the journal.
OWNER_TAG = "kiln-owner"

#: Resource kinds, in the order a cleanup deletes them (dependents first); the OSS ones (an upload,
#: an object, a bucket the run made) are known from the journal only.
KINDS = (
    "eip", "instance", "image", "snapshot", "security_group", "vswitch", "vpc", "key_pair",
    "oss_multipart", "oss_object", "oss_bucket",
)  # fmt: skip

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


def heartbeat_text(when: float) -> str:
    """A heartbeat as a tag value: UTC, to the second (`2026-12-02T00:45:12Z`)."""
    return datetime.fromtimestamp(int(when), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_heartbeat(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def run_tags(run_id: str) -> list[dict[str, str]]:
    """The tags every temporary resource of a run carries from its creation on."""
    return [
        {"Key": TAG_KEY, "Value": run_id},
        {"Key": HOST_TAG, "Value": host_name()},
        {"Key": OWNER_TAG, "Value": Owner.current().to_tag()},
        {"Key": HEARTBEAT_TAG, "Value": heartbeat_text(time.time())},
    ]


class Journal:
    """One build's journal. Thread-safe; every change is on disk (fsynced) before it returns."""

    def __init__(self, run_id: str, region: str, endpoint: str | None, path: Path | None = None) -> None:
        self.run_id = run_id
        self.region = region
        self.endpoint = endpoint
        self.path = path or journal_dir() / f"{run_id}.json"
        self.owner = Owner.current()
        self.started = time.time()
        self.heartbeat = self.started
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

    def beat(self) -> None:
        """Say that the build is still alive (for readers that cannot look its process up)."""
        with self._lock:
            self.heartbeat = time.time()
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
            "pid": self.owner.pid,
            "host": self.owner.host,
            "owner": self.owner.to_json(),
            "started": self.started,
            "heartbeat": self.heartbeat,
            "status": self.status,
            "region": self.region,
            "endpoint": self.endpoint,
            "resources": [asdict(e) for e in self.entries],
        }

    def _save(self) -> None:
        data = json.dumps(self.to_json(), indent=1).encode()
        try:
            directory = paths.private_dir(self.path.parent)
            with paths.atomic_file(self.path, 0o600) as handle:
                handle.write(data)
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise KilnError(
                f"cannot write the build journal {self.path}: {exc.strerror or exc}",
                paths.disk_hint(exc, self.path),
            ) from exc

    @classmethod
    def load(cls, path: Path) -> Journal:
        data = json.loads(path.read_text())
        journal = cls(str(data["run_id"]), str(data.get("region") or ""), data.get("endpoint"), path)
        if isinstance(data.get("owner"), dict):
            journal.owner = Owner.from_json(data["owner"])
        else:  # written by an older kiln: pid and host only, taken as this boot's
            host = str(data.get("host") or "")
            local = host == host_name()
            journal.owner = Owner(
                int(data.get("pid") or 0),
                None,
                host,
                boot_id() if local else "",
                pid_namespace() if local else "",
            )
        journal.started = float(data.get("started") or 0)
        journal.heartbeat = float(data.get("heartbeat") or journal.started)
        journal.status = str(data.get("status") or RUNNING)
        journal.entries = [Entry(**e) for e in data.get("resources", [])]
        return journal

    def verdict(self) -> Verdict:
        """Whether the build that writes this journal still runs: ALIVE or DEAD when this process
        can look it up (same host, boot and pid namespace), else UNKNOWN (go by the heartbeat)."""
        if self.status != RUNNING:
            return Verdict.DEAD
        verdict = self.owner.verdict()
        if (
            verdict is Verdict.ALIVE
            and self.owner.start_time is None
            and not started_by(self.owner.pid, self.started)
        ):
            return Verdict.DEAD  # an older journal's pid, reused by a newer process
        return verdict


def all_journals() -> list[Journal]:
    journals = []
    directory = journal_dir()
    if not directory.is_dir():
        return []
    for path in sorted(directory.glob("*.json")):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            journals.append(Journal.load(path))
    return journals
