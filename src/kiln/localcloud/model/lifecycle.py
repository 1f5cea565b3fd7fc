"""Status transitions: the bookkeeping that moves a resource's Status with time and with real work.

A timed transition is kept on the resource under one internal field, `_transition` =
`{"then": next status, "until": when, "wait": work still running or None}`, and applied when the
resource is next read, so it needs no timer and survives a restart. A transition that waits for real
work (a machine booting, a disk being saved) names that work in `wait`; the task doing it calls
`work_done`, and the status moves on only when both the time has passed and the work is done. Only
this module reads or writes `_transition`; the resource's own fields are declared in `kinds`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, MutableMapping
from typing import Any

FIELD = "_transition"
_LEGACY = ("_then", "_until", "_wait")  # how state folders before `_transition` kept it

Record = MutableMapping[str, Any]


def begin(res: Record, status: str, then: str, seconds: float, wait: str | None = None) -> None:
    """`res` is `status` now and becomes `then` after `seconds` (and after `wait` is done)."""
    res["Status"] = status
    res[FIELD] = {"then": then, "until": time.time() + seconds, "wait": wait}


def reach(res: Record, status: str) -> None:
    """A status reached at once: any transition in flight is over."""
    res["Status"] = status
    res.pop(FIELD, None)


def work_done(res: Record, wait: str | None = None) -> bool:
    """The work the transition waits for (`wait`, or whatever it waits for) is done; True if it waited."""
    step = res.get(FIELD)
    if step is None or step["wait"] is None or (wait is not None and step["wait"] != wait):
        return False
    res[FIELD] = {**step, "wait": None}
    return True


def due(res: Mapping[str, Any]) -> bool:
    """Whether the transition can be applied now."""
    step = res.get(FIELD)
    return step is not None and step["wait"] is None and time.time() >= step["until"]


def settle(res: Record) -> bool:
    """Apply a due transition; True if the status changed."""
    if not due(res):
        return False
    res["Status"] = res.pop(FIELD)["then"]
    return True


def heading_to(res: Mapping[str, Any]) -> str | None:
    """The status a transition in flight leads to (None: none in flight)."""
    step = res.get(FIELD)
    return None if step is None else str(step["then"])


def until(res: Mapping[str, Any]) -> float | None:
    step = res.get(FIELD)
    return None if step is None else float(step["until"])


def waiting(res: Mapping[str, Any]) -> bool:
    step = res.get(FIELD)
    return step is not None and step["wait"] is not None


def abandon_work(res: Record) -> None:
    """The work in flight died with the process (a restart): the time alone decides now."""
    work_done(res)


def migrate(res: Record) -> bool:
    """Turn the old `_then` / `_until` / `_wait` fields into `_transition`; True if anything changed."""
    if not any(name in res for name in _LEGACY):
        return False
    then, until_, wait = (res.pop(name, None) for name in _LEGACY)
    if then:
        res[FIELD] = {"then": then, "until": float(until_ or 0.0), "wait": wait or None}
    return True
