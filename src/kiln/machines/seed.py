"""NoCloud seeds: `meta-data` and `user-data`, as a folder (namespace machines) or a vfat disk (VMs)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from kiln.errors import MachineError
from kiln.machines.spec import Metadata

_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,61}[A-Za-z0-9])?$")


def seed_files(metadata: Metadata, machine_id: str) -> dict[str, str]:
    """The seed's files. meta-data is the YAML subset both cloud-init and kiln's agent read."""
    hostname = metadata.hostname or machine_id
    if not _HOSTNAME.match(hostname):
        raise MachineError(
            f"metadata hostname {hostname!r} is not a valid host name",
            "use letters, digits, '-' and '.' (at most 63 characters)",
        )
    lines = [f"instance-id: {metadata.instance_id or machine_id}", f"local-hostname: {hostname}"]
    keys = [key.strip() for key in metadata.ssh_authorized_keys if key.strip()]
    for key in keys:
        if "\n" in key or not key.startswith(("ssh-", "ecdsa-", "sk-")):
            raise MachineError(
                "metadata ssh_authorized_keys holds something that is not an OpenSSH public key",
                "give one-line public keys such as the content of id_ed25519.pub",
            )
    if keys:
        lines.append("public-keys:")
        lines.extend(f"  - {key}" for key in keys)
    return {"meta-data": "\n".join(lines) + "\n", "user-data": metadata.user_data or ""}


def write_seed_dir(metadata: Metadata, machine_id: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in seed_files(metadata, machine_id).items():
        (folder / name).write_text(content)
    return folder


def write_seed_disk(metadata: Metadata, machine_id: str, path: Path) -> Path:
    """A 2 MiB vfat image labelled CIDATA, made with mtools: no loop device, no mount, no root."""
    folder = write_seed_dir(metadata, machine_id, path.with_suffix(".d"))
    path.unlink(missing_ok=True)
    _run(["mkfs.vfat", "-C", "-n", "CIDATA", str(path), "2048"])
    _run(["mcopy", "-o", "-i", str(path), str(folder / "meta-data"), str(folder / "user-data"), "::"])
    return path


def _run(argv: list[str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise MachineError(f"{argv[0]} is not installed", "apt-get install dosfstools mtools") from None
    if done.returncode != 0:
        raise MachineError(f"{argv[0]} failed: {done.stderr.strip()}", "check free disk space")
