"""Debian base disk images built from Debian's packages, cached by recipe.

The disk: an MBR partition table with one bootable ext4 partition labelled `root` from sector 2048,
GRUB (i386-pc) in the MBR gap, booting `/vmlinuz` with the console on ttyS0. It is made without loop
devices, mounts or root: mmdebstrap builds the tree (unshare mode for ordinary users), then
`mkfs.ext4 -E offset -d` writes the file system straight into the partition and `dd` places GRUB's
boot.img and core.img. The kernel is Debian's cloud flavour (small, virtio built for VMs).

A recipe is every input that shapes the disk (packages, mirrors, guest files, size, this builder's
version); its hash names the cache folder `cache_dir()/baseimages/<name>-<hash>/`, holding
`disk.raw` (the canonical image; sparse) and, on demand, `disk.qcow2`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from kiln import paths
from kiln.errors import MachineError
from kiln.machines import command, guestfiles
from kiln.machines.spec import ImageFormat

RECIPE_VERSION = 1
GRUB_MODULES = "biosdisk part_msdos ext2 normal linux configfile search search_label search_fs_uuid echo test serial terminal"


@dataclass(frozen=True)
class Recipe:
    name: str
    suite: str
    packages: tuple[str, ...]
    mirrors: tuple[str, ...]
    size_bytes: int


RECIPES: dict[str, Recipe] = {
    "debian-12": Recipe(
        name="debian-12",
        suite="bookworm",
        packages=(
            "systemd-sysv",
            "systemd-resolved",
            "udev",
            "dbus",
            "openssh-server",
            "openssh-sftp-server",
            "linux-image-cloud-amd64",
            "initramfs-tools",
            "sudo",
            "iproute2",
            "ca-certificates",
            "netbase",
            "e2fsprogs",
            "fdisk",
            "procps",
            "mtools",
        ),
        mirrors=(
            "deb http://deb.debian.org/debian bookworm main",
            "deb http://deb.debian.org/debian bookworm-updates main",
            "deb http://deb.debian.org/debian-security bookworm-security main",
        ),
        size_bytes=4 << 30,
    )
}

Progress = Callable[[str], None]


def stderr_progress(line: str) -> None:
    sys.stderr.write(f"==> baseimage: {line}\n")
    sys.stderr.flush()


def parse_size(text: str) -> int:
    """'20G', '512M', '4096' (bytes) -> bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise MachineError(f"size {text!r} is not a size", "write it like 4G, 20G or 512M")
    unit = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[match.group(2).upper()]
    return int(match.group(1)) << unit


def recipe_hash(recipe: Recipe) -> str:
    blob = json.dumps(
        {
            "version": RECIPE_VERSION,
            "recipe": asdict(recipe),
            "files": guestfiles.FILES,
            "early_files": guestfiles.EARLY_FILES,
            "make_disk": guestfiles.MAKE_DISK,
            "grub_modules": GRUB_MODULES,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_base_image(
    name: str = "debian-12",
    fmt: ImageFormat = "raw",
    size: str | None = None,
    progress: Progress | None = stderr_progress,
) -> Path:
    """The cached image for `name` in `fmt`, built first if missing. Returns its path in the cache."""
    if name not in RECIPES:
        raise MachineError(f"unknown base image {name!r}", f"known: {', '.join(sorted(RECIPES))}")
    recipe = RECIPES[name]
    if size is not None:
        size_bytes = parse_size(size)
        if size_bytes < 2 << 30:
            raise MachineError(f"size {size} is too small for {name}", "give at least 2G")
        recipe = Recipe(**{**asdict(recipe), "size_bytes": size_bytes, "packages": recipe.packages})
    say = progress or (lambda _line: None)
    folder = paths.cache_dir() / "baseimages" / f"{name}-{recipe_hash(recipe)}"
    raw = folder / "disk.raw"
    target = raw if fmt == "raw" else folder / "disk.qcow2"
    if target.exists():
        say(f"using cached {target}")
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder / ".lock"):
        remove_leftovers(folder, say)
        if not raw.exists():
            _build_raw(recipe, raw, say)
        if fmt == "qcow2" and not target.exists():
            say("converting to qcow2")
            partial = target.with_suffix(".partial")
            command.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(partial)], "converting to qcow2")
            os.replace(partial, target)
    say(f"image ready: {target}")
    return target


