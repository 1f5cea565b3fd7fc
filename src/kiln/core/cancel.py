"""Cancellation: one token per run, set by SIGINT/SIGTERM, checked by steps and provisioners."""

from __future__ import annotations

import threading
from collections.abc import Callable

from kiln.errors import CancelledError


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a callback failing must not stop the others from running
                pass

    def check(self) -> None:
        """Raise CancelledError if the run was cancelled."""
        if self._event.is_set():
            raise CancelledError()

    def sleep(self, seconds: float) -> None:
        """Sleep, waking up at once (with CancelledError) if the run is cancelled."""
        if self._event.wait(max(0.0, seconds)):
            raise CancelledError()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` when the run is cancelled (at once if it already is). Returns a function
        that unregisters it."""
        with self._lock:
            already = self._event.is_set()
            if not already:
                self._callbacks.append(callback)
        if already:
            callback()

        def remove() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return remove
