"""kiln's Debian installer ISO, made from Debian's `.deb` packages (Debian's mirror here serves no
`.udeb`, so debian-installer cannot fetch its components): for builds from an installer ISO.

The ISO (grub-mkrescue: BIOS and UEFI) shows a GRUB menu that waits for the user (no timeout). Its
kernel is Debian's cloud flavour, its initramfs a busybox that finds the ISO, mounts the Debian root file
system it carries (`live/filesystem.squashfs`) under a writable overlay, brings the network up by DHCP
and then runs the install script named by `url=` on the kernel command line (as Debian's preseed
`url=`), or gives a root shell (the Arch-style `curl URL | sh`). An install script partitions the
blank disk, makes a file system, copies the pristine root (`/run/live/rootfs`) onto it, and installs
GRUB there (guest/installer/init says what the live system offers; examples/qemu/iso/http/ has one).

Made without loop devices, mounts or root, like the base images (kiln.machines.baseimage, whose
mmdebstrap, lock and cache folder this shares), and cached by recipe: `cache_dir()/isoimages/
<name>-<hash>/` holds `installer.iso` and `SHA256SUMS` (for `iso_checksum = "file:..."`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from kiln import paths
from kiln.errors import MachineError
from kiln.machines import command, guestfiles
from kiln.machines.baseimage import (
    RECIPES,
    Progress,
    Recipe,
    locked,
    mmdebstrap,
    remove_leftovers,
    remove_tree,
    stderr_progress,
    write_files,
)

ISO_VERSION = 1
ISO_NAME = "installer.iso"
SUMS_NAME = "SHA256SUMS"
BUSYBOX = Path("/bin/busybox")
#: the drivers the initramfs loads (with what they need), in Debian's cloud kernel all modules: the
#: disc on IDE (the pc machine type's; the cloud kernel has no AHCI, q35's), SCSI or virtio, the network on
#: virtio, and the live system's file systems
MODULES = "ata_piix sr_mod sd_mod virtio_pci virtio_blk virtio_scsi virtio_net isofs squashfs overlay loop"
#: what a Debian install from this ISO needs besides a base system: a kernel, GRUB for BIOS and UEFI,
#: the tools that partition and format a disk, sshd, and curl (for `curl URL | sh`)
INSTALLER_PACKAGES = (
    "systemd-sysv",
    "udev",
    "dbus",
    "openssh-server",
    "linux-image-cloud-amd64",
    "initramfs-tools",
    "grub2-common",
    "grub-pc-bin",
    "grub-efi-amd64-bin",
    "e2fsprogs",
    "dosfstools",
    "fdisk",
    "iproute2",
    "netbase",
    "ca-certificates",
    "curl",
    "procps",
    "kmod",
)
ISO_RECIPES: dict[str, Recipe] = {
    "debian-12-installer": Recipe(
        name="debian-12-installer",
        suite="bookworm",
        packages=INSTALLER_PACKAGES,
        mirrors=RECIPES["debian-12"].mirrors,
        size_bytes=0,
    )
}
TOOLS = (
    ("mmdebstrap", "mmdebstrap"),
    ("mksquashfs", "squashfs-tools"),
    ("grub-mkrescue", "grub-common"),
    ("xorriso", "xorriso"),
    ("mformat", "mtools"),
    ("cpio", "cpio"),
)


def iso_hash(recipe: Recipe) -> str:
    """What names the ISO's cache folder: every input that shapes it."""
    busybox = hashlib.sha256(BUSYBOX.read_bytes()).hexdigest() if BUSYBOX.exists() else ""
    blob = json.dumps(
        {
            "version": ISO_VERSION,
            "recipe": asdict(recipe),
            "files": guestfiles.INSTALLER_FILES,
            "early_files": guestfiles.EARLY_FILES,
            "modules": MODULES,
            "busybox": busybox,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def iso_folder(name: str) -> Path:
    if name not in ISO_RECIPES:
        raise MachineError(f"unknown installer ISO {name!r}", f"known: {', '.join(sorted(ISO_RECIPES))}")
    recipe = ISO_RECIPES[name]
    return paths.cache_dir() / "isoimages" / f"{name}-{iso_hash(recipe)}"


def build_installer_iso(
    name: str = "debian-12-installer", progress: Progress | None = stderr_progress
) -> Path:
    """The cached installer ISO `name`, built first if missing. Returns its path in the cache."""
    folder = iso_folder(name)
    say = progress or (lambda _line: None)
    target = folder / ISO_NAME
    if target.exists():
        say(f"using cached {target}")
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder / ".lock"):
        remove_leftovers(folder, say)
        if not target.exists():
            _build(ISO_RECIPES[name], target, say)
    say(f"ISO ready: {target}")
    return target


def _build(recipe: Recipe, target: Path, say: Progress) -> None:
    for tool, package in TOOLS:
        if shutil.which(tool) is None:
            raise MachineError(f"{tool} is not installed", f"apt-get install {package}")
    if not BUSYBOX.exists():
        raise MachineError(f"{BUSYBOX} is not installed", "apt-get install busybox-static")
    began = time.monotonic()
    root = os.geteuid() == 0
    work = Path(tempfile.mkdtemp(prefix="kiln-baseimage-", dir=target.parent))
    try:
        os.chmod(work, 0o755 if root else 0o711)  # the unshared root (a subordinate id) writes in it
        tree, staging = work / "rootfs", work / "iso"
        files = write_files(work / "files", guestfiles.INSTALLER_FILES)
        early = write_files(work / "early", guestfiles.EARLY_FILES)
        mmdebstrap(recipe, tree, work, say, early)
        say(f"root file system ready after {time.monotonic() - began:.0f} s; making the ISO")
        helper = [] if root else ["mmdebstrap", "--unshare-helper"]
        env = {**os.environ, "TMPDIR": str(work)}
        command.run([*helper, "sh", str(files / "finish-tree.sh"), str(tree)], "finishing the tree", env=env)
        live = staging / "live"
        live.mkdir(parents=True)
        os.chmod(staging, 0o777)
        os.chmod(live, 0o777)
        kernel = _kernel(tree)
        shutil.copyfile(kernel, live / "vmlinuz")
        _initramfs(tree, kernel.name.removeprefix("vmlinuz-"), files, work / "initramfs", live / "initrd.img")
        squash = ["mksquashfs", str(tree), str(live / "filesystem.squashfs"), "-comp", "lz4", "-noappend"]
        command.run([*helper, *squash, "-quiet", "-no-progress"], "mksquashfs", env=env)
        (staging / "boot" / "grub").mkdir(parents=True)
        shutil.copyfile(files / "grub.cfg", staging / "boot" / "grub" / "grub.cfg")
        partial = work / ISO_NAME
        argv = ["grub-mkrescue", "-o", str(partial), str(staging), "--", "-volid", "KILN_INSTALLER"]
        command.run(argv, "grub-mkrescue", env=env)
        digest = _sha256(partial)
        os.chmod(partial, 0o644)
        os.replace(partial, target)
        with paths.atomic_file(target.with_name(SUMS_NAME), 0o644) as sums:
            sums.write(f"{digest}  {ISO_NAME}\n".encode())
    finally:
        remove_tree(work)
    say(f"built {target} in {time.monotonic() - began:.0f} s")


def _kernel(tree: Path) -> Path:
    kernels = sorted((tree / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise MachineError("the installer's root file system has no kernel", "check its packages")
    return kernels[-1]


def _initramfs(tree: Path, version: str, files: Path, folder: Path, out: Path) -> None:
    """A cpio archive (newc, uncompressed: the kernel unpacks it at once) of busybox, the init, its DHCP
    script and MODULES with what they depend on, in the order they load."""
    (folder / "bin").mkdir(parents=True)
    (folder / "modules").mkdir()
    shutil.copyfile(BUSYBOX, folder / "bin" / "busybox")
    os.chmod(folder / "bin" / "busybox", 0o755)
    (folder / "bin" / "sh").symlink_to("busybox")  # the init's interpreter
    for script in ("init", "udhcpc.script"):
        shutil.copyfile(files / script, folder / script)
        os.chmod(folder / script, 0o755)
    order = module_order(tree / "lib" / "modules" / version, MODULES.split())
    for rel in order:
        source = tree / "lib" / "modules" / version / rel
        if source.suffix != ".ko":
            raise MachineError(f"kernel module {source.name} is compressed", "busybox loads only .ko")
        shutil.copyfile(source, folder / "modules" / source.name)
    (folder / "modules" / "order").write_text("".join(f"{Path(rel).name}\n" for rel in order))
    names = sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))
    with open(out, "wb") as sink:
        done = subprocess.run(
            ["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"],
            input="\n".join(names).encode(),
            cwd=folder,
            stdout=sink,
            stderr=subprocess.PIPE,
            check=False,
        )
    if done.returncode != 0:
        raise MachineError(f"cpio failed: {done.stderr.decode(errors='replace').strip()}")


def module_order(modules: Path, wanted: list[str]) -> list[str]:
    """The modules (paths relative to `modules`, a kernel's /lib/modules/VERSION) that load `wanted`,
    each after what it depends on, read from its modules.dep as modprobe does; built-in ones are left out."""
    depends: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (modules / "modules.dep").read_text().splitlines():
        path, _, deps = line.partition(":")
        depends[path] = deps.split()
        by_name[Path(path).name.split(".ko")[0].replace("-", "_")] = path
    builtin = {
        Path(line).name.split(".ko")[0].replace("-", "_")
        for line in (modules / "modules.builtin").read_text().splitlines()
    }
    order: list[str] = []

    def add(path: str) -> None:
        if path not in order:
            for dep in reversed(depends.get(path, [])):
                add(dep)
            order.append(path)

    for name in wanted:
        key = name.replace("-", "_")
        if key in builtin:
            continue
        if key not in by_name:
            raise MachineError(f"the installer's kernel has no module {name}", "check MODULES")
        add(by_name[key])
    return order


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
