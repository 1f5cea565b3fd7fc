"""Security group rules decide a connection as the cloud documents: matching rules by priority, drop
over accept at the same priority, nothing matching is dropped."""

from __future__ import annotations

from kiln.localcloud.model.firewall import allows


def rule(cidr: str = "0.0.0.0/0", protocol: str = "TCP", ports: str = "22/22", **more: str) -> dict[str, str]:
    return {"Direction": "ingress", "IpProtocol": protocol, "PortRange": ports, "SourceCidrIp": cidr, **more}


def test_no_rule_no_entry() -> None:
    assert not allows([], "tcp", 22, "127.0.0.1")
    egress = {**rule(), "Direction": "egress"}
    assert not allows([egress], "tcp", 22, "127.0.0.1")


def test_protocol_port_and_source_must_match() -> None:
    assert allows([rule()], "tcp", 22, "127.0.0.1")
    assert not allows([rule(ports="80/80")], "tcp", 22, "127.0.0.1")
    assert allows([rule(ports="1/1024")], "tcp", 22, "127.0.0.1")
    assert not allows([rule(protocol="UDP")], "tcp", 22, "127.0.0.1")
    assert allows([rule(protocol="ALL", ports="-1/-1")], "tcp", 22, "127.0.0.1")
    assert not allows([rule(cidr="10.0.0.0/8")], "tcp", 22, "127.0.0.1")
    assert allows([rule(cidr="127.0.0.1")], "tcp", 22, "127.0.0.1")
    assert not allows([rule(cidr="", SourceGroupId="sg-1")], "tcp", 22, "127.0.0.1")


def test_priority_then_drop_wins() -> None:
    accept, drop = rule(Priority="1", Policy="Accept"), rule(Priority="1", Policy="Drop")
    assert not allows([accept, drop], "tcp", 22, "127.0.0.1")
    assert not allows([drop, accept], "tcp", 22, "127.0.0.1")
    assert allows(
        [rule(Priority="1", Policy="Accept"), rule(Priority="2", Policy="Drop")], "tcp", 22, "127.0.0.1"
    )
    assert not allows(
        [rule(Priority="3", Policy="Accept"), rule(Priority="2", Policy="Drop")], "tcp", 22, "::1"
    )
    # a drop that does not match this caller decides nothing
    assert allows([accept, rule(cidr="10.0.0.0/8", Policy="Drop")], "tcp", 22, "127.0.0.1")
