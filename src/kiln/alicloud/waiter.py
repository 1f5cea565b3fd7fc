"""Adaptive waits for cloud status changes: poll fast at first, then back off.

Packer polls every 5 seconds, so a transition of 0.5 s costs 5 s and one of 10.2 s costs 15 s.
Polling at 0.2 s, growing by half each time up to a ceiling, notices a quick change at once and
keeps the number of calls on a long one small. Waits wake up at once when the run is cancelled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from kiln.engine.cancel import CancelToken
from kiln.errors import CloudError

T = TypeVar("T")


@dataclass(frozen=True)
class WaitPolicy:
    first: float = 0.2  #: seconds before the second poll
    factor: float = 1.5
    cap: float = 2.0  #: longest pause between polls

    def pauses(self) -> Callable[[], float]:
        current = [self.first]

        def next_pause() -> float:
            pause = current[0]
            current[0] = min(self.cap, current[0] * self.factor)
            return pause

        return next_pause


#: What kiln uses.
ADAPTIVE = WaitPolicy()
#: Packer's waits: every 5 seconds (used by the benchmark that replays Packer's strategy).
PACKER = WaitPolicy(first=5.0, factor=1.0, cap=5.0)


class WaitTimeout(CloudError):
    pass


def wait_until(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float,
    cancel: CancelToken | None = None,
    policy: WaitPolicy = ADAPTIVE,
) -> T:
    """Call `probe` until it returns something other than None, and return that. `probe` raises to
    stop waiting on a terminal failure. Raises WaitTimeout after `timeout` seconds, CancelledError
    when `cancel` fires."""
    deadline = time.monotonic() + timeout
    next_pause = policy.pauses()
    while True:
        if cancel is not None:
            cancel.check()
        result = probe()
        if result is not None:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(
                f"timed out after {timeout:g}s waiting for {what}",
                "the cloud may be slow or the resource stuck; check it in the console and retry",
            )
        pause = min(next_pause(), remaining)
        if cancel is not None:
            cancel.sleep(pause)
        else:
            time.sleep(pause)
