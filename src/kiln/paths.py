"""Where kiln keeps caches (base images) and state (build journals, localcloud, machines).

Both follow the XDG base directory spec and can be moved with KILN_CACHE_DIR / KILN_STATE_DIR,
which the test suite does so that tests never touch a user's real folders.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def _xdg(env: str, fallback: str) -> Path:
    value = os.environ.get(env)
    return Path(value) if value else Path.home() / fallback


def cache_dir() -> Path:
    """Base images and other things that can be rebuilt: $KILN_CACHE_DIR or ~/.cache/kiln."""
    explicit = os.environ.get("KILN_CACHE_DIR")
    return Path(explicit) if explicit else _xdg("XDG_CACHE_HOME", ".cache") / "kiln"


def state_dir() -> Path:
    """Journals of running builds, localcloud state, running machines: $KILN_STATE_DIR or ~/.local/state/kiln."""
    explicit = os.environ.get("KILN_STATE_DIR")
    return Path(explicit) if explicit else _xdg("XDG_STATE_HOME", ".local/state") / "kiln"


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) readable by the owner only, and return it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, data: bytes) -> Path:
    """Write `data` to a new file at `path` readable by the owner only (an old file is replaced, never
    reopened: its mode could be wider), and return the path."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


def mount_point(path: Path) -> Path:
    """The mount point of the file system holding `path` (or its nearest existing parent)."""
    current = Path(os.path.abspath(path))
    while not current.exists() and current != current.parent:
        current = current.parent
    while not os.path.ismount(current) and current != current.parent:
        current = current.parent
    return current


def disk_hint(exc: OSError, path: Path) -> str | None:
    """A hint for an error writing `path` that is about its disk (full, over quota, read-only)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk holding {path.parent} (mounted at {mount_point(path)}) is full: free space there"
    if exc.errno == errno.EROFS:
        return f"the disk holding {path.parent} (mounted at {mount_point(path)}) is read-only"
    return None


def umask() -> int:
    """The process's umask, read (not set and restored: os.umask() races with threads making files)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


@contextlib.contextmanager
def atomic_file(path: Path, mode: int = 0o666) -> Iterator[BinaryIO]:
    """Write `path` whole or not at all: the block writes a temporary file beside it, which
    replaces `path` (with `mode` less the umask) when the block ends, and is removed if it fails, so
    a full disk or an interrupt never leaves a partial or empty file under the name."""
    import tempfile  # at run time only: validating a template stays fast

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
