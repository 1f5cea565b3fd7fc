"""The emulated cloud: resources in the store, the backend that runs instances, and the work on them.

Resources are read two ways: `find` gives the caller its own copy to change and `put` back;
`items` lists the stored ones, read-only. `put` writes SQLite first and only then the copy in
memory, so memory never holds what the database refused. Statuses move as `lifecycle` says; work on
one instance is serialised (start, stop, save, destroy never overlap), as the machine underneath can
only do one of them at a time.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from kiln.localcloud import errors
from kiln.localcloud.backend import Boot, Endpoint, InstanceBackend
from kiln.localcloud.faults import Faults
from kiln.localcloud.forward import Forwarder
from kiln.localcloud.model import firewall, lifecycle
from kiln.localcloud.model.instance_types import TYPES
from kiln.localcloud.model.kinds import KINDS
from kiln.localcloud.model.oss import OssStore
from kiln.localcloud.model.regions import DEFAULT_REGION
from kiln.localcloud.profile import LatencyProfile
from kiln.localcloud.store import Store, state_folder

__all__ = ["DEFAULT_REGION", "Cloud"]

log = logging.getLogger("kiln.localcloud")

Res = dict[str, Any]


class Cloud:
    def __init__(
        self, state_dir: Path, store: Store, backend: InstanceBackend, profile: LatencyProfile
    ) -> None:
        self.state_dir = state_dir
        self.store = store
        self.backend = backend
        self.profile = profile  # how long calls and transitions take
        self.faults = Faults()  # what calls fail on purpose
        self.forwarder = Forwarder()
        self.oss = OssStore(state_dir / "oss", store.db)  # OSS's buckets and objects (bytes under oss/)
        self._ops: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.images_dir = state_dir / "images"
        self.instances_dir = state_dir / "instances"
        self.disks_dir = state_dir / "disks"
        state_folder(self.images_dir)
        state_folder(self.instances_dir)
        state_folder(self.disks_dir)
        for kind in KINDS:
            for stored in self.store.all(kind):
                if any(name in stored for name in ("_then", "_until", "_wait")):
                    res = self._copy(stored)
                    lifecycle.migrate(res)
                    self.put(res)

    # resources -------------------------------------------------------------------------------------
    def new(self, kind: str, rid: str, region: str, **fields: Any) -> Res:
        res: Res = {"_kind": kind, "_id": rid, "RegionId": region, "_created": time.time()}
        res.update(fields)
        res.setdefault("CreationTime", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        return res

    def put(self, res: Mapping[str, Any]) -> None:
        """Store `res` (checked against its kind): the database first, then memory."""
        KINDS[res["_kind"]].check(res)
        self.store.put(res["_kind"], res["_id"], dict(res))

    def delete(self, res: Mapping[str, Any]) -> None:
        self.store.delete(res["_kind"], res["_id"])

    def get(self, kind: str, key: str) -> Res | None:
        """The caller's own copy of a stored resource by its store key, or None."""
        res = self.store.get(kind, key)
        if res is not None and lifecycle.settle(res):
            self.put(res)
        return res

    def find(self, kind: str, rid: str | None, region: str | None) -> Res:
        """Like `get` by the API's id (a key pair's name), in `region` if given; else its NotFound error."""
        key = f"{region}/{rid}" if kind == "keypair" else rid
        res = self.get(kind, key) if key else None
        if res is None or (region is not None and res["RegionId"] != region):
            raise errors.not_found(KINDS[kind].label, rid or "")
        return res

    def items(self, kind: str, region: str | None = None) -> list[Mapping[str, Any]]:
        """The stored resources of a kind (in a region), oldest first; read-only."""
        found = [
            self._settled(r) if lifecycle.FIELD in r else r
            for r in self.store.all(kind)
            if region is None or r["RegionId"] == region
        ]
        found.sort(key=itemgetter("_created"))
        return found

    def _settled(self, stored: Mapping[str, Any]) -> Mapping[str, Any]:
        if not lifecycle.due(stored):
            return stored
        res = self._copy(stored)
        lifecycle.settle(res)
        self.put(res)
        return res

    def _copy(self, stored: Mapping[str, Any]) -> Res:
        res = self.store.get(stored["_kind"], stored["_id"])
        assert res is not None
        return res

    # background work ---------------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def instance_op(self, instance_id: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` after any earlier work on the same instance."""
        previous = self._ops.get(instance_id)

        async def chained() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            try:
                await work()
            except Exception:
                log.exception("work on instance %s failed", instance_id)

        task = asyncio.get_running_loop().create_task(chained())
        self._ops[instance_id] = task
        task.add_done_callback(
            lambda t: self._ops.pop(instance_id, None) if self._ops.get(instance_id) is t else None
        )

    async def drain(self) -> None:
        """Wait for all background work (tests and a clean shutdown)."""
        while self._tasks or self._ops:
            await asyncio.gather(*self._tasks, *self._ops.values(), return_exceptions=True)

    # instances -----------------------------------------------------------------------------------------
    def instance_dir(self, instance_id: str) -> Path:
        return self.instances_dir / instance_id

    def boot_for(self, inst: Mapping[str, Any]) -> Boot:
        keys: list[str] = []
        name = inst.get("KeyPairName")
        if name:
            pair = self.store.get("keypair", f"{inst['RegionId']}/{name}")
            if pair is not None:
                keys.append(pair["_public_key"])
        user_data = None
        if inst.get("_user_data"):
            user_data = base64.b64decode(inst["_user_data"]).decode("utf-8", "replace")
        image = inst.get("_image_file")
        offered = TYPES.get(str(inst.get("InstanceType")))
        cpus, memory_mb = offered.machine if offered else (1, 1024)
        return Boot(
            instance_id=inst["InstanceId"],
            image_file=Path(image) if image else None,
            work_dir=self.instance_dir(inst["InstanceId"]),
            authorized_keys=tuple(keys),
            user_data=user_data,
            hostname=inst.get("HostName"),
            cpus=cpus,
            memory_mb=memory_mb,
            disk_size_gb=int(inst.get("_disk_size", 20)),
            data_disks=tuple(Path(d["_file"]) for d in self.data_disks_of(inst["InstanceId"])),
        )

    def data_disks_of(self, instance_id: str) -> list[Mapping[str, Any]]:
        """The data disks attached to an instance (Attaching or In_use), in device order."""
        attached = [d for d in self.items("disk") if d["InstanceId"] == instance_id]
        return sorted(attached, key=itemgetter("Device"))

    def start_instance(self, inst: Res, extra_seconds: float = 0.0) -> None:
        iid = inst["InstanceId"]
        seconds = self.profile.instance_start + extra_seconds
        lifecycle.begin(inst, "Starting", "Running", seconds, wait="start")
        inst["_pending_until"] = time.time() + extra_seconds
        self.put(inst)

        async def work() -> None:
            current = self.store.get("instance", iid)
            if current is None:
                return
            try:
                await self.backend.start(self.boot_for(current))
            except Exception as err:
                log.warning("instance %s did not start: %s", iid, err)
                current = self.store.get("instance", iid)
                if current is not None:
                    lifecycle.reach(current, "Stopped")
                    current["_error"] = str(err)[:300]
                    self.put(current)
                return
            current = self.store.get("instance", iid)
            if current is None:
                return
            lifecycle.work_done(current, "start")
            current["_started_once"] = True
            current.pop("_error", None)
            self.put(current)

        self.instance_op(iid, work)

    def stop_instance(self, inst: Res, force: bool) -> None:
        iid = inst["InstanceId"]
        lifecycle.begin(inst, "Stopping", "Stopped", self.profile.instance_stop, wait="stop")
        self.put(inst)

        async def work() -> None:
            try:
                await self.backend.stop(iid, force)
            finally:
                current = self.store.get("instance", iid)
                # a start queued behind this stop (RebootInstance) owns the transition from then on
                if current is not None and lifecycle.work_done(current, "stop"):
                    self.put(current)

        self.instance_op(iid, work)

    def destroy_instance(self, inst: Mapping[str, Any]) -> None:
        iid = inst["InstanceId"]
        work_dir = self.instance_dir(iid)

        async def work() -> None:
            await self.backend.destroy(iid, work_dir)

        self.instance_op(iid, work)

    def endpoint_of(self, instance_id: str) -> Endpoint | None:
        inst = self.store.get("instance", instance_id)
        if inst is None or inst.get("Status") not in ("Running", "Starting"):
            return None
        return self.backend.endpoint(instance_id)

    def admits(self, instance_id: str, source: str, port: int) -> bool:
        """Whether the instance's security groups let a TCP connection from `source` reach `port`."""
        inst = self.store.get("instance", instance_id)
        if inst is None:
            return False
        rules = [
            rule
            for gid in inst["SecurityGroupIds"]["SecurityGroupId"]
            for rule in (self.store.get("sg", gid) or {}).get("_rules", [])
        ]
        return firewall.allows(rules, "tcp", port, source)

    async def expose(self, address: str, instance_id: str) -> None:
        await self.forwarder.open(
            address,
            lambda: self.endpoint_of(instance_id),
            lambda source, port: self.admits(instance_id, source, port),
        )

    # images ------------------------------------------------------------------------------------------
    def image_file(self, image_id: str) -> Path:
        return self.images_dir / f"{image_id}.img"

    def save_instance_disk(
        self, inst: Mapping[str, Any], targets: Sequence[Mapping[str, Any]], dest: Path
    ) -> None:
        """Save the instance's disk to `dest`; each target (image, snapshot) waits for it."""
        iid = inst["InstanceId"]
        work_dir = self.instance_dir(iid)
        source = inst.get("_image_file")

        async def work() -> None:
            ok = True
            try:
                await self.backend.save_disk(iid, work_dir, dest, Path(source) if source else None)
            except Exception as err:
                log.warning("saving the disk of %s failed: %s", iid, err)
                ok = False
            self.finish_targets(targets, ok)

        self.instance_op(iid, work)

    def save_data_disk(
        self, disk: Mapping[str, Any], targets: Sequence[Mapping[str, Any]], dest: Path
    ) -> None:
        """Copy a data disk's file to `dest` (after any work on its instance); each target waits for it."""

        async def work() -> None:
            ok = True
            try:
                await self.backend.save_data_disk(disk["InstanceId"], Path(disk["_file"]), dest)
            except Exception as err:
                log.warning("saving the disk %s failed: %s", disk["DiskId"], err)
                ok = False
            self.finish_targets(targets, ok)

        if disk["InstanceId"]:
            self.instance_op(disk["InstanceId"], work)
        else:
            self.spawn(work())

    def finish_targets(self, targets: Sequence[Mapping[str, Any]], ok: bool) -> None:
        """The work the targets waited for is over; a failed one is CreateFailed (images) or failed."""
        for target in targets:
            current = self.store.get(target["_kind"], target["_id"])
            if current is None:
                continue
            lifecycle.work_done(current)
            if not ok:
                lifecycle.reach(current, "CreateFailed" if current["_kind"] == "image" else "failed")
            self.put(current)

    # restart ---------------------------------------------------------------------------------------------
    async def recover(self) -> None:
        """After a restart (clean or kill -9): nothing is forgotten, running instances come back."""
        for stored in self.store.all("instance"):
            inst = self._copy(stored)
            lifecycle.abandon_work(inst)
            status, heading = inst.get("Status"), lifecycle.heading_to(inst)
            if status in ("Pending", "Starting", "Running") and heading != "Stopped":
                self.start_instance(inst)
            elif status == "Stopping" or heading == "Stopped":
                lifecycle.reach(inst, "Stopped")
                self.put(inst)
        for kind in ("image", "snapshot"):
            for res in self.store.all(kind):
                if lifecycle.waiting(res):
                    # the disk copy in flight died with the process: the cloud reports such a task failed
                    self.finish_targets([res], ok=False)
        for stored in self.store.all("disk"):
            if lifecycle.waiting(stored):  # CreateDisk's file was being made: make it (empty) again
                disk = self._copy(stored)
                file = Path(disk["_file"])
                file.unlink(missing_ok=True)
                file.touch()
                os.truncate(file, int(disk["Size"]) << 30)
                lifecycle.abandon_work(disk)
                self.put(disk)
        for eip in self.store.all("eip"):
            if eip.get("InstanceId"):
                await self.expose(eip["IpAddress"], eip["InstanceId"])
        for listed in self.store.all("instance"):
            for address in listed.get("PublicIpAddress", []):
                await self.expose(address, listed["InstanceId"])

    async def close(self) -> None:
        await self.forwarder.close_all()
        await asyncio.gather(*self._ops.values(), return_exceptions=True)
        await self.backend.shutdown()
