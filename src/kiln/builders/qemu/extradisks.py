"""The extra disks a build attaches beside the installer ISO, made on the fly as Packer makes them:

    cd = make_cd(CdSpec(files, content, label), work_dir, scratch, ui)              # an ISO (xorriso)
    floppy = make_floppy(FloppySpec(files, dirs, content, label), work_dir, scratch, ui)  # FAT12 (mtools)
    ...
    remove(cd, floppy)

Both are files in the build's scratch folder (BuildContext.scratch_dir, swept after a killed run);
None when there is nothing to put on them. No loop device or mount is used.

Packer's layout: on the CD, each `cd_files` entry that is a file lands at the root under its name,
a folder lands at the root with its name and everything under it (`dir/*` puts its content at the
root instead); symlinks are followed; globs (`*?[`) are expanded; `cd_content` (path -> text) is
written last, so it wins over a file of the same path; the label is `cd_label` (default `packer`), the
ISO has Rock Ridge and Joliet names. On the floppy (1.44 MB), `floppy_files` are copied flat to the
root (a folder's files too, without their folders), `floppy_dirs` recursively with their own name and
structure, then `floppy_content`; the label is `floppy_label` (default `packer`). Relative paths are
relative to the folder kiln runs in.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.errors import BuildError, MachineError

if TYPE_CHECKING:
    from kiln.core.ui import Ui

GLOB_CHARS = "*?["
FLOPPY_KB = 1440


@dataclass(frozen=True)
class CdSpec:
    files: Sequence[str] = ()
    content: Mapping[str, str] = field(default_factory=dict)
    label: str = ""

    @property
    def wanted(self) -> bool:
        return bool(self.files) or bool(self.content)


@dataclass(frozen=True)
class FloppySpec:
    files: Sequence[str] = ()
    dirs: Sequence[str] = ()
    content: Mapping[str, str] = field(default_factory=dict)
    label: str = ""

    @property
    def wanted(self) -> bool:
        return bool(self.files) or bool(self.dirs) or bool(self.content)


def expand(patterns: Sequence[str], work_dir: Path) -> list[Path]:
    """The paths a list of files, folders and globs names, in order (a glob's matches sorted)."""
    found: list[Path] = []
    for pattern in patterns:
        base = Path(pattern) if Path(pattern).is_absolute() else work_dir / pattern
        if any(c in pattern for c in GLOB_CHARS):
            found.extend(Path(p) for p in sorted(glob.glob(str(base))))
        else:
            found.append(base)
    return found


def path_problems(option: str, patterns: Sequence[str], work_dir: Path) -> list[str]:
    """Packer's check at validate time: every plain path exists (a glob may match nothing)."""
    what = {
        "cd_files": "CD disk file",
        "floppy_files": "Floppy disk file",
        "floppy_dirs": "Floppy disk directory",
    }
    problems = []
    for pattern in patterns:
        if any(c in pattern for c in GLOB_CHARS):
            continue
        path = Path(pattern) if Path(pattern).is_absolute() else work_dir / pattern
        if not path.exists():
            problems.append(f"Bad {what[option]} '{pattern}': no such file or directory")
        elif option == "floppy_dirs" and not path.is_dir():
            problems.append(f"Bad {what[option]} '{pattern}': not a directory")
    return problems


def content_problems(option: str, content: Mapping[str, str]) -> list[str]:
    problems = []
    for path in content:
        parts = [p for p in path.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            problems.append(f'{option}: "{path}" is not a path inside the disk')
    return problems


def _content_files(content: Mapping[str, str], staging: Path) -> list[tuple[Path, str]]:
    """Each content entry written under `staging`; (file, its path on the disk)."""
    written = []
    for index, (disk_path, text) in enumerate(content.items()):
        source = staging / f"{index}"
        source.write_text(text)
        written.append((source, "/" + "/".join(p for p in disk_path.split("/") if p)))
    return written


def make_cd(spec: CdSpec, work_dir: Path, scratch: Path, ui: Ui) -> Path | None:
    from kiln.machines import command

    if not spec.wanted:
        return None
    ui.say("Creating CD disk...")
    label = spec.label or "packer"
    iso = scratch / "cd.iso"
    iso.unlink(missing_ok=True)  # xorriso writes a new ISO only onto nothing
    staging = scratch / "cd-content"
    staging.mkdir(parents=True, exist_ok=True)
    argv = ["xorriso", "-no_rc", "-abort_on", "FAILURE", "-outdev", str(iso), "-volid", label,
            "-joliet", "on", "-rockridge", "on", "-follow", "link"]  # fmt: skip
    for path in expand(spec.files, work_dir):
        if not path.exists():
            raise BuildError(f"cd_files: {path}: no such file or directory", "fix cd_files")
        argv += ["-map", str(path), f"/{path.name}"]
    for source, disk_path in _content_files(spec.content, staging):
        argv += ["-map", str(source), disk_path]  # after the files: cd_content wins
    try:
        command.run(
            argv, "making the CD (cd_files)", hint="check cd_files and cd_label (32 characters at most)"
        )
    except MachineError as exc:
        iso.unlink(missing_ok=True)
        raise BuildError(exc.message, exc.hint) from None
    finally:
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()
    ui.message("Done copying paths from CD_dirs")
    return iso


def make_floppy(spec: FloppySpec, work_dir: Path, scratch: Path, ui: Ui) -> Path | None:
    if not spec.wanted:
        return None
    ui.say("Creating floppy disk...")
    image = scratch / "floppy.img"
    image.unlink(missing_ok=True)
    staging = scratch / "floppy-content"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        label = spec.label or "packer"
        _mtools(["mformat", "-i", str(image), "-C", "-f", str(FLOPPY_KB), "-v", label, "::"], "floppy_label")
        ui.message("Copying files flatly from floppy_files")
        for path in expand(spec.files, work_dir):
            if path.is_dir():
                ui.message(f"Copying directory: {path}")
                for root, _, names in sorted(os.walk(path, followlinks=True)):
                    for name in sorted(names):
                        _copy(image, Path(root) / name, f"::/{name}", "floppy_files")
                continue
            ui.message(f"Copying file: {path}")
            _copy(image, path, f"::/{path.name}", "floppy_files")
        ui.message("Done copying files from floppy_files")
        ui.message("Collecting paths from floppy_dirs")
        dirs = expand(spec.dirs, work_dir)
        ui.message(f"Resulting paths from floppy_dirs : [{' '.join(str(d) for d in dirs)}]")
        for folder in dirs:
            ui.message(f"Recursively copying : {folder}")
            _copy(image, folder, f"::/{folder.name}", "floppy_dirs", recursive=True)
        ui.message("Done copying paths from floppy_dirs")
        for source, disk_path in _content_files(spec.content, staging):
            parts = disk_path.strip("/").split("/")
            for depth in range(1, len(parts)):
                _mtools(
                    ["mmd", "-i", str(image), "-D", "s", "::/" + "/".join(parts[:depth])],
                    "floppy_content",
                    check=False,
                )
            _copy(image, source, f"::{disk_path}", "floppy_content")
    except BaseException:
        image.unlink(missing_ok=True)
        raise
    finally:
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()
    return image


def _copy(image: Path, source: Path, target: str, option: str, *, recursive: bool = False) -> None:
    if not source.exists():
        raise BuildError(f"{option}: {source}: no such file or directory", f"fix {option}")
    flags = ["-s"] if recursive else []
    _mtools(["mcopy", "-i", str(image), *flags, "-o", "-D", "o", str(source), target], option)


def _mtools(argv: list[str], option: str, *, check: bool = True) -> None:
    from kiln.machines import command

    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    try:
        command.run(
            argv,
            f"making the floppy ({option})",
            env=env,
            check=check,
            hint=f"check {option} (the floppy holds 1.44 MB)",
        )
    except MachineError as exc:
        raise BuildError(exc.message, exc.hint) from None


def remove(*disks: Path | None) -> None:
    """The cleanup of make_cd / make_floppy."""
    for disk in disks:
        if disk is not None:
            disk.unlink(missing_ok=True)
