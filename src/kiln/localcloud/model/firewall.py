"""Security group rules as the cloud applies them to a connection reaching an instance.

The ingress rules of all the instance's groups are taken together; the rules that match the
connection (protocol, destination port, source address) decide by priority (1 is the highest, 100
the lowest), and of two matching rules of the same priority the drop wins. A connection no rule
accepts is dropped, as a basic security group's inbound default is.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

Rule = Mapping[str, Any]


def _port_matches(port_range: str, port: int) -> bool:
    low, _, high = port_range.partition("/")
    try:
        first, last = int(low), int(high or low)
    except ValueError:
        return False
    return (first, last) == (-1, -1) or first <= port <= last


def _source_matches(cidr: str, source: str) -> bool:
    if not cidr:
        return False  # a rule naming a source group: the caller is not an instance of it
    try:
        return ipaddress.ip_address(source) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def matches(rule: Rule, protocol: str, port: int, source: str) -> bool:
    if rule.get("Direction") != "ingress":
        return False
    wanted = str(rule.get("IpProtocol", "")).lower()
    if wanted not in ("all", protocol):
        return False
    if wanted != "all" and not _port_matches(str(rule.get("PortRange", "")), port):
        return False
    return _source_matches(str(rule.get("SourceCidrIp", "")), source)


def allows(rules: Iterable[Rule], protocol: str, port: int, source: str) -> bool:
    """Whether a new `protocol` connection from `source` to `port` is accepted."""
    best: tuple[int, bool] | None = None  # (priority, accepted) of the deciding rule
    for rule in rules:
        if not matches(rule, protocol, port, source):
            continue
        priority = int(rule.get("Priority") or 1)
        accepted = str(rule.get("Policy", "accept")).lower() == "accept"
        if best is None or priority < best[0] or (priority == best[0] and not accepted):
            best = (priority, accepted)
    return best is not None and best[1]
