"""Fault injection: make chosen actions fail with chosen errors N times or at a rate, throttle, add latency.

Faults are set through authenticated API calls (`KilnInjectFault`, `KilnClearFaults`,
`KilnDescribeFaults`), never through an unauthenticated door; they live in memory and a restart clears
them, so a forgotten fault cannot outlive the test that set it.
"""

from __future__ import annotations

import fnmatch
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from kiln.localcloud import errors
from kiln.localcloud.errors import ApiError

DEFAULT_STATUS = {"Throttling": 400, "Throttling.User": 400, "InternalError": 500, "ServiceUnavailable": 503}


@dataclass
class Fault:
    id: int
    action: str = "*"
    code: str = ""
    status: int = 400
    message: str = "Injected by localcloud."
    count: int | None = None
    rate: float = 1.0
    latency: float = 0.0
    max_per_second: float | None = None
    fired: int = 0
    _window: list[float] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("_window", None)
        return {"".join(p.capitalize() for p in k.split("_")): v for k, v in data.items()}


class Faults:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._next = 1
        self._random = random.Random()

    def add(self, params: dict[str, str]) -> Fault:
        def number(name: str, cast: type[float] | type[int], default: Any) -> Any:
            raw = params.get(name)
            if raw in (None, ""):
                return default
            try:
                return cast(raw)
            except ValueError:
                raise errors.invalid(name) from None

        code = params.get("Code", "")
        fault = Fault(
            id=self._next,
            action=params.get("TargetAction", "*") or "*",
            code=code,
            status=number("HttpStatus", int, DEFAULT_STATUS.get(code, 400)),
            message=params.get("Message") or "Injected by localcloud.",
            count=number("Count", int, None),
            rate=number("Rate", float, 1.0),
            latency=number("LatencyMs", float, 0.0) / 1000.0,
            max_per_second=number("MaxPerSecond", float, None),
        )
        if not code and not fault.latency and fault.max_per_second is None:
            raise errors.missing("Code")
        if fault.max_per_second is not None and not code:
            fault.code, fault.status = "Throttling.User", 400
            fault.message = "Request was denied due to user flow control."
        self._next += 1
        self._faults.append(fault)
        return fault

    def clear(self, fault_id: int | None = None) -> None:
        self._faults = [f for f in self._faults if fault_id is not None and f.id != fault_id]

    def all(self) -> list[Fault]:
        return list(self._faults)

    def match(self, action: str) -> tuple[float, ApiError | None]:
        """(extra latency, error to answer) for one call of `action`."""
        delay, error = 0.0, None
        now = time.monotonic()
        for fault in list(self._faults):
            if not fnmatch.fnmatchcase(action, fault.action):
                continue
            delay += fault.latency
            if not fault.code or error is not None:
                continue
            if fault.max_per_second is not None:
                fault._window = [t for t in fault._window if now - t < 1.0]
                if len(fault._window) < fault.max_per_second:
                    fault._window.append(now)
                    continue
            elif self._random.random() >= fault.rate:
                continue
            fault.fired += 1
            error = ApiError(fault.status, fault.code, fault.message)
            if fault.count is not None and fault.fired >= fault.count:
                self._faults.remove(fault)
        return delay, error
