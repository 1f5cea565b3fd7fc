"""The console: a read-only page of regions, instances, images, networks, key pairs and the request log.

It shows no secret to anyone (no access key secret, no private key, no UserData, no password), so it
may answer without a signature; it changes nothing. It answers only requests addressed to this
machine by a loopback name or by the address localcloud listens on: a web page elsewhere whose name
was made to resolve to 127.0.0.1 (DNS rebinding) sends its own name as Host, and gets nothing.
"""

from __future__ import annotations

import ipaddress
import time
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from kiln.localcloud.api.views import instance_status
from kiln.localcloud.model.cloud import Cloud
from kiln.localcloud.model.images import progress, public_image
from kiln.localcloud.model.regions import REGIONS


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def host_allowed(host: str, listen: str) -> bool:
    """Whether a request's Host names this machine: a loopback name or address, or `listen` (the
    address the server is bound to; when that is all addresses, any IP address, never a name)."""
    try:
        name = (urlsplit(f"//{host}").hostname or "").rstrip(".")
    except ValueError:
        return False
    bound = listen.strip("[]").lower()
    if not name:
        return False
    if name == "localhost" or name.endswith(".localhost") or name == bound:
        return True
    address, bound_address = _ip(name), _ip(bound)
    if address is None:
        return False
    return address.is_loopback or (bound_address is not None and bound_address.is_unspecified)


def _mask(access_key_id: str) -> str:
    return access_key_id if access_key_id in ("-", "") else access_key_id[:6] + "…"


def snapshot(cloud: Cloud) -> dict[str, Any]:
    instances = []
    for inst in cloud.items("instance"):
        status = instance_status(inst)
        instances.append(
            {
                "InstanceId": inst["InstanceId"],
                "InstanceName": inst["InstanceName"],
                "RegionId": inst["RegionId"],
                "ZoneId": inst["ZoneId"],
                "Status": status,
                "InstanceType": inst["InstanceType"],
                "ImageId": inst["ImageId"],
                "KeyPairName": inst.get("KeyPairName", ""),
                "PublicIp": ", ".join(inst.get("PublicIpAddress", [])),
                "Eip": inst["EipAddress"].get("IpAddress", ""),
                "PrivateIp": ", ".join(inst["VpcAttributes"]["PrivateIpAddress"]["IpAddress"]),
                "LastError": inst.get("_error", "") if status == "Stopped" else "",
            }
        )
    images = [public_image(r, None) for r in REGIONS][:1] + cloud.items("image")
    image_rows = [
        {
            "ImageId": i["ImageId"],
            "ImageName": i["ImageName"],
            "RegionId": i["RegionId"] if i["ImageOwnerAlias"] != "system" else "all",
            "Status": i["Status"],
            "Progress": progress(i),
            "Owner": i["ImageOwnerAlias"],
            "CreationTime": i["CreationTime"],
        }
        for i in images
    ]
    return {
        "Runner": cloud.backend.name,
        "Regions": [{"RegionId": r, "LocalName": n} for r, n in REGIONS.items()],
        "Instances": instances,
        "Images": image_rows,
        "Vpcs": [
            {k: v[k] for k in ("VpcId", "VpcName", "CidrBlock", "Status", "RegionId")}
            for v in cloud.items("vpc")
        ],
        "VSwitches": [
            {k: v[k] for k in ("VSwitchId", "VSwitchName", "VpcId", "ZoneId", "CidrBlock", "Status")}
            for v in cloud.items("vswitch")
        ],
        "SecurityGroups": [
            {
                "SecurityGroupId": g["SecurityGroupId"],
                "SecurityGroupName": g["SecurityGroupName"],
                "VpcId": g["VpcId"],
                "Rules": len(g["_rules"]),
            }
            for g in cloud.items("sg")
        ],
        "Eips": [
            {k: e[k] for k in ("AllocationId", "IpAddress", "Status", "InstanceId", "RegionId")}
            for e in cloud.items("eip")
        ],
        "KeyPairs": [
            {k: p[k] for k in ("KeyPairName", "KeyPairFingerPrint", "RegionId")}
            for p in cloud.items("keypair")
        ],
        "Buckets": cloud.oss.usage(),
        "Requests": [
            {
                "Time": time.strftime("%H:%M:%S", time.gmtime(e.time)),
                "Action": e.action,
                "AccessKeyId": _mask(e.access_key_id),
                "HttpStatus": e.status,
                "Code": e.code,
                "Millis": round(e.millis, 1),
            }
            for e in cloud.store.recent_requests(50)
        ],
    }


def add_routes(app: web.Application, cloud: Cloud, listen: str) -> None:
    """The console's routes, answering only to names of this machine (see host_allowed)."""
    page = resources.files("kiln.localcloud").joinpath("console.html").read_text(encoding="utf-8")

    def refused(request: web.Request) -> web.Response | None:
        if host_allowed(request.host, listen):
            return None
        return web.Response(
            status=403,
            text=f"localcloud console: {request.host!r} is not a name of this machine; "
            f"open it as http://127.0.0.1:{request.url.port or ''}/console\n",
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )

    async def index(request: web.Request) -> web.Response:
        if (refusal := refused(request)) is not None:
            return refusal
        return web.Response(
            text=page,
            content_type="text/html",
            charset="utf-8",
            headers={
                "Cache-Control": "no-store",
                "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline'",
            },
        )

    async def state(request: web.Request) -> web.Response:
        if (refusal := refused(request)) is not None:
            return refusal
        return web.json_response(snapshot(cloud), headers={"Cache-Control": "no-store"})

    app.router.add_get("/console", index)
    app.router.add_get("/console/", index)
    app.router.add_get("/console/state", state)
