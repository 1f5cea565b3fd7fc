"""Direct kernel boot: the kernel, initrd and command line of a disk image, read out of its root file
system once and cached, so QEMU starts the kernel itself (`-kernel`/`-initrd`/`-append`).

Under TCG, SeaBIOS and GRUB reading a kernel and initrd through BIOS disk calls cost seconds at every
boot; QEMU loads both straight into guest memory instead. The disk keeps its own GRUB untouched, so the
image still boots (and imports) on its own. Images whose root file system cannot be read this way (not
an MBR disk with an ext4 partition, no /vmlinuz) return None and boot through their bootloader.

Without an initramfs: when the kernel has both the NVMe driver and the root's file system built in
(Debian's cloud kernel does) and the disk is attached as NVMe, the kernel mounts the root itself,
named by its partition's PARTUUID (the MBR signature and partition number). Under emulation the
initramfs (unpacking it, its udev, loading modules) costs about three seconds of every boot.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kiln import paths
from kiln.machines import command

FALLBACK_APPEND = "root=LABEL=root ro console=ttyS0,115200 quiet"


@dataclass(frozen=True)
class BootFiles:
    kernel: Path
    initrd: Path
    append: str  #: the image's own kernel command line (from its grub.cfg)
    #: PARTUUID of the root partition, when the kernel can mount it from an NVMe disk without the initrd
    nvme_root: str | None = None

    def without_initrd(self) -> str | None:
        """The command line that boots without the initrd from an NVMe disk, or None if it cannot."""
        if self.nvme_root is None:
            return None
        words = [word for word in self.append.split() if not word.startswith(("root=", "rootwait"))]
        return " ".join([f"root=PARTUUID={self.nvme_root}", "rootwait", *words])


def _root_partition(disk: Path) -> tuple[int, str | None] | None:
    """Byte offset and PARTUUID (None if the MBR has no signature) of the bootable (else the first)
    MBR partition, or None without an MBR."""
    with open(disk, "rb") as handle:
        mbr = handle.read(512)
    if len(mbr) < 512 or mbr[510:512] != b"\x55\xaa":
        return None
    entries = [mbr[446 + 16 * i : 462 + 16 * i] for i in range(4)]
    used = [(number, entry) for number, entry in enumerate(entries, 1) if entry[4] not in (0x00, 0xEE)]
    if not used:
        return None
    number, chosen = next(((n, entry) for n, entry in used if entry[0] == 0x80), used[0])
    start: int = struct.unpack_from("<I", chosen, 8)[0]
    signature: int = struct.unpack_from("<I", mbr, 440)[0]
    return start * 512, (f"{signature:08x}-{number:02x}" if signature else None)


def _builtin(config: str, *options: str) -> bool:
    """Whether a kernel's config (/boot/config-*) has all of `options` built in (=y)."""
    lines = set(config.splitlines())
    return all(f"CONFIG_{option}=y" in lines for option in options)


def _debugfs(device: str, request: str) -> subprocess.CompletedProcess[str]:
    return command.run(["debugfs", "-R", request, device], f"debugfs {request}", check=False)


def _link_target(device: str, path: str) -> str | None:
    done = _debugfs(device, f"stat {path}")
    match = re.search(r'Fast link dest: "([^"]+)"', done.stdout)
    return match.group(1) if match else None


def _resolve(device: str, path: str) -> str:
    """/vmlinuz -> /boot/vmlinuz-6.1...: debugfs dumps a symlink's own inode, not its target."""
    target = _link_target(device, path)
    if target is None:
        return path
    return target if target.startswith("/") else os.path.normpath(os.path.join(os.path.dirname(path), target))


def _append_line(grub_cfg: str) -> str:
    """The arguments of the first `linux` line of the image's grub.cfg (root=, console=, ...)."""
    for line in grub_cfg.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("linux", "linux16"):
            return " ".join(words[2:])
    return FALLBACK_APPEND


def _extract(raw: Path, dest: Path) -> bool:
    root = _root_partition(raw)
    if root is None:
        return False
    offset, partuuid = root
    device = f"{raw}?offset={offset}"
    kernel_path = ""
    for name in ("vmlinuz", "initrd.img"):
        source = _resolve(device, f"/{name}")
        kernel_path = kernel_path or source
        done = _debugfs(device, f"dump {source} {dest / name}")
        if done.returncode != 0 or not (dest / name).is_file() or (dest / name).stat().st_size == 0:
            return False
    grub = _debugfs(device, "cat /boot/grub/grub.cfg")
    append = _append_line(grub.stdout) if grub.returncode == 0 else FALLBACK_APPEND
    (dest / "append").write_text(append + "\n")
    # /boot/vmlinuz-6.1.0-x-cloud-amd64 -> /boot/config-6.1.0-x-cloud-amd64
    config = _debugfs(device, f"cat {kernel_path.replace('/vmlinuz-', '/config-')}")
    config_text = config.stdout if config.returncode == 0 else ""
    if partuuid and "/vmlinuz-" in kernel_path and _builtin(config_text, "BLK_DEV_NVME", "EXT4_FS", "PCI"):
        (dest / "nvme-root").write_text(partuuid + "\n")
    return True


def boot_files(image: Path, image_format: str) -> BootFiles | None:
    """The kernel, initrd and command line of `image`, cached by its path, size and change time."""
    if shutil.which("debugfs") is None:
        return None
    info = image.resolve().stat()
    key = hashlib.sha256(f"2 {image.resolve()} {info.st_size} {info.st_mtime_ns} {info.st_ino}".encode())
    folder = paths.cache_dir() / "kernels" / key.hexdigest()[:16]
    kernel, initrd, append = folder / "vmlinuz", folder / "initrd.img", folder / "append"
    if not (kernel.is_file() and initrd.is_file() and append.is_file()):
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="extract-", dir=folder.parent))
        try:
            raw = image.resolve()
            if image_format != "raw":
                # debugfs reads raw files only; a sparse copy costs about a second once per image
                raw = work / "disk.raw"
                argv = ["qemu-img", "convert", "-O", "raw", str(image.resolve()), str(raw)]
                if command.run(argv, "converting the image to raw", check=False).returncode != 0:
                    return None
            files = work / "files"
            files.mkdir()
            if not _extract(raw, files):
                return None
            shutil.rmtree(folder, ignore_errors=True)
            try:
                os.replace(files, folder)
            except OSError:
                if not kernel.is_file():  # else a concurrent start extracted the same files first
                    return None
        finally:
            shutil.rmtree(work, ignore_errors=True)
    nvme_root = folder / "nvme-root"
    return BootFiles(
        kernel,
        initrd,
        append.read_text().strip(),
        nvme_root.read_text().strip() if nvme_root.is_file() else None,
    )
