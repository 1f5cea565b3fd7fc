"""Which host names localcloud answers for, and which front door each one reaches.

localcloud is reached either at its own address (`http://127.0.0.1:8720`, every product on one
endpoint) or, as an HTTP proxy, under Alibaba's public names: `ecs*.aliyuncs.com`
(`ecs.aliyuncs.com`, `ecs-cn-hangzhou.aliyuncs.com`, `ecs.cn-beijing.aliyuncs.com`), `vpc*`,
`ram*`, `sts*` (the RPC front door) and `oss-REGION.aliyuncs.com` / `BUCKET.oss-REGION.aliyuncs.com`
(OSS). Any other name is refused before anything is connected: localcloud never connects out.
"""

from __future__ import annotations

import ipaddress

SUFFIX = ".aliyuncs.com"
RPC_PRODUCTS = ("ecs", "vpc", "ram", "sts")


def split(authority: str) -> tuple[str, int | None]:
    """`host[:port]` (or `[v6]:port`) -> (lower-case host, port or None)."""
    host, port = authority.strip().lower(), None
    if host.startswith("["):
        end = host.find("]")
        rest, host = host[end + 1 :], host[1:end]
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
        return host, port
    name, sep, tail = host.rpartition(":")
    if sep and tail.isdigit() and ":" not in name:
        return name, int(tail)
    return host, port


def product(host: str) -> str | None:
    """The product an aliyuncs.com name belongs to (`ecs`, `vpc`, `ram`, `sts`, `oss`), else None."""
    host = host.lower().rstrip(".")
    if not host.endswith(SUFFIX):
        return None
    labels = host.removesuffix(SUFFIX).split(".")
    if any(label == "oss" or label.startswith("oss-") for label in labels):
        return "oss"
    first = labels[0].split("-", 1)[0]
    return first if first in RPC_PRODUCTS else None


def is_loopback(host: str) -> bool:
    if host in ("localhost",) or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refusal(
    host: str, port: int | None, own: tuple[str, int] | None, products: tuple[str, ...]
) -> str | None:
    """Why localcloud will not answer for `host:port` as a proxy (None when it will): it answers
    for the aliyuncs.com names of `products`, and for `own` (its address, plain HTTP) when given."""
    if product(host) in products:
        return None
    if own is not None:
        listen, bound = own
        if port == bound and (host == listen or (is_loopback(host) and is_loopback(listen))):
            return None  # a proxied request for localcloud itself
    if host.endswith(SUFFIX):
        return (
            f"localcloud emulates {', '.join(products)} only; {host} is not one of their endpoints"
            " (nothing was connected)"
        )
    return (
        f"localcloud proxies only Alibaba Cloud API hosts (*{SUFFIX}); {host} is not one"
        " (nothing was connected: unset HTTP_PROXY/HTTPS_PROXY for other hosts, or add them to NO_PROXY)"
    )
