"""The emulated cloud: resources in the store, the backend that runs instances, and time.

Statuses change the way the real cloud's do. A timed transition is stored on the resource itself
(`_then` = the next status, `_until` = when) and applied when the resource is next read, so it needs
no timer and survives a restart. A transition that waits for real work (a machine booting, a disk
being saved) also carries `_wait`, cleared by the task doing that work; the status moves on only when
both the time has passed and the work is done. Work on one instance is serialised (start, stop, save,
destroy never overlap), as the machine underneath can only do one of them at a time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from kiln.localcloud.backend import Boot, Endpoint, InstanceBackend
from kiln.localcloud.forward import Forwarder
from kiln.localcloud.profile import LatencyProfile
from kiln.localcloud.store import Store, state_folder
from kiln.localcloud.wire import ApiError, invalid, missing, not_found

log = logging.getLogger("kiln.localcloud")

REGIONS: dict[str, str] = {
    "cn-beijing": "华北2（北京）",
    "cn-hangzhou": "华东1（杭州）",
    "cn-shanghai": "华东2（上海）",
    "cn-shenzhen": "华南1（深圳）",
    "cn-hongkong": "中国香港",
    "ap-southeast-1": "新加坡",
    "us-west-1": "美国（硅谷）",
    "eu-central-1": "德国（法兰克福）",
}
ZONE_LETTERS = ("a", "b", "c")
DEFAULT_REGION = "cn-beijing"


def zones_of(region: str) -> list[str]:
    return [f"{region}-{letter}" for letter in ZONE_LETTERS]


class Call:
    """One API request: its action and parameters, with the cloud's ways of reading them."""

    def __init__(self, action: str, params: dict[str, str], access_key_id: str, request_id: str) -> None:
        self.action = action
        self.params = params
        self.access_key_id = access_key_id
        self.request_id = request_id
        self._tags: list[dict[str, str]] | None = None

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self.params.get(name)
        return default if value is None or value == "" else value

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise missing(name)
        return value

    def integer(self, name: str, default: int, low: int | None = None, high: int | None = None) -> int:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise invalid(name, "must be an integer") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise invalid(name, f"must be between {low} and {high}")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        raw = self.get(name)
        return default if raw is None else raw.lower() == "true"

    def values(self, name: str) -> list[str]:
        """`Name.1`, `Name.2`... or a JSON array in `Name` (`InstanceIds`), or one value in `Name`."""
        numbered = self._numbered(name)
        if numbered:
            return [v for _, v in sorted(numbered.items())]
        raw = self.get(name)
        if raw is None:
            return []
        if raw.startswith("["):
            try:
                values = json.loads(raw)
            except ValueError:
                raise invalid(name, "is not a JSON array") from None
            if not isinstance(values, list):
                raise invalid(name, "is not a JSON array")
            return [str(v) for v in values]
        return [raw]

    def _numbered(self, name: str) -> dict[int, str]:
        out: dict[int, str] = {}
        prefix = name + "."
        for key, value in self.params.items():
            if key.startswith(prefix) and key[len(prefix) :].isdigit():
                out[int(key[len(prefix) :])] = value
        return out

    def structs(self, name: str) -> list[dict[str, str]]:
        """`Name.N.Field=value` -> one dict per N, in order."""
        found: dict[int, dict[str, str]] = {}
        prefix = name + "."
        for key, value in self.params.items():
            if not key.startswith(prefix):
                continue
            index, dot, field = key[len(prefix) :].partition(".")
            if dot and index.isdigit():
                found.setdefault(int(index), {})[field] = value
        return [found[i] for i in sorted(found)]

    def tags(self) -> list[dict[str, str]]:
        if self._tags is None:
            self._tags = self._parse_tags()
        return self._tags

    def _parse_tags(self) -> list[dict[str, str]]:
        tags = []
        for item in self.structs("Tag"):
            if item.get("Key"):
                tags.append({"TagKey": item["Key"], "TagValue": item.get("Value", "")})
        if len(tags) > 20:
            raise invalid("Tag.N", "allows at most 20 tags")
        return tags

    @property
    def region(self) -> str | None:
        region = self.get("RegionId")
        if region is not None and region not in REGIONS:
            raise ApiError(
                404, "InvalidRegionId.NotFound", f"The specified RegionId does not exist. ({region})"
            )
        return region

    def require_region(self) -> str:
        region = self.region
        if region is None:
            raise missing("RegionId")
        return region

    def user_data(self) -> str | None:
        raw = self.get("UserData")
        if raw is None:
            return None
        try:
            base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(
                400, "InvalidUserData.Base64FormatInvalid", "The specified UserData is not base64 encoded."
            ) from None
        if len(raw) > 32768:
            raise ApiError(400, "InvalidUserData.SizeExceeded", "The specified UserData exceeds 32 KB.")
        return raw


