"""A running build's heartbeat: every so often it writes the time into its journal and into the
`kiln-heartbeat` tag of each temporary resource it holds.

That is what lets `kiln cleanup --stale`, run anywhere (another host, container or state folder,
where the build's process cannot be looked up), tell a live build from a dead one: a run is stale
only once its newest heartbeat is older than a bound (`--older-than`, STALE_AFTER by default),
many beats long.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from types import TracebackType

from kiln.alicloud.client import AlicloudClient
from kiln.alicloud.journal import HEARTBEAT_TAG, Journal, heartbeat_text
from kiln.duration import go_duration, seconds_from_env
from kiln.errors import KilnError

log = logging.getLogger("kiln.alicloud")

#: How often a build beats (KILN_HEARTBEAT_SECONDS changes it).
HEARTBEAT_SECONDS = 120.0
#: A run found only by its tags is stale once its newest heartbeat is this old (15 missed beats).
STALE_AFTER = 1800.0

#: journal kind -> (API product, TagResources ResourceType)
RESOURCE_TYPES = {
    "instance": ("ecs", "instance"),
    "image": ("ecs", "image"),
    "snapshot": ("ecs", "snapshot"),
    "security_group": ("ecs", "securitygroup"),
    "key_pair": ("ecs", "keypair"),
    "eip": ("vpc", "EIP"),
    "vpc": ("vpc", "VPC"),
    "vswitch": ("vpc", "VSWITCH"),
}
#: TagResources takes at most this many ResourceId.N.
BATCH = 50


def interval() -> float:
    return seconds_from_env(
        "KILN_HEARTBEAT_SECONDS",
        HEARTBEAT_SECONDS,
        lambda value: 0 < value < float("inf"),
        "a number of seconds above 0",
        f"unset it for the default ({HEARTBEAT_SECONDS:.0f})",
        KilnError,
    )


class Heartbeat:
    """`with Heartbeat(journal, client):` beats on a thread while the block runs."""

    def __init__(
        self, journal: Journal, client: AlicloudClient, warn: Callable[[str], None] | None = None
    ) -> None:
        self.journal = journal
        self.client = client
        self.warn = warn
        self.warned = False
        self.every = interval()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kiln-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.beat()
            except Exception as exc:  # a missed beat is retried at the next one
                log.info("heartbeat of run %s failed: %s", self.journal.run_id, exc)
                if self.warn is not None and not self.warned:
                    self.warned = True
                    self.warn(
                        f"Cannot refresh this build's heartbeat tag ({exc}): `kiln cleanup --stale` on "
                        f"another host may take it for dead once it is {go_duration(STALE_AFTER)} old"
                    )

    def beat(self) -> None:
        self.journal.beat()
        groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        for entry in self.journal.leftovers():
            if entry.id and entry.kind in RESOURCE_TYPES:
                service, resource_type = RESOURCE_TYPES[entry.kind]
                groups[(entry.region, service, resource_type)].append(entry.id)
        tag = [{"Key": HEARTBEAT_TAG, "Value": heartbeat_text(self.journal.heartbeat)}]
        for (region, service, resource_type), ids in groups.items():
            client = self.client.for_region(region)
            for start in range(0, len(ids), BATCH):
                if self._stop.is_set():
                    return
                client.call(
                    "TagResources",
                    {"ResourceType": resource_type, "ResourceId": ids[start : start + BATCH], "Tag": tag},
                    service=service,
                    attempts=2,
                )
