"""Cache keys, chained like osbuild's stage ids.

key0 = hash(builder type, the resolved source, the builder options that change the disk);
key_i = hash(key_{i-1}, provisioner i's type and keyed options, the content of every local file it
sends, its environment). Which options count is declared once, with each option (`option(cache=...)`
in kiln.config): True (the default: a changed value may change the disk), False (names, tags,
descriptions, output paths, timeouts: changing them invalidates nothing), "file" (local paths whose
content is sent, hashed by content: a file, or a folder with its names, modes and symlinks).

A provisioner with `cache = false` has no key, and neither has any provisioner after it (its effect
may differ at every run, so nothing built on it can be reused).

The base disk of a qemu build is hashed once per path, size, mtime and inode: the digest is kept in
the cache folder (`digests.json`), so a 2 GB disk is not read again at every build.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln import paths

#: bumped when what goes into a key changes, so that old layers are not taken for new ones
VERSION = "kiln-cache-1"


def cache_root() -> Path:
    """The cache folder: everything in it can be deleted by hand at any time."""
    return paths.cache_dir() / "build-cache"


@dataclass(frozen=True)
class Source:
    """What a build starts from, resolved: `token` identifies its content (a disk's digest, an
    ISO's checksum, an image id); `description` names it for people ("disk /x/base.qcow2")."""

    description: str
    token: str


@dataclass(frozen=True)
class StepKey:
    index: int  #: 1-based, as `kiln plan` and the UI number provisioners
    label: str  #: the provisioner's type (and name, in HCL2)
    key: str | None  #: None: not cached (cache = false, or after such a provisioner)
    options: str  #: digest of its keyed options and environment
    files: dict[str, str] = field(default_factory=dict)  #: local path as written -> content digest
    cache: bool = True  #: the provisioner's own `cache` setting


@dataclass(frozen=True)
class Chain:
    builder_type: str
    source: Source
    builder: str  #: digest of the builder's keyed options (and its files)
    key0: str
    steps: tuple[StepKey, ...]

    @property
    def final(self) -> str | None:
        """The key of the finished disk: after every provisioner (None when one is not cached)."""
        last = self.steps[-1].key if self.steps else self.key0
        return None if last is None else digest("final", last)


def digest(*parts: Any) -> str:
    """sha256 of the canonical JSON of `parts` (sorted keys, no spaces)."""
    text = json.dumps([VERSION, *parts], sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()


def short(key: str | None) -> str:
    return key[:12] if key else "-"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def keyed_options(config: Any) -> tuple[dict[str, Any], list[str]]:
    """The options of `config` that count for the cache (see the module's doc), and the local paths
    named by its `cache="file"` options. Nested option objects are read the same way."""
    values: dict[str, Any] = {}
    files: list[str] = []
    if config is None:
        return values, files
    for f in dataclasses.fields(config):
        role = f.metadata.get("cache", True)
        if role is False:
            continue
        value = getattr(config, f.name)
        if role == "file":
            files += [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str) and v]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            inner, inner_files = keyed_options(value)
            values[f.name], files = inner, files + inner_files
        elif isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            items = [keyed_options(v) for v in value]
            values[f.name] = [v for v, _ in items]
            files += [p for _, fs in items for p in fs]
        else:
            values[f.name] = value
    return values, files


def content_digest(path: Path) -> str:
    """The content of a file, or of a folder (names, modes, file contents, symlink targets), or
    "missing"."""
    try:
        info = path.lstat()
    except OSError:
        return "missing"
    if stat.S_ISLNK(info.st_mode):
        return digest("link", os.readlink(path))
    if stat.S_ISDIR(info.st_mode):
        h = hashlib.sha256(b"dir\0")
        for root, dirs, names in os.walk(path):
            dirs.sort()
            for name in sorted(dirs + names):
                full = Path(root, name)
                rel = full.relative_to(path).as_posix()
                mode = full.lstat().st_mode
                inner = "dir" if stat.S_ISDIR(mode) else content_digest(full)
                h.update(f"{rel}\0{stat.S_IMODE(mode):o}\0{inner}\n".encode())
        return h.hexdigest()
    return _file_digest(path, info.st_mode)


def _file_digest(path: Path, mode: int) -> str:
    h = hashlib.sha256(f"file {stat.S_IMODE(mode) & 0o111:o}\0".encode())
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def disk_digest(path: Path) -> str:
    """The content digest of a (large) disk image, remembered by path, size, mtime and inode."""
    real = path.resolve()
    info = real.stat()
    memo_key = f"{real} {info.st_size} {info.st_mtime_ns} {info.st_ino}"
    memo = cache_root() / "digests.json"
    known: dict[str, str] = {}
    try:
        loaded = json.loads(memo.read_text())
        known = loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError):
        pass
    found = known.get(memo_key)
    if isinstance(found, str):
        return found
    value = _sparse_digest(real)
    known = {k: v for k, v in known.items() if not k.startswith(f"{real} ")}
    known[memo_key] = value
    try:
        paths.private_dir(memo.parent)
        with paths.atomic_file(memo, 0o600) as handle:
            handle.write(json.dumps(known, sort_keys=True).encode())
    except OSError:
        pass  # a cache of a cache: the digest is right either way
    return value


def _sparse_digest(path: Path) -> str:
    """The digest of a (sparse) file's data regions and where they are: holes are not read."""
    h = hashlib.sha256(b"sparse\0")
    with open(path, "rb") as handle:
        fd, end, offset = handle.fileno(), os.fstat(handle.fileno()).st_size, 0
        h.update(f"{end}\n".encode())
        while offset < end:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:  # only holes are left (ENXIO)
                break
            stop = os.lseek(fd, start, os.SEEK_HOLE)
            h.update(f"@{start}\n".encode())
            handle.seek(start)
            left = stop - start
            while left > 0 and (chunk := handle.read(min(left, 1 << 20))):
                h.update(chunk)
                left -= len(chunk)
            offset = stop
    return h.hexdigest()


@dataclass(frozen=True)
class ProvisionerInput:
    """What a provisioner brings to its key."""

    label: str
    type: str
    config: Any
    cache: bool = True
    env: Mapping[str, str] = field(default_factory=dict)


def files_of(names: Sequence[str], work_dir: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        local = Path(name) if Path(name).is_absolute() else work_dir / name
        out[name] = content_digest(local)
    return out


def chain(
    builder_type: str,
    source: Source,
    builder_config: Any,
    provisioners: Sequence[ProvisionerInput],
    work_dir: Path,
) -> Chain:
    values, names = keyed_options(builder_config)
    builder = digest(values, files_of(names, work_dir))
    key0 = digest("source", builder_type, source.token, builder)
    steps: list[StepKey] = []
    previous: str | None = key0
    for index, prov in enumerate(provisioners, 1):
        values, names = keyed_options(prov.config)
        options = digest(prov.type, values, dict(prov.env))
        files = files_of(names, work_dir)
        key = None
        if previous is not None and prov.cache:
            key = digest("step", previous, options, files)
        steps.append(StepKey(index, prov.label, key, options, files, prov.cache))
        previous = key
    return Chain(builder_type, source, builder, key0, tuple(steps))
