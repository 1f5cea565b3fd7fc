"""What runs behind an instance: the `InstanceBackend` interface and its record-only implementation.

The real implementation (`kiln.localcloud.machines_backend`) boots each instance as a kiln machine.
`NoMachines` keeps instances as records only: the API, its statuses and rules behave the same, but
nothing boots and there is no SSH. API tests and the DescribeInstances benchmark use it, and so can
anyone who only wants to test the API calls of a pipeline.
"""

from __future__ import annotations

import abc
import asyncio
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


def copy_sparse(src: Path, dest: Path) -> None:
    """Copy a disk file keeping its holes (a 20 GB disk holds a few hundred MB)."""
    subprocess.run(
        ["cp", "--sparse=always", "--reflink=auto", str(src), str(dest)], check=True, capture_output=True
    )


@dataclass(frozen=True)
class Boot:
    """What a backend needs to start an instance."""

    instance_id: str
    image_file: Path | None
    work_dir: Path
    authorized_keys: tuple[str, ...] = ()
    user_data: str | None = None
    hostname: str | None = None
    cpus: int = 1
    memory_mb: int = 1024
    disk_size_gb: int = 20
    #: the data disks' raw files, in device order (the machine sees them as its second, third... disk)
    data_disks: tuple[Path, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Endpoint:
    """Where the instance's sshd answers on the host."""

    host: str
    port: int


class InstanceBackend(abc.ABC):
    name: str = ""
    boots_machines: bool = False
    disk_format: str = "raw"  # the format images' disks are kept in (qemu-img's name)

    @abc.abstractmethod
    async def start(self, boot: Boot) -> Endpoint | None:
        """Start the instance (first boot or a restart of its existing disk); return its sshd address."""

    @abc.abstractmethod
    async def stop(self, instance_id: str, force: bool) -> None:
        """Power the instance off, keeping its disk."""

    @abc.abstractmethod
    async def destroy(self, instance_id: str, work_dir: Path) -> None:
        """Stop the instance if it runs and remove its disk."""

    @abc.abstractmethod
    async def save_disk(self, instance_id: str, work_dir: Path, dest: Path, source: Path | None) -> None:
        """Write the instance's system disk to `dest` as a standalone bootable image.

        `source` is the image the instance was created from (None: the public image), which is its
        disk as long as it never ran.
        """

    async def save_data_disk(self, instance_id: str, disk: Path, dest: Path) -> None:
        """Write a copy of a data disk's file to `dest` (a point-in-time one if its instance runs)."""
        await asyncio.to_thread(copy_sparse, disk, dest)

    @abc.abstractmethod
    def endpoint(self, instance_id: str) -> Endpoint | None:
        """The sshd address of a running instance, None when it does not run."""

    def public_image_file(self) -> Path | None:
        """The Debian 12 disk the public image stands for (None: the image is a record only)."""
        return None

    async def copy_image(self, src: Path | None, dest: Path) -> None:
        if src is not None and src.exists():
            await asyncio.to_thread(copy_sparse, src, dest)

    async def import_disk(self, source: Path, source_format: str, dest: Path) -> None:
        """Convert an imported disk (qemu-img's format name) into an image's disk at `dest`."""
        from kiln.machines.diskimage import convert

        await asyncio.to_thread(convert, source, source_format, dest, self.disk_format)

    async def prepare(self) -> None:
        """Get ready in the background after the server starts (e.g. build the public image)."""
        return None

    async def shutdown(self) -> None:
        """Stop every machine this backend started (the server is going away)."""
        return None


class NoMachines(InstanceBackend):
    """Instances as records only."""

    name = "none"

    def __init__(self) -> None:
        self._running: set[str] = set()

    async def start(self, boot: Boot) -> Endpoint | None:
        self._running.add(boot.instance_id)
        return None

    async def stop(self, instance_id: str, force: bool) -> None:
        self._running.discard(instance_id)

    async def destroy(self, instance_id: str, work_dir: Path) -> None:
        self._running.discard(instance_id)
        shutil.rmtree(work_dir, ignore_errors=True)

    async def save_disk(self, instance_id: str, work_dir: Path, dest: Path, source: Path | None) -> None:
        # A record-only image still gets a (tiny) file, so that image files are handled one way.
        dest.write_bytes(b"")

    def endpoint(self, instance_id: str) -> Endpoint | None:
        return None
