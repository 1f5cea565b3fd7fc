"""The HTTP server: one port, one front door per protocol, and the console.

A request reaches a front door by its host name (`hosts.product`: `ecs*.aliyuncs.com`, `vpc*`,
`ram*`, `sts*` go to the RPC door; `oss-REGION.aliyuncs.com` and `BUCKET.oss-REGION...` the OSS
door) or, at localcloud's own address, by what the request is: the console owns `/console`; the OSS door takes what `is_oss`
says is OSS's (an OSS signature, or any path but `/`); the RPC door answers the rest.
As an HTTP proxy (an absolute-form target, `POST http://ecs-cn-hangzhou.aliyuncs.com/?...`) it
answers for those names and for itself only, and refuses any other host without connecting to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

import kiln.localcloud.actions  # noqa: F401 - declares every action in the registry the front door reads
from kiln.localcloud import console, hosts, incoming
from kiln.localcloud.api.oss.door import OssFrontDoor, is_oss
from kiln.localcloud.api.rpc import RpcFrontDoor
from kiln.localcloud.model.cloud import Cloud

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    def __init__(self, cloud: Cloud, listen: str = "127.0.0.1") -> None:
        self.cloud = cloud
        self.listen = listen  # the address served on: the console answers to it (and to loopback)
        self.port = -1  # the bound port, once the socket is bound (service.serve sets it)
        self.rpc = RpcFrontDoor(cloud)
        self.doors: dict[str, Handler] = {name: self.rpc.handle for name in hosts.RPC_PRODUCTS}
        self.app = web.Application(client_max_size=incoming.MAX_BODY, middlewares=[self._route])
        console.add_routes(self.app, cloud, listen)
        self.oss = OssFrontDoor(cloud)
        self.doors["oss"] = self.oss.handle
        self.app.router.add_route("*", "/{tail:.*}", self.route)

    async def route(self, request: web.Request) -> web.StreamResponse:
        """At localcloud's own address: OSS by its signature or path, else RPC."""
        if is_oss(request):
            return await self.oss.handle(request)
        return await self.rpc.handle(request)

    def refusal(self, host: str, port: int | None, proxied: bool = True) -> str | None:
        """Why a request for host:port is refused (None when it is answered); `proxied` when it came
        as a proxy request, which may name localcloud itself (a CONNECT may not: no TLS there)."""
        own = (self.listen, self.port) if proxied else None
        return hosts.refusal(host, port, own, tuple(self.doors))

    @web.middleware
    async def _route(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "CONNECT":
            return refused(405, "CONNECT must be the first request of a connection")
        if request.raw_path.startswith(("http://", "https://")):  # absolute-form: a proxy request
            why = self.refusal(request.url.host or "", request.url.port)
            if why is not None:
                return refused(403, why)
        door = self.doors.get(hosts.product(hosts.split(request.host)[0]) or "")
        return await (door or handler)(request)


def refused(status: int, why: str) -> web.Response:
    """A proxy's refusal: plain text, since the client is not talking to an Alibaba API."""
    response = web.Response(status=status, text=f"localcloud: {why}\n")
    response.force_close()
    return response
