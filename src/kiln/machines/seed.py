"""NoCloud seeds: `meta-data` and `user-data`, as a folder (namespace machines) or a vfat disk (VMs).

Kiln's seeds also carry the instance's SSH host key (`ssh_host_ed25519_key`, OpenSSH format), which
kiln's agent installs on a new instance: made here in a millisecond, where ssh-keygen inside an
emulated guest costs seconds of its boot; and its public half is known to kiln before the machine
answers (`HostKey.public`). They may carry a `resolv.conf` too: the runner's DNS forwarder, which
the agent puts where systemd-resolved's stub file goes until resolved itself starts, so that names
resolve from sshd's first answer on although sshd does not wait for resolved (seconds under
emulation). And an `early-network`: the address QEMU's user-mode network will lease to the guest,
which the agent sets at once, so that sshd is reachable the moment it listens instead of after udev,
networkd and DHCP (3-5 s later under emulation). Other images ignore these extra files.

The VM runner attaches the same files a second time as a text bundle (`bundle`) on a disk of its own
that kiln's agent finds by serial number and reads with shell builtins: no blkid, no mtools.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from kiln import paths
from kiln.errors import MachineError
from kiln.machines import command
from kiln.machines.hostkey import HostKey
from kiln.machines.spec import Metadata

_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,61}[A-Za-z0-9])?$")
HOST_KEY_FILE = "ssh_host_ed25519_key"
EARLY_NETWORK_FILE = "early-network"
#: the serial number of the disk with kiln's text bundle (NVMe): the agent finds it through sysfs
#: without probing every disk's label (blkid: over a second of sshd's path under emulation)
SEED_SERIAL = "kiln-seed"
BUNDLE_MAGIC = "kiln-seed 1"
#: QEMU's user-mode network and slirp4netns: the guest's leased address, the gateway, the DNS forwarder
SLIRP_GUEST = "10.0.2.15"
SLIRP_GATEWAY = "10.0.2.2"
SLIRP_DNS = "10.0.2.3"


@dataclass(frozen=True)
class EarlyNetwork:
    """This boot's address until the DHCP lease, on the guest's first NIC (eth0: kiln's images boot
    with net.ifnames=0, as Alibaba Cloud's do; the agent applies it only then)."""

    interface: str = "eth0"
    address: str = SLIRP_GUEST
    gateway: str = SLIRP_GATEWAY
    nameserver: str = SLIRP_DNS


@dataclass(frozen=True)
class Extras:
    """What a runner adds to a seed besides the metadata (see the module's docstring)."""

    host_key: HostKey | None = None
    nameserver: str | None = None
    network: EarlyNetwork | None = None


def seed_files(metadata: Metadata, machine_id: str, extras: Extras | None = None) -> dict[str, str]:
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
    files = {"meta-data": "\n".join(lines) + "\n", "user-data": metadata.user_data or ""}
    extras = extras or Extras()
    if extras.host_key is not None:
        files[HOST_KEY_FILE] = extras.host_key.private
    if extras.nameserver:
        files["resolv.conf"] = (
            f"# until systemd-resolved starts (kiln-agent)\nnameserver {extras.nameserver}\n"
        )
    if extras.network is not None:
        net = extras.network
        files[EARLY_NETWORK_FILE] = (
            "# this boot's address until the DHCP lease (kiln-agent): interface address gateway nameserver\n"
            f"{net.interface} {net.address} {net.gateway} {net.nameserver}\n"
        )
    return files


def write_seed_dir(files: dict[str, str], folder: Path) -> Path:
    """The seed's files (`seed_files`) as a folder, readable by their owner only (the host key is a
    secret)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, content in files.items():
        paths.write_private(folder / name, content.encode())
    return folder


def write_seed_disk(files: dict[str, str], path: Path) -> Path:
    """A 2 MiB vfat image labelled CIDATA, made with mtools: no loop device, no mount, no root."""
    folder = write_seed_dir(files, path.with_suffix(".d"))
    path.unlink(missing_ok=True)
    command.run(
        ["mkfs.vfat", "-C", "-n", "CIDATA", str(path), "2048"],
        "making the seed disk",
        hint="check free disk space",
    )
    os.chmod(path, 0o600)
    names = [str(file) for file in sorted(folder.iterdir())]
    command.run(
        ["mcopy", "-o", "-i", str(path), *names, "::"], "writing the seed disk", hint="check free disk space"
    )
    return path


def bundle(files: dict[str, str]) -> bytes | None:
    """The seed's files as kiln's text bundle, which the agent reads from a raw disk with shell builtins
    alone (mtools or a mount cost over a second of sshd's path under emulation); None when a file is
    not lines of text (a NUL byte, no final newline): the agent then reads the CIDATA disk.

    The format: a magic line, then per file `file NAME`, its lines, and a line `.`; then `end`.
    A line of a file that starts with "." gets one more (as in SMTP), so `.` ends only a file.
    """
    lines = [BUNDLE_MAGIC]
    for name, content in files.items():
        if "\0" in content or (content and not content.endswith("\n")):
            return None
        lines.append(f"file {name}")
        if content:
            lines.extend("." + line if line.startswith(".") else line for line in content[:-1].split("\n"))
        lines.append(".")
    lines.append("end")
    data = ("\n".join(lines) + "\n").encode()
    return data + b"\0" * (-len(data) % 4096)


def write_seed_bundle(files: dict[str, str], path: Path) -> bool:
    """The text bundle as a raw disk image (readable by its owner only), if the files allow one."""
    data = bundle(files)
    path.unlink(missing_ok=True)
    if data is None:
        return False
    paths.write_private(path, data)
    return True
