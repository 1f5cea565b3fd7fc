"""Durable state: one SQLite file, with every resource also held in memory for fast reads.

The state folder may be one the user names (`--state DIR`): a folder that exists keeps its mode,
only the folders localcloud creates are made private (0700), and every file it keeps there (the
database with its -wal and -shm, which hold the secret keys; the lock; server.json; the log) is 0600.

Writes go straight to SQLite in WAL mode (each statement its own transaction), so a kill -9 loses
nothing that was acknowledged: the WAL lives in the OS page cache and survives the process. A write
reaches the database before the in-memory copy, and `get` hands out copies, so memory changes only
with what SQLite took. Reads come from the in-memory copy, which is why DescribeInstances stays fast
with thousands of instances. Only this process writes the file (the server holds a lock on the state folder).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS access_keys (
    access_key_id TEXT PRIMARY KEY, secret TEXT NOT NULL, security_token TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS resources (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS client_tokens (
    token_key TEXT PRIMARY KEY, params_hash TEXT NOT NULL, response TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS request_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, request_id TEXT NOT NULL,
    action TEXT NOT NULL, access_key_id TEXT NOT NULL, signature TEXT NOT NULL,
    status INTEGER NOT NULL, code TEXT NOT NULL, millis REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nonces (
    access_key_id TEXT NOT NULL, nonce TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (access_key_id, nonce)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_expires ON nonces (expires);
"""

_ALPHABET = string.ascii_lowercase + string.digits
LOG_KEEP = 20000


def state_folder(path: Path) -> Path:
    """`path`, and any missing parent, created owner-only (0700); a folder that exists keeps its mode."""
    missing = [p for p in (path, *path.parents) if not p.is_dir()]
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by someone else: theirs, its mode is theirs
        os.chmod(folder, 0o700)  # mkdir's mode is narrowed by the umask: make it exact
    return path


