"""The state folder: a folder given with --state keeps its mode; what kiln creates is private."""

from __future__ import annotations

import stat
import subprocess
import sys
import uuid
from pathlib import Path

from kiln.localcloud import start


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


STATE_FILES = (
    "localcloud.sqlite3",
    "localcloud.sqlite3-wal",
    "localcloud.sqlite3-shm",
    "lock",
    "server.json",
)


def test_an_existing_folder_keeps_its_mode_and_the_state_files_are_private(state_root: Path) -> None:
    shared = state_root / f"shared-{uuid.uuid4().hex[:6]}"
    shared.mkdir()
    shared.chmod(0o755)
    with start(shared, runner="none"):
        assert mode(shared) == 0o755
        for name in (*STATE_FILES, "server.log"):
            assert mode(shared / name) == 0o600, name
        for folder in ("images", "instances"):
            assert mode(shared / folder) == 0o700, folder
    assert mode(shared) == 0o755


def test_a_folder_kiln_creates_is_private(state_root: Path) -> None:
    created = state_root / f"new-{uuid.uuid4().hex[:6]}" / "state"
    with start(created, runner="none"):
        assert mode(created) == mode(created.parent) == 0o700


def test_cli_commands_leave_an_existing_folders_mode_alone(state_root: Path) -> None:
    shared = state_root / f"shared-{uuid.uuid4().hex[:6]}"
    shared.mkdir()
    shared.chmod(0o751)
    done = subprocess.run(
        [sys.executable, "-m", "kiln", "localcloud", "keys", "list", "--state", str(shared)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert mode(shared) == 0o751
    assert mode(shared / "localcloud.sqlite3") == 0o600
