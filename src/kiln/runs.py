"""Each run's own folder on this host: `state_dir()/runs/<run uuid>/` (0700).

The private files a build makes here (the script written from `inline`, which may hold secrets)
go there, never in TMPDIR. The folder names its owner (liveness.Owner, in `owner.json`), is
removed when the run ends, and a run killed outright (SIGKILL) leaves it where the next
`kiln build` or `kiln cleanup --stale` finds it and removes it once its owner is provably gone.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
from pathlib import Path

from kiln import paths
from kiln.liveness import Owner, Verdict

OWNER_FILE = "owner.json"
_LOCK = threading.Lock()  # parallel builds of one run share its folder


def runs_dir() -> Path:
    return paths.state_dir() / "runs"


def run_dir(run_uuid: str) -> Path:
    """The run's folder, made (with its owner record) on first use."""
    folder = runs_dir() / run_uuid
    with _LOCK:
        if not (folder / OWNER_FILE).is_file():
            paths.private_dir(paths.private_dir(runs_dir()) / run_uuid)
            paths.write_private(folder / OWNER_FILE, json.dumps(Owner.current().to_json()).encode())
    return folder


def remove(run_uuid: str) -> None:
    shutil.rmtree(runs_dir() / run_uuid, ignore_errors=True)


def sweep_stale() -> list[str]:
    """Remove the folders of runs whose process is provably gone; return their run ids. A folder
    whose owner this process cannot look up (another host or pid namespace sharing the state
    folder) is left alone."""
    swept: list[str] = []
    folder = runs_dir()
    if not folder.is_dir():
        return swept
    for entry in sorted(folder.iterdir()):
        try:
            owner = Owner.from_json(json.loads((entry / OWNER_FILE).read_text()))
        except (OSError, ValueError, TypeError, AttributeError):
            continue  # being made right now, or not kiln's
        if owner.verdict() is Verdict.DEAD:
            shutil.rmtree(entry, ignore_errors=True)
            with contextlib.suppress(OSError):
                entry.rmdir()
            swept.append(entry.name)
    return swept
