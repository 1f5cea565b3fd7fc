"""The qemu builder's disk layers: qcow2 files in the cache folder, each the disk after one
provisioner, backed by the layer before it (the first by the build's source disk).

    build-cache/qemu/<run>-<n>.qcow2   a layer's file (named by the build that made it: never renamed,
                                       because the overlay above it names it in its header)
    build-cache/qemu/<key>.json        the index entry that makes it a layer: written (whole, under a
                                       temporary name, then linked into place without replacing
                                       anything) only once the file is complete, so a build killed
                                       mid-snapshot leaves a file no later build takes
    build-cache/qemu/run-<run>.lock    held (flock) by a running build: it lists the layer files the
                                       build stands on, which no prune removes while the lock is held

A layer is used only when its file and every file below it exist, so deleting anything by hand is
safe: what remains either still holds or is not used. Two builds of the same template may make the
same key at once: the first index wins, the other build's file is removed when it ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln import paths
from kiln.cache.keys import cache_root


def store_dir() -> Path:
    return cache_root() / "qemu"


@dataclass
class Layer:
    key: str
    file: str  #: the layer's file name in the store
    chain: list[str]  #: the files below it, bottom first (each in the store)
    base: str  #: the source disk at the bottom of the chain
    comments: list[str] = field(default_factory=list)  #: temporary SSH keys the builds put in it
    label: str = ""
    index: int = 0  #: the provisioner it follows (0: the finished disk)
    created: float = 0.0
    last_used: float = 0.0
    template: str = ""

    @property
    def path(self) -> Path:
        return store_dir() / self.file

    def size(self) -> int:
        with contextlib.suppress(OSError):
            return self.path.stat().st_size
        return 0

    def complete(self) -> bool:
        folder = store_dir()
        return (
            self.path.is_file()
            and all((folder / name).is_file() for name in self.chain)
            and Path(self.base).is_file()
        )


def _entry(key: str) -> Path:
    return store_dir() / f"{key}.json"


def find(key: str) -> Layer | None:
    """The complete layer for `key`, or None."""
    try:
        data: Any = json.loads(_entry(key).read_text())
        layer = Layer(**data)
    except (OSError, ValueError, TypeError):
        return None
    return layer if layer.key == key and layer.complete() else None


def all_layers() -> list[Layer]:
    found = []
    for entry in sorted(store_dir().glob("*.json")):
        layer = find(entry.stem)
        if layer is not None:
            found.append(layer)
    return found


def commit(layer: Layer) -> bool:
    """Index `layer` (its file is complete). False when another build indexed the key first."""
    folder = paths.private_dir(store_dir())
    layer.created = layer.last_used = time.time()
    tmp = folder / f".{layer.key}.{os.getpid()}.partial"
    with paths.atomic_file(tmp, 0o600) as handle:
        handle.write(json.dumps(layer.__dict__, sort_keys=True, indent=1).encode())
    try:
        os.link(tmp, _entry(layer.key))
    except FileExistsError:
        if find(layer.key) is not None:
            return False
        os.replace(tmp, _entry(layer.key))  # an incomplete entry (its files were deleted): replace it
        return True
    finally:
        tmp.unlink(missing_ok=True)
    return True


def touch(layer: Layer) -> None:
    """Say the layer was used now (prune keeps the most recently used)."""
    with contextlib.suppress(OSError):
        os.utime(_entry(layer.key))


def used(layer: Layer) -> float:
    with contextlib.suppress(OSError):
        return _entry(layer.key).stat().st_mtime
    return layer.created


class RunFiles:
    """A running build's hold on the store: the files it writes (named <run>-<n>.qcow2) and those it
    stands on (`stand_on`), which `remove_unused` leaves while the run lock is held."""

    def __init__(self, run: str) -> None:
        self.run = run
        folder = paths.private_dir(store_dir())
        self.lock_path = folder / f"run-{run}.lock"
        self._lock = open(self.lock_path, "a+")  # noqa: SIM115 - held until close()
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.count = 0

    def stand_on(self, layer: Layer) -> None:
        """The build uses `layer` (and what is below it) until it ends."""
        self._lock.write("".join(f"{name}\n" for name in [*layer.chain, layer.file] if name))
        self._lock.flush()

    def next(self) -> Path:
        self.count += 1
        return store_dir() / f"{self.run}-{self.count}.qcow2"

    def close(self) -> None:
        """Remove this run's files that no layer uses, and the run lock."""
        remove_unused(only_run=self.run)
        self._lock.close()
        self.lock_path.unlink(missing_ok=True)


def _referenced() -> set[str]:
    names: set[str] = set()
    for entry in store_dir().glob("*.json"):
        with contextlib.suppress(OSError, ValueError, TypeError):
            data = json.loads(entry.read_text())
            names.add(data["file"])
            names.update(data["chain"])
    return names


def _run_alive(run: str) -> bool:
    lock = store_dir() / f"run-{run}.lock"
    if not lock.exists():
        return False
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    lock.unlink(missing_ok=True)
    return False


def _in_use() -> set[str]:
    """The files running builds stand on (listed in their held run locks)."""
    names: set[str] = set()
    for lock in store_dir().glob("run-*.lock"):
        if _run_alive(lock.stem[len("run-") :]):
            with contextlib.suppress(OSError):
                names.update(line for line in lock.read_text().splitlines() if line)
    return names


def remove_unused(only_run: str = "") -> list[Path]:
    """Delete layer files no index entry uses: this run's (`only_run`), or those of every build that
    no longer runs; and entries whose files are gone."""
    folder = store_dir()
    if not folder.is_dir():
        return []
    referenced = _referenced() | _in_use()
    removed = []
    for path in folder.glob("*.qcow2"):
        run = path.name.rsplit("-", 1)[0]
        if path.name in referenced:
            continue
        if (only_run and run != only_run) or (not only_run and _run_alive(run)):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    if not only_run:
        for entry in folder.glob("*.json"):
            if find(entry.stem) is None:
                entry.unlink(missing_ok=True)
                removed.append(entry)
        for partial in folder.glob(".*.partial"):
            if time.time() - partial.stat().st_mtime > 3600:
                partial.unlink(missing_ok=True)
    return removed


def delete(layer: Layer) -> None:
    """Remove the layer's entry: no build starts from it any more. Its file goes with remove_unused
    once no other layer is built on it."""
    _entry(layer.key).unlink(missing_ok=True)
