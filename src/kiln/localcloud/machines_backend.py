"""Instances as kiln machines: the namespace runner (`light`) or QEMU VMs (`vm`).

Each start makes a new machine with the metadata of that moment (so a key pair attached while the
instance was stopped reaches authorized_keys at the next start, as on the real cloud) over the
instance's live disk: the image it was created from, under the machine's own writes kept in
`instances/<id>/machine/` (`MachineSpec.keep_disk`: the namespace machine's overlay upper folder,
the VM's qcow2 overlay). A stop powers the machine off and keeps that disk as it is; CreateImage
writes a standalone image of it (`Machine.save_image`), or, while the instance runs, a point-in-time
copy of the live disk (`Machine.save_running_image`: QEMU's drive-backup, or the namespace machine's
files with its processes stopped for the copy). The metadata's instance id is the instance's, so
UserData runs at the first boot only.

After a kill -9 the machines of the dead server are swept (`kiln.machines.sweep_stale`), which keeps
their disks, and the instances that were running boot again on them: what a guest wrote (and, in a
VM, synced) before the kill is there, as after a power cut of a real instance.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.errors import KilnError
from kiln.localcloud.backend import Boot, Endpoint, InstanceBackend, copy_sparse

if TYPE_CHECKING:
    from kiln.machines import Machine, MachineSpec

log = logging.getLogger("kiln.localcloud")

BASE_IMAGE = "debian-12"


def disk_of(work_dir: Path) -> Path:
    return work_dir / "disk.img"


class MachinesBackend(InstanceBackend):
    boots_machines = True

    def __init__(self, runner: str, state_dir: Path) -> None:
        from kiln.machines import sweep_stale

        if runner == "light" and os.geteuid() != 0:
            raise KilnError(
                "--runner light starts namespace machines, which needs root",
                "run as root, or use --runner vm (QEMU) or --runner none (no machines)",
            )
        self.name = runner
        self.runner = "namespace" if runner == "light" else "vm"
        # the namespace runner saves raw disks fastest (no conversion); VMs keep qcow2
        self.disk_format = "raw" if self.runner == "namespace" else "qcow2"
        self._machines: dict[str, Machine] = {}
        self._base: Path | None = None
        sweep_stale()

    async def _base_image(self) -> Path:
        if self._base is None:
            from kiln.machines.baseimage import build_base_image

            self._base = await asyncio.to_thread(build_base_image, BASE_IMAGE)
        return self._base

    async def prepare(self) -> None:
        # Building the Debian image takes minutes the first time: start now rather than at the first
        # RunInstances, so that instances do not sit in Starting for that long.
        try:
            await self._base_image()
        except Exception as err:
            log.warning("the public image could not be built yet: %s", err)

    async def _lower(self, work_dir: Path, image_file: Path | None) -> Path:
        """The image under an instance's own writes: what it was created from (a `disk.img` saved at
        a stop by an older localcloud stands for it)."""
        legacy = disk_of(work_dir)
        return legacy if legacy.exists() else (image_file or await self._base_image())

    async def _spec(self, boot: Boot) -> MachineSpec:
        from kiln.machines import MachineSpec, Metadata

        return MachineSpec(
            image=await self._lower(boot.work_dir, boot.image_file),
            name=boot.instance_id,
            cpus=boot.cpus,
            memory_mb=boot.memory_mb,
            ssh_host="127.0.0.1",
            ssh_port=0,
            metadata=Metadata(
                ssh_authorized_keys=boot.authorized_keys,
                hostname=boot.hostname,
                user_data=boot.user_data,
                instance_id=boot.instance_id,
            ),
            work_dir=boot.work_dir / "machine",
            disk_size=f"{boot.disk_size_gb}G",
            data_disks=boot.data_disks,
            keep_disk=True,
        )

    async def start(self, boot: Boot) -> Endpoint | None:
        from kiln.machines import create_machine

        old = self._machines.pop(boot.instance_id, None)
        if old is not None:
            await asyncio.to_thread(old.destroy)  # its disk stays
        boot.work_dir.mkdir(parents=True, exist_ok=True)
        machine = create_machine(await self._spec(boot), runner=self.runner)  # type: ignore[arg-type]
        self._machines[boot.instance_id] = machine
        try:
            await asyncio.to_thread(machine.start)
        except BaseException:
            self._machines.pop(boot.instance_id, None)
            await asyncio.to_thread(machine.destroy)
            raise
        return Endpoint(machine.ssh_host, machine.ssh_port)

    async def stop(self, instance_id: str, force: bool) -> None:
        machine = self._machines.pop(instance_id, None)
        if machine is None:
            return
        await asyncio.to_thread(self._power_off, machine, not force)

    @staticmethod
    def _power_off(machine: Machine, graceful: bool) -> None:
        """Stop the machine; its disk stays for the next start."""
        try:
            began = time.monotonic()
            machine.stop(graceful=graceful, timeout=60.0)
            log.info("machine %s: stopped in %.1f s", machine.id, time.monotonic() - began)
        finally:
            machine.destroy()

    async def destroy(self, instance_id: str, work_dir: Path) -> None:
        machine = self._machines.pop(instance_id, None)
        if machine is not None:
            await asyncio.to_thread(machine.destroy)
        await asyncio.to_thread(shutil.rmtree, work_dir, True)

    async def save_disk(self, instance_id: str, work_dir: Path, dest: Path, source: Path | None) -> None:
        machine = self._machines.get(instance_id)
        began = time.monotonic()
        if machine is not None and machine.is_running():
            await asyncio.to_thread(machine.save_running_image, dest, self.disk_format)  # type: ignore[arg-type]
            log.info("machine %s: running disk saved in %.1f s", machine.id, time.monotonic() - began)
            return
        lower = await self._lower(work_dir, source)
        if machine is None and not any((work_dir / "machine").glob("*")):
            await asyncio.to_thread(copy_sparse, lower, dest)  # never ran: its disk is still its image
            return
        await asyncio.to_thread(self._save_stopped, instance_id, work_dir, lower, dest)
        log.info("machine %s: disk saved in %.1f s", instance_id, time.monotonic() - began)

    def _save_stopped(self, instance_id: str, work_dir: Path, lower: Path, dest: Path) -> None:
        from kiln.machines import MachineSpec, create_machine

        spec = MachineSpec(image=lower, name=instance_id, work_dir=work_dir / "machine", keep_disk=True)
        machine = create_machine(spec, runner=self.runner)  # type: ignore[arg-type]
        try:
            machine.save_image(dest, self.disk_format)  # type: ignore[arg-type]
        finally:
            machine.destroy()  # the disk stays

    async def save_data_disk(self, instance_id: str, disk: Path, dest: Path) -> None:
        machine = self._machines.get(instance_id)
        if machine is not None and machine.is_running():
            await asyncio.to_thread(machine.save_running_data_disk, disk, dest)
            return
        await asyncio.to_thread(copy_sparse, disk, dest)

    def endpoint(self, instance_id: str) -> Endpoint | None:
        machine = self._machines.get(instance_id)
        if machine is None:
            return None
        return Endpoint(machine.ssh_host, machine.ssh_port)

    async def shutdown(self) -> None:
        """Stop every machine and keep its disk, so that the next start loses nothing."""
        machines, self._machines = self._machines, {}
        results = await asyncio.gather(
            *(asyncio.to_thread(self._power_off, m, True) for m in machines.values()),
            return_exceptions=True,
        )
        for machine, result in zip(machines.values(), results, strict=True):
            if isinstance(result, BaseException):
                log.warning("machine %s: %s", machine.id, result)
