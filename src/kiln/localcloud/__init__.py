"""localcloud: a local Alibaba Cloud ECS + VPC API whose instances are real machines.

The official SDKs (Tea V3 and V1 signatures, aliyun-python-sdk-core, Packer's Go SDK) talk to it over
HTTP exactly as to the real cloud: one endpoint answers ECS 2014-05-26 and VPC 2016-04-28 RPC calls,
checks signatures, timestamps and nonces, and answers JSON or XML with the real error codes. Each
instance is a kiln machine (namespace runner by default, QEMU VM on request) reachable over SSH at
its own public address in 127.100.0.0/16. State lives in SQLite under the state folder.

Modules: `signing` / `auth` (signatures), `wire` (JSON/XML, errors), `store` (SQLite), `cloud`
(resources, time, background work), `actions_*` (the API), `backend` / `machines_backend` (what
runs an instance), `forward` (public addresses), `faults`, `console`, `server`, `service` (serve),
`background` (start a server as a subprocess for other code).

The HTTP server is aiohttp: already a kiln dependency, asyncio-native, so the API, the SSH
forwarders of every public address and the background work on machines all share one event loop
without threads; it handles GET and POST, form bodies and raw bytes (needed to verify
x-acs-content-sha256) with little code, and serves the console from the same port.
"""

from __future__ import annotations

from kiln.localcloud.background import LocalCloudProcess, start
from kiln.localcloud.profile import LatencyProfile

__all__ = ["LatencyProfile", "LocalCloudProcess", "start"]
