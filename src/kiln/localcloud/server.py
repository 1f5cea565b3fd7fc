"""The HTTP server: one port, one front door per protocol, and the console.

The OSS front door (`api.oss.door`) takes what `is_oss` says is OSS's (an OSS Host name, an OSS
signature, or any path but `/`); the RPC front door (`api.rpc`) answers the rest, but the console.
"""

from __future__ import annotations

from aiohttp import web

import kiln.localcloud.actions  # noqa: F401 - declares every action in the registry the front door reads
from kiln.localcloud import console, incoming
from kiln.localcloud.api.oss.door import OssFrontDoor, is_oss
from kiln.localcloud.api.rpc import RpcFrontDoor
from kiln.localcloud.model.cloud import Cloud


class Server:
    def __init__(self, cloud: Cloud, listen: str = "127.0.0.1") -> None:
        self.cloud = cloud
        self.listen = listen  # the address served on: the console answers to it (and to loopback)
        self.rpc = RpcFrontDoor(cloud)
        self.app = web.Application(client_max_size=incoming.MAX_BODY)
        console.add_routes(self.app, cloud, listen)
        self.oss = OssFrontDoor(cloud)
        self.app.router.add_route("*", "/{tail:.*}", self.route)

    async def route(self, request: web.Request) -> web.StreamResponse:
        if is_oss(request):
            return await self.oss.handle(request)
        return await self.rpc.handle(request)
