"""Files kiln puts into its Debian base images, kept under guest/ as they land in the image (package
data, so that shellcheck and systemd-analyze read them as what they are):

    guest/files/     copied into the root file system (the agent, its units, sshd's, the network)
    guest/early/     the same, but before the kernel package builds the initramfs (an mmdebstrap
                     essential hook): what makes that initramfs small
    guest/make-disk.sh   run as (mapped) root: finishes the tree and writes the disk
    guest/installer/ the installer ISO's own files (kiln.machines.installer)

A file starting with `#!` is installed executable (0755), any other 0644. Their content is part of the
base image's recipe hash: changing one makes a new base image.
"""

from __future__ import annotations

import re
from pathlib import Path

GUEST = Path(__file__).with_name("guest")


def tree(name: str) -> dict[str, tuple[str, int]]:
    """guest/<name>/'s files: path in the image -> (content, mode)."""
    root = GUEST / name
    files: dict[str, tuple[str, int]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            text = path.read_text()
            files[path.relative_to(root).as_posix()] = (text, 0o755 if text.startswith("#!") else 0o644)
    return files


FILES = tree("files")
EARLY_FILES = tree("early")
MAKE_DISK = (GUEST / "make-disk.sh").read_text()
AGENT = FILES["usr/lib/kiln/kiln-agent"][0]


def _ready_line() -> str:
    match = re.search(r'^READY_LINE="([^"$`\\]+)"$', AGENT, re.M)
    assert match, "the agent sets READY_LINE"
    return match.group(1)


#: what kiln's agent writes on the console once sshd listens and the early network is set (the
#: agent's READY_LINE: the runners wait for it before they probe SSH quickly)
READY_LINE = _ready_line()

#: kiln's Debian installer ISO (kiln.machines.installer): its initramfs's init and DHCP script, its
#: GRUB menu, and the script that finishes the root file system it carries
INSTALLER_FILES = tree("installer")
