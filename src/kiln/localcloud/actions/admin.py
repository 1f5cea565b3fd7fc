"""localcloud's own actions (Version `kiln-localcloud`): fault injection, the request log, the latency profile.

They are signed calls like any other, so nothing unauthenticated can change how the cloud behaves.
"""

from __future__ import annotations

import time
from typing import Any

from kiln.errors import KilnError
from kiln.localcloud import errors
from kiln.localcloud.api.registry import ADMIN, Json, action
from kiln.localcloud.api.request import Call
from kiln.localcloud.model.cloud import Cloud
from kiln.localcloud.profile import LatencyProfile
from kiln.localcloud.store import LogEntry


@action("KilnInjectFault", ADMIN)
async def inject_fault(cloud: Cloud, call: Call) -> Json:
    return {"Fault": cloud.faults.add(call.params).view()}


@action("KilnClearFaults", ADMIN)
async def clear_faults(cloud: Cloud, call: Call) -> Json:
    raw = call.get("FaultId")
    cloud.faults.clear(int(raw) if raw and raw.isdigit() else None)
    return {}


@action("KilnDescribeFaults", ADMIN)
async def describe_faults(cloud: Cloud, call: Call) -> Json:
    return {"Faults": {"Fault": [f.view() for f in cloud.faults.all()]}}


def entry_view(entry: LogEntry) -> dict[str, Any]:
    return {
        "Time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.time)),
        "RequestId": entry.request_id,
        "Action": entry.action,
        "AccessKeyId": entry.access_key_id,
        "Signature": entry.signature,
        "HttpStatus": entry.status,
        "Code": entry.code,
        "Millis": round(entry.millis, 2),
    }


@action("KilnDescribeRequestLog", ADMIN)
async def describe_request_log(cloud: Cloud, call: Call) -> Json:
    limit = call.integer("Limit", 100)
    entries = cloud.store.recent_requests(min(max(limit, 1), 1000))
    return {"Requests": {"Request": [entry_view(e) for e in entries]}}


@action("KilnSetLatencyProfile", ADMIN)
async def set_latency_profile(cloud: Cloud, call: Call) -> Json:
    profile = call.get("Profile")
    try:
        cloud.profile = LatencyProfile.parse(profile) if profile is not None else LatencyProfile()
    except KilnError as err:
        raise errors.invalid("Profile", f"is not a latency profile: {err.message}") from None
    return {"Profile": cloud.profile.render()}
