"""Instances as kiln machines (namespace runner or QEMU VM). Wired in once kiln.machines is available."""

from __future__ import annotations

from pathlib import Path

from kiln.errors import KilnError
from kiln.localcloud.backend import Boot, Endpoint, InstanceBackend


class MachinesBackend(InstanceBackend):
    boots_machines = True

    def __init__(self, runner: str, state_dir: Path) -> None:
        self.name = runner
        raise KilnError("the machine runners are not available yet", "use --runner none for API-only work")

    async def start(self, boot: Boot) -> Endpoint | None:
        raise NotImplementedError

    async def stop(self, instance_id: str, force: bool) -> None:
        raise NotImplementedError

    async def destroy(self, instance_id: str, work_dir: Path) -> None:
        raise NotImplementedError

    async def save_disk(self, instance_id: str, work_dir: Path, dest: Path) -> None:
        raise NotImplementedError

    def endpoint(self, instance_id: str) -> Endpoint | None:
        return None