Handler = Callable[["Cloud", Call], Awaitable[dict[str, Any]]]
ACTIONS: dict[str, Handler] = {}


def action(*names: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for name in names:
            ACTIONS[name] = fn
        return fn

    return register


class Cloud:
    def __init__(
        self, state_dir: Path, store: Store, backend: InstanceBackend, profile: LatencyProfile
    ) -> None:
        self.state_dir = state_dir
        self.store = store
        self.backend = backend
        self.profile = profile
        self.forwarder = Forwarder()
        self._ops: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.images_dir = state_dir / "images"
        self.instances_dir = state_dir / "instances"
        state_folder(self.images_dir)
        state_folder(self.instances_dir)

    # resources -------------------------------------------------------------------------------------
    def put(self, res: dict[str, Any]) -> None:
        self.store.put(res["_kind"], res["_id"], res)

    def new(self, kind: str, rid: str, region: str, **fields: Any) -> dict[str, Any]:
        res: dict[str, Any] = {"_kind": kind, "_id": rid, "RegionId": region, "_created": time.time()}
        res.update(fields)
        res.setdefault("CreationTime", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        return res

    def later(
        self, res: dict[str, Any], status: str, then: str, seconds: float, wait: str | None = None
    ) -> None:
        res["Status"] = status
        res["_then"] = then
        res["_until"] = time.time() + seconds
        if wait:
            res["_wait"] = wait
        else:
            res.pop("_wait", None)

    @staticmethod
    def set_status(res: dict[str, Any], status: str) -> None:
        """A status reached at once: any transition in flight is over."""
        res["Status"] = status
        for name in ("_then", "_until", "_wait"):
            res.pop(name, None)

    def settle(self, res: dict[str, Any]) -> dict[str, Any]:
        then = res.get("_then")
        if then and not res.get("_wait") and time.time() >= res["_until"]:
            res["Status"] = then
            for name in ("_then", "_until"):
                res.pop(name, None)
            self.put(res)
        return res

    def find(self, kind: str, rid: str | None, region: str | None, label: str) -> dict[str, Any]:
        res = self.store.get(kind, rid) if rid else None
        if res is None or (region is not None and res["RegionId"] != region):
            raise not_found(label, rid or "")
        return self.settle(res)

    def items(self, kind: str, region: str | None = None) -> list[dict[str, Any]]:
        found = [self.settle(r) for r in self.store.all(kind) if region is None or r["RegionId"] == region]
        found.sort(key=lambda r: r["_created"])
        return found

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

    def boot_for(self, inst: dict[str, Any]) -> Boot:
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
        return Boot(
            instance_id=inst["InstanceId"],
            image_file=Path(image) if image else None,
            work_dir=self.instance_dir(inst["InstanceId"]),
            authorized_keys=tuple(keys),
            user_data=user_data,
            hostname=inst.get("HostName"),
            cpus=int(inst.get("Cpu", 1)),
            memory_mb=int(inst.get("Memory", 1024)),
            disk_size_gb=int(inst.get("_disk_size", 20)),
        )

    def start_instance(self, inst: dict[str, Any], extra_seconds: float = 0.0) -> None:
        iid = inst["InstanceId"]
        self.later(inst, "Starting", "Running", self.profile.instance_start + extra_seconds, wait="start")
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
                    for name in ("_then", "_until", "_wait"):
                        current.pop(name, None)
                    current["Status"] = "Stopped"
                    current["_error"] = str(err)[:300]
                    self.put(current)
                return
            current = self.store.get("instance", iid)
            if current is None:
                return
            if current.get("_wait") == "start":
                current.pop("_wait")
            current["_started_once"] = True
            current.pop("_error", None)
            self.put(current)

        self.instance_op(iid, work)

    def stop_instance(self, inst: dict[str, Any], force: bool) -> None:
        iid = inst["InstanceId"]
        self.later(inst, "Stopping", "Stopped", self.profile.instance_stop, wait="stop")
        self.put(inst)

        async def work() -> None:
            try:
                await self.backend.stop(iid, force)
            finally:
                current = self.store.get("instance", iid)
                # a start queued behind this stop (RebootInstance) owns the wait from then on
                if current is not None and current.get("_wait") == "stop":
                    current.pop("_wait")
                    self.put(current)

        self.instance_op(iid, work)

    def destroy_instance(self, inst: dict[str, Any]) -> None:
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

    async def expose(self, address: str, instance_id: str) -> None:
        await self.forwarder.open(address, lambda: self.endpoint_of(instance_id))

    # images ------------------------------------------------------------------------------------------
    def image_file(self, image_id: str) -> Path:
        return self.images_dir / f"{image_id}.img"

    def save_instance_disk(self, inst: dict[str, Any], targets: list[dict[str, Any]], dest: Path) -> None:
        """Save the instance's disk to `dest`; each target (image, snapshot) waits for it."""
        iid = inst["InstanceId"]
        work_dir = self.instance_dir(iid)

        async def work() -> None:
            ok = True
            try:
                source = inst.get("_image_file")
                await self.backend.save_disk(iid, work_dir, dest, Path(source) if source else None)
            except Exception as err:
                log.warning("saving the disk of %s failed: %s", iid, err)
                ok = False
            self.finish_targets(targets, ok)

        self.instance_op(iid, work)

    def finish_targets(self, targets: list[dict[str, Any]], ok: bool) -> None:
        for target in targets:
            current = self.store.get(target["_kind"], target["_id"])
            if current is None:
                continue
            current.pop("_wait", None)
            if not ok:
                current.pop("_then", None)
                current["Status"] = "CreateFailed" if current["_kind"] == "image" else "failed"
            self.put(current)

    # restart ---------------------------------------------------------------------------------------------
    async def recover(self) -> None:
        """After a restart (clean or kill -9): nothing is forgotten, running instances come back."""
        for inst in self.store.all("instance"):
            status = inst.get("Status")
            for name in ("_wait",):
                inst.pop(name, None)
            if status in ("Pending", "Starting", "Running") and inst.get("_then") != "Stopped":
                self.start_instance(inst)
            elif status in ("Stopping",) or inst.get("_then") == "Stopped":
                for name in ("_then", "_until"):
                    inst.pop(name, None)
                inst["Status"] = "Stopped"
                self.put(inst)
        for kind in ("image", "snapshot"):
            for res in self.store.all(kind):
                if res.get("_wait"):
                    # the disk copy in flight died with the process: the cloud reports such a task failed
                    self.finish_targets([res], ok=False)
        for eip in self.store.all("eip"):
            if eip.get("InstanceId"):
                await self.expose(eip["IpAddress"], eip["InstanceId"])
        for inst in self.store.all("instance"):
            for address in inst.get("PublicIpAddress", []):
                await self.expose(address, inst["InstanceId"])

    async def close(self) -> None:
        await self.forwarder.close_all()
        await asyncio.gather(*self._ops.values(), return_exceptions=True)
        await self.backend.shutdown()
