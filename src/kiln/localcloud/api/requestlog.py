"""The request log's line for one answered request, written the same way by every front door (RPC, OSS)."""

from __future__ import annotations

import logging
import sqlite3
import time

from kiln.localcloud.auth import Caller
from kiln.localcloud.model.cloud import Cloud
from kiln.localcloud.store import LogEntry

log = logging.getLogger("localcloud")


def record(
    cloud: Cloud, request_id: str, action: str, caller: Caller | None, status: int, code: str, began: float
) -> None:
    """Log the request that began at `began` (time.monotonic()). The answer stands whatever happens
    here (what it reports has happened, or has not): a line that cannot be written is only warned of."""
    entry = LogEntry(
        time=time.time(),
        request_id=request_id,
        action=action[:64] or "-",
        access_key_id=caller.key.access_key_id if caller else "-",
        signature=caller.signature if caller else "none",
        status=status,
        code=code,
        millis=(time.monotonic() - began) * 1000,
    )
    try:
        cloud.store.log(entry)
    except (sqlite3.Error, OSError) as err:
        log.warning("request %s not logged: %s", request_id, err)
