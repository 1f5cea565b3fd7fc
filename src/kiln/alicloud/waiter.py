"""Adaptive waits for cloud status changes: poll fast at first, then back off.

Packer polls every 5 seconds, so a transition of 0.5 s costs 5 s and one of 10.2 s costs 15 s.
Polling at 0.2 s, growing by half each time up to half a second, notices a quick change at once
and a boot or an image within half a second (two light calls a second, far below the API's rate
limits); past a minute the pauses grow to 5 s, so that an hour-long copy costs few calls. Waits wake up at once when the run is cancelled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from kiln.core.cancel import CancelToken
from kiln.errors import CloudError

T = TypeVar("T")


@dataclass(frozen=True)
class WaitPolicy:
    first: float = 0.2  #: seconds before the second poll
    factor: float = 1.5
    cap: float = 0.5  #: longest pause between polls while the wait is young
    late_after: float = 60.0  #: after this long, the wait is for something slow...
    late_cap: float = 5.0  #: ...and polls grow up to this pause

    def pauses(self) -> Callable[[], float]:
        started = time.monotonic()
        current = [self.first]

        def next_pause() -> float:
            pause = current[0]
            ceiling = self.late_cap if time.monotonic() - started > self.late_after else self.cap
            current[0] = min(ceiling, current[0] * self.factor)
            return pause

        return next_pause


#: What kiln uses: a boot (~10 s) or an image (~20 s) is noticed within half a second of being done;
#: a copy to another region (minutes) is polled every 5 s.
ADAPTIVE = WaitPolicy()
#: Packer's waits: every 5 seconds (used by the benchmark that replays Packer's strategy).
PACKER = WaitPolicy(first=5.0, factor=1.0, cap=5.0, late_cap=5.0)


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