def private_file(path: Path, flags: int = os.O_RDWR) -> int:
    """A descriptor on `path`, created 0600 or narrowed to 0600 when it exists."""
    fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def new_id(prefix: str, length: int = 20) -> str:
    """Ids shaped like the real cloud's (`i-bp67acfmxazb4p2xxxxx`)."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    secret: str
    security_token: str | None = None

    def __repr__(self) -> str:  # never print the secret by accident
        return f"AccessKey({self.access_key_id!r}, sts={self.security_token is not None})"


@dataclass(frozen=True)
class LogEntry:
    time: float
    request_id: str
    action: str
    access_key_id: str
    signature: str
    status: int
    code: str
    millis: float


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        # SQLite gives the -wal and -shm files the database file's mode: make that 0600 first.
        os.close(private_file(path))
        for side in ("-wal", "-shm"):
            if Path(f"{path}{side}").exists():
                os.close(private_file(Path(f"{path}{side}")))
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        # kind -> id -> the stored JSON, and its parsed copy that readers share and never change
        self._texts: dict[str, dict[str, str]] = {}
        self._cache: dict[str, dict[str, dict[str, Any]]] = {}
        for rid, kind, data in self.db.execute("SELECT id, kind, data FROM resources"):
            self._texts.setdefault(kind, {})[rid] = data
            self._cache.setdefault(kind, {})[rid] = json.loads(data)
        self._logged = 0

    def close(self) -> None:
        self.db.close()

    # access keys -------------------------------------------------------------------------------
    def create_key(self, sts: bool = False) -> AccessKey:
        prefix = "STS.LC" if sts else "LTAILC"
        key = AccessKey(
            access_key_id=prefix
            + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(18)),
            secret=secrets.token_urlsafe(22),
            security_token=secrets.token_urlsafe(48) if sts else None,
        )
        self.db.execute(
            "INSERT INTO access_keys VALUES (?, ?, ?, ?)",
            (key.access_key_id, key.secret, key.security_token, time.time()),
        )
        return key

    def access_keys(self) -> list[AccessKey]:
        rows = self.db.execute(
            "SELECT access_key_id, secret, security_token FROM access_keys ORDER BY created"
        )
        return [AccessKey(*row) for row in rows]

    def key(self, access_key_id: str) -> AccessKey | None:
        row = self.db.execute(
            "SELECT access_key_id, secret, security_token FROM access_keys WHERE access_key_id = ?",
            (access_key_id,),
        ).fetchone()
        return AccessKey(*row) if row else None

    # resources ---------------------------------------------------------------------------------
    def put(self, kind: str, rid: str, data: Mapping[str, Any]) -> None:
        """Write the database first: when SQLite refuses, memory still holds what it holds."""
        text = json.dumps(data, separators=(",", ":"))
        self.db.execute("INSERT OR REPLACE INTO resources VALUES (?, ?, ?)", (rid, kind, text))
        self._texts.setdefault(kind, {})[rid] = text
        self._cache.setdefault(kind, {})[rid] = json.loads(text)

    def get(self, kind: str, rid: str) -> dict[str, Any] | None:
        """The caller's own copy (changing it changes nothing until it is `put`)."""
        text = self._texts.get(kind, {}).get(rid)
        return None if text is None else dict(json.loads(text))

    def all(self, kind: str) -> list[Mapping[str, Any]]:
        """Every resource of a kind, shared with other readers: read-only."""
        return list(self._cache.get(kind, {}).values())

    def delete(self, kind: str, rid: str) -> None:
        self.db.execute("DELETE FROM resources WHERE id = ?", (rid,))
        self._texts.get(kind, {}).pop(rid, None)
        self._cache.get(kind, {}).pop(rid, None)

    def count(self) -> dict[str, int]:
        return {kind: len(items) for kind, items in self._cache.items() if items}

    # idempotency -------------------------------------------------------------------------------
    def client_token(self, token_key: str) -> tuple[str, dict[str, Any]] | None:
        row = self.db.execute(
            "SELECT params_hash, response FROM client_tokens WHERE token_key = ?", (token_key,)
        ).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def save_client_token(self, token_key: str, params_hash: str, response: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO client_tokens VALUES (?, ?, ?, ?)",
            (token_key, params_hash, json.dumps(response), time.time()),
        )

    # signature nonces --------------------------------------------------------------------------
    def use_nonce(self, access_key_id: str, nonce: str, expires: float) -> bool:
        """Remember `nonce` until `expires`; False when it was used already (a replay)."""
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO nonces VALUES (?, ?, ?)", (access_key_id, nonce, expires)
        )
        return cursor.rowcount == 1

    def forget_nonces(self, before: float) -> int:
        """Drop the nonces whose requests can no longer be accepted anyway; how many went."""
        return self.db.execute("DELETE FROM nonces WHERE expires < ?", (before,)).rowcount

    # request log -------------------------------------------------------------------------------
    def log(self, entry: LogEntry) -> None:
        self.db.execute(
            "INSERT INTO request_log (time, request_id, action, access_key_id, signature, status, code, millis)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.time,
                entry.request_id,
                entry.action,
                entry.access_key_id,
                entry.signature,
                entry.status,
                entry.code,
                entry.millis,
            ),
        )
        self._logged += 1
        if self._logged % 1000 == 0:
            self.db.execute(
                "DELETE FROM request_log WHERE seq <= (SELECT MAX(seq) FROM request_log) - ?", (LOG_KEEP,)
            )

    def recent_requests(self, limit: int = 100) -> list[LogEntry]:
        rows = self.db.execute(
            "SELECT time, request_id, action, access_key_id, signature, status, code, millis"
            " FROM request_log ORDER BY seq DESC LIMIT ?",
            (limit,),
        )
        return [LogEntry(*row) for row in rows]

    # meta --------------------------------------------------------------------------------------
    def meta(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, name: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))
