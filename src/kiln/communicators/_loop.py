"""One asyncio event loop in a daemon thread, shared by every SSH connection of the process.

asyncssh is asynchronous; kiln's Communicator interface is synchronous (provisioners are plain
code running in a build's thread). Calls cross over with `run_coroutine_threadsafe`, and a build's
CancelToken cancels the coroutine it is waiting on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from kiln.core.cancel import CancelToken
from kiln.errors import CancelledError

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            new = asyncio.new_event_loop()
            thread = threading.Thread(target=new.run_forever, name="kiln-ssh", daemon=True)
            thread.start()
            _loop = new
        return _loop


def call(coro: Coroutine[Any, Any, T], cancel: CancelToken | None = None) -> T:
    """Run `coro` on the shared loop and wait for its result; CancelledError if `cancel` fires."""
    future = asyncio.run_coroutine_threadsafe(coro, loop())

    def stop() -> None:
        future.cancel()

    remove = cancel.on_cancel(stop) if cancel is not None else None
    try:
        return future.result()
    except concurrent.futures.CancelledError:
        raise CancelledError() from None
    finally:
        if remove is not None:
            remove()


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    return asyncio.run_coroutine_threadsafe(coro, loop())