def remove_leftovers(folder: Path, say: Progress) -> None:
    """Removes the work folders (kiln-baseimage-*) an interrupted build left in `folder`."""
    for leftover in folder.glob("kiln-baseimage-*"):
        say(f"removing {leftover.name}, left by an interrupted build")
        remove_tree(leftover)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_raw(recipe: Recipe, raw: Path, say: Progress) -> None:
    for tool, package in (
        ("mmdebstrap", "mmdebstrap"),
        ("mkfs.ext4", "e2fsprogs"),
        ("sfdisk", "fdisk"),
        ("grub-mkimage", "grub-common"),
        ("qemu-img", "qemu-utils"),
    ):
        if shutil.which(tool) is None:
            raise MachineError(f"{tool} is not installed", f"apt-get install {package}")
    if not Path("/usr/lib/grub/i386-pc/boot.img").exists():
        raise MachineError("GRUB's BIOS images are not installed", "apt-get install grub-pc-bin")
    began = time.monotonic()
    root = os.geteuid() == 0
    work = Path(tempfile.mkdtemp(prefix="kiln-baseimage-", dir=raw.parent))
    try:
        # mmdebstrap's unshared root is a subordinate id, not the user: it must reach the tree and
        # write the disk, kept in this folder with an unguessable name
        os.chmod(work, 0o755 if root else 0o711)
        tree = work / "rootfs"
        files = write_files(work / "files", guestfiles.FILES)
        early = write_files(work / "early", guestfiles.EARLY_FILES)
        script = work / "make-disk.sh"
        script.write_text(guestfiles.MAKE_DISK)
        core = work / "core.img"
        command.run(
            [
                "grub-mkimage",
                "-O",
                "i386-pc",
                "-o",
                str(core),
                "-p",
                "(hd0,msdos1)/boot/grub",
                *GRUB_MODULES.split(),
            ],
            "grub-mkimage",
        )
        mmdebstrap(recipe, tree, work, say, early)
        say(f"root file system ready after {time.monotonic() - began:.0f} s; writing the disk")
        partial = work / "disk.raw"
        with open(partial, "wb") as disk:
            disk.truncate(recipe.size_bytes)
        os.chmod(partial, 0o644 if root else 0o666)
        helper = [] if root else ["mmdebstrap", "--unshare-helper"]
        argv = ["sh", str(script), str(tree), str(partial), str(recipe.size_bytes // 512), str(files)]
        command.run([*helper, *argv, str(core)], "writing the disk", env={**os.environ, "TMPDIR": str(work)})
        os.chmod(partial, 0o644)
        os.replace(partial, raw)
    finally:
        remove_tree(work)
    say(f"built {raw} in {time.monotonic() - began:.0f} s")


def mmdebstrap(recipe: Recipe, tree: Path, work: Path, say: Progress, early: Path) -> None:
    """Debian's `recipe.suite` with `recipe.packages` into `tree` (root mode as root, else unshare
    mode; temporary files in `work`), the files of folder `early` copied in before the packages that
    build an initramfs are installed."""
    root = os.geteuid() == 0
    say(f"mmdebstrap {recipe.suite} ({'root' if root else 'unshare'} mode): downloading and installing")
    argv = [
        "mmdebstrap",
        f"--mode={'root' if root else 'unshare'}",
        "--variant=minbase",
        "--include=" + ",".join(recipe.packages),
        "--aptopt=Acquire::Retries 3",
        f'--essential-hook=cp -R --no-preserve=ownership "{early}"/. "$1"/',
        recipe.suite,
        str(tree),
        *recipe.mirrors,
    ]
    command.stream(
        argv,
        f"mmdebstrap {recipe.suite}",
        lambda line: say(line) if line.startswith(("I: ", "E: ", "W: ")) else None,
        hint="check that Debian's mirror http://deb.debian.org is reachable",
        env={**os.environ, "TMPDIR": str(work)},
    )


def remove_tree(path: Path) -> None:
    """rm -rf that first unmounts what a killed mmdebstrap (root mode) left mounted inside: a plain
    rmtree would walk into the chroot's bind-mounted /dev."""
    from kiln.machines.state import unmount

    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mountinfo") as mounts:
        targets = [line.split()[4] for line in mounts if line.split()[4].startswith(prefix)]
    for target in sorted(targets, key=len, reverse=True):
        unmount(target)
    with open("/proc/self/mountinfo") as mounts:
        if any(line.split()[4].startswith(prefix) for line in mounts):
            raise MachineError(f"cannot unmount what is mounted under {path}", "unmount it by hand")
    if os.geteuid() != 0 and shutil.which("mmdebstrap"):
        # a tree made in unshare mode belongs to subordinate ids: only the unshared user can remove it
        # (each entry by name: the unshared root may not list the user's own folder)
        entries = [str(entry) for entry in path.iterdir()] if path.is_dir() else []
        if entries:
            command.run(
                ["mmdebstrap", "--unshare-helper", "rm", "-rf", *entries], "removing the tree", check=False
            )
    shutil.rmtree(path, ignore_errors=True)


def write_files(folder: Path, files: dict[str, tuple[str, int]]) -> Path:
    """Writes guest files (path -> (content, mode), as kiln.machines.guestfiles reads them) under `folder`."""
    for rel, (content, mode) in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(mode)
    return folder
