"""Running code under a time and memory bound, for the fuzz tests: a hang or a runaway allocation
becomes a failure naming the input instead of a suite that never ends or a machine out of memory."""

from __future__ import annotations

import contextlib
import resource
import signal
from collections.abc import Iterator
from types import FrameType


class Hang(BaseException):
    """The code ran past its time bound (BaseException: kiln's `except Exception` must not eat it)."""


@contextlib.contextmanager
def bounded(seconds: float, memory: int = 1536 * 1024 * 1024) -> Iterator[None]:
    """Raise Hang if the block runs longer than `seconds`; let it allocate at most `memory` bytes
    more than the process holds (then it gets MemoryError). Main thread only (SIGALRM)."""

    def alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"still running after {seconds} s")

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * resource.getpagesize()
    limit = used + memory
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    previous = signal.signal(signal.SIGALRM, alarm)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
