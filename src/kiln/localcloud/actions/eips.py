"""EIPs and public IPs: each is its own loopback address whose port 22 leads to its instance."""

from __future__ import annotations

import errno
import socket

from kiln.localcloud import errors
from kiln.localcloud.api import views
from kiln.localcloud.api.describe import AnyOf, Describe, Equals, Tags
from kiln.localcloud.api.registry import ECS, VPC, Json, action
from kiln.localcloud.api.request import Call
from kiln.localcloud.model import lifecycle
from kiln.localcloud.model.cloud import Cloud, Res
from kiln.localcloud.store import new_id

NO_EIP = {"AllocationId": "", "IpAddress": "", "Bandwidth": 0, "InternetChargeType": ""}


def _port_free(address: str, port: int) -> bool:
    """Whether nobody listens on address:port: another localcloud (another state folder) on this
    host may already forward that address to one of its own instances."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            # Not root: port 22 cannot be probed (nor forwarded); only a listener makes it taken.
            return exc.errno != errno.EADDRINUSE
    return True


def allocate_address(cloud: Cloud) -> str:
    used = {e["IpAddress"] for e in cloud.store.all("eip")}
    for inst in cloud.store.all("instance"):
        used.update(inst.get("PublicIpAddress", []))
    for n in range(2, 256 * 254):
        address = f"127.100.{n // 254}.{n % 254 + 1}"
        if address not in used and _port_free(address, 22):
            return address
    raise errors.EIP_QUOTA_EXCEEDED()


@action("AllocateEipAddress", ECS, VPC)
async def allocate_eip(cloud: Cloud, call: Call) -> Json:
    region = call.require_region()
    address = allocate_address(cloud)
    eip_id = new_id("eip-")
    eip = cloud.new(
        "eip",
        eip_id,
        region,
        AllocationId=eip_id,
        IpAddress=address,
        Status="Available",
        Bandwidth=call.text("Bandwidth", "5"),
        InternetChargeType=call.text("InternetChargeType", "PayByBandwidth"),
        InstanceId="",
        InstanceType="",
        Name=call.text("Name"),
        Tags=call.tags(),
    )
    eip["AllocationTime"] = eip["CreationTime"]
    cloud.put(eip)
    answer = {"AllocationId": eip_id, "EipAddress": address}
    return answer if call.product == ECS.name else {**answer, "ResourceGroupId": ""}


@action("AssociateEipAddress", ECS, VPC)
async def associate_eip(cloud: Cloud, call: Call) -> Json:
    eip = cloud.find("eip", call.require("AllocationId"), call.region)
    inst = cloud.find("instance", call.require("InstanceId"), eip["RegionId"])
    if call.text("InstanceType", "EcsInstance") != "EcsInstance":
        raise errors.invalid("InstanceType", "only EcsInstance is supported here")
    if eip["Status"] != "Available":
        raise errors.INCORRECT_EIP_STATUS(f"{eip['AllocationId']} is {eip['Status']}")
    if inst["Status"] not in ("Running", "Stopped"):
        raise errors.EIP_INCORRECT_INSTANCE_STATUS(f"{inst['InstanceId']} is {inst['Status']}")
    if inst["EipAddress"].get("AllocationId"):
        raise errors.EIP_ASSOCIATION_DUPLICATED(inst["InstanceId"])
    eip["InstanceId"], eip["InstanceType"] = inst["InstanceId"], "EcsInstance"
    lifecycle.begin(eip, "Associating", "InUse", cloud.profile.eip_associate)
    cloud.put(eip)
    inst["EipAddress"] = {
        "AllocationId": eip["AllocationId"],
        "IpAddress": eip["IpAddress"],
        "Bandwidth": int(eip["Bandwidth"]),  # an integer here, a string in the EIP's own answers
        "InternetChargeType": eip["InternetChargeType"],
    }
    cloud.put(inst)
    await cloud.expose(eip["IpAddress"], inst["InstanceId"])
    return {}


async def unbind_eip(cloud: Cloud, eip: Res, timed: bool = True) -> None:
    inst = cloud.get("instance", eip["InstanceId"])
    if inst is not None:
        inst["EipAddress"] = dict(NO_EIP)
        cloud.put(inst)
    eip["InstanceId"], eip["InstanceType"] = "", ""
    if timed:
        lifecycle.begin(eip, "Unassociating", "Available", cloud.profile.eip_associate)
    else:
        lifecycle.reach(eip, "Available")
    cloud.put(eip)
    await cloud.forwarder.close(eip["IpAddress"])


@action("UnassociateEipAddress", ECS, VPC)
async def unassociate_eip(cloud: Cloud, call: Call) -> Json:
    eip = cloud.find("eip", call.require("AllocationId"), call.region)
    wanted = call.get("InstanceId")
    if eip["Status"] != "InUse" or (wanted is not None and wanted != eip["InstanceId"]):
        raise errors.INCORRECT_EIP_STATUS()
    await unbind_eip(cloud, eip)
    return {}


@action("ReleaseEipAddress", ECS, VPC)
async def release_eip(cloud: Cloud, call: Call) -> Json:
    eip = cloud.find("eip", call.require("AllocationId"), call.region)
    if eip["Status"] != "Available":
        raise errors.INCORRECT_EIP_STATUS(eip["Status"])
    cloud.delete(eip)
    return {}


action("DescribeEipAddresses", ECS, VPC)(
    Describe(
        "EipAddresses.EipAddress",
        kind="eip",
        filters=(
            AnyOf("AllocationId"),
            Equals("EipAddress", "IpAddress"),
            Equals("Status"),
            Equals("AssociatedInstanceId", "InstanceId"),
            Tags(),
        ),
        view=views.eip,
        omit={ECS.name: ("Name", "Tags")},  # the ECS API's older DescribeEipAddresses has neither
    )
)


@action("AllocatePublicIpAddress", ECS)
async def allocate_public_ip(cloud: Cloud, call: Call) -> Json:
    inst = cloud.find("instance", call.require("InstanceId"), call.region)
    if inst["Status"] not in ("Running", "Stopped"):
        raise errors.INCORRECT_INSTANCE_STATUS(f"{inst['InstanceId']} is {inst['Status']}")
    if inst.get("PublicIpAddress"):
        raise errors.PUBLIC_IP_ALLOCATED_ALREADY(inst["InstanceId"])
    if inst["EipAddress"].get("AllocationId"):
        raise errors.EIP_ALREADY_ASSOCIATED(inst["InstanceId"])
    address = allocate_address(cloud)
    inst["PublicIpAddress"] = [address]
    cloud.put(inst)
    await cloud.expose(address, inst["InstanceId"])
    return {"IpAddress": address}
