"""Deleting cloud resources: one function per kind, used both by the builder's step cleanups and by
`kiln cleanup`, plus finding a run's resources by their `kiln-run-id` tag.

Deletes tolerate "not found" (the resource is already gone: that is success) and retry what the
cloud answers while dependents are still going away (DependencyViolation...). Deleting waits
until the resource is really gone where a later delete depends on it (an instance before its
security group and vSwitch).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from kiln.alicloud import oss
from kiln.alicloud.client import AlicloudClient, ApiError, items
from kiln.alicloud.journal import HEARTBEAT_TAG, HOST_TAG, KINDS, OWNER_TAG, TAG_KEY, parse_heartbeat
from kiln.alicloud.waiter import wait_until
from kiln.liveness import Owner

#: Every status an image can have (DescribeImages lists only Available ones unless asked for the
#: others): where kiln looks for an image by name or tag, it asks for all of them.
IMAGE_STATUSES = ("Creating", "Waiting", "Available", "UnAvailable", "CreateFailed", "Deprecated")
ALL_IMAGES = ",".join(IMAGE_STATUSES)
#: Long enough for an instance to finish starting before it can be deleted.
DELETE_ATTEMPTS = 20


def _gone(exc: ApiError) -> bool:
    return "NotFound" in exc.code or exc.code.endswith(".NotExist") or exc.code == "InvalidVpcID.NotExist"


def _ignore_missing(fn: Callable[[], object]) -> None:
    try:
        fn()
    except ApiError as exc:
        if not _gone(exc):
            raise


def release_eip(client: AlicloudClient, allocation_id: str, release: bool = True) -> None:
    """Unassociate the EIP from its instance (if it is), then release it (unless it was given)."""
    found = client.call("DescribeEipAddresses", {"AllocationId": allocation_id})
    eips = items(found, "EipAddresses", "EipAddress")
    if not eips:
        return
    eip = eips[0]
    if eip.get("InstanceId") and eip.get("Status") in ("InUse", "Associating"):
        _ignore_missing(
            lambda: client.call(
                "UnassociateEipAddress",
                {"AllocationId": allocation_id, "InstanceId": eip["InstanceId"]},
                retry=("IncorrectEipStatus", "IncorrectInstanceStatus"),
            )
        )
        wait_until(
            lambda: eip_status(client, allocation_id) in ("Available", None) or None,
            what=f"EIP {allocation_id} to be unassociated",
            timeout=300,
        )
    if release:
        _ignore_missing(
            lambda: client.call(
                "ReleaseEipAddress",
                {"AllocationId": allocation_id},
                retry=("IncorrectEipStatus", "TaskConflict"),
            )
        )


def eip_status(client: AlicloudClient, allocation_id: str) -> str | None:
    found = client.call("DescribeEipAddresses", {"AllocationId": allocation_id})
    eips = items(found, "EipAddresses", "EipAddress")
    return str(eips[0].get("Status")) if eips else None


def delete_instance(client: AlicloudClient, instance_id: str, wait: bool = True) -> None:
    _ignore_missing(
        lambda: client.call(
            "DeleteInstance",
            {"InstanceId": instance_id, "Force": True},
            retry=("IncorrectInstanceStatus",),
            attempts=DELETE_ATTEMPTS,
        )
    )
    if wait:
        wait_until(
            lambda: not instance_exists(client, instance_id) or None,
            what=f"instance {instance_id} to be deleted",
            timeout=600,
        )


def instance_exists(client: AlicloudClient, instance_id: str) -> bool:
    found = client.call("DescribeInstances", {"InstanceIds": json.dumps([instance_id])})
    return bool(items(found, "Instances", "Instance"))


def image_snapshots(client: AlicloudClient, image_id: str) -> list[str]:
    found = client.call(
        "DescribeImages",
        {"ImageId": image_id, "ImageOwnerAlias": "self", "ShowExpired": True, "Status": ALL_IMAGES},
    )
    ids: list[str] = []
    for image in items(found, "Images", "Image"):
        for disk in items(image, "DiskDeviceMappings", "DiskDeviceMapping"):
            if disk.get("SnapshotId"):
                ids.append(str(disk["SnapshotId"]))
    return ids


def delete_image(client: AlicloudClient, image_id: str, snapshots: bool = True) -> None:
    """Delete the image and (by default) the snapshots it was made of."""
    snapshot_ids = image_snapshots(client, image_id) if snapshots else []
    _ignore_missing(
        lambda: client.call(
            "DeleteImage",
            {"ImageId": image_id, "Force": True},
            retry=("IncorrectImageStatus", "ImageIsImporting"),
            attempts=15,
        )
    )
    for snapshot_id in snapshot_ids:
        delete_snapshot(client, snapshot_id)


def delete_snapshot(client: AlicloudClient, snapshot_id: str) -> None:
    _ignore_missing(
        lambda: client.call(
            "DeleteSnapshot",
            {"SnapshotId": snapshot_id, "Force": True},
            retry=("IncorrectSnapshotStatus", "SnapshotCreatedImage"),
            attempts=15,
        )
    )


def delete_security_group(client: AlicloudClient, group_id: str) -> None:
    _ignore_missing(
        lambda: client.call("DeleteSecurityGroup", {"SecurityGroupId": group_id}, attempts=DELETE_ATTEMPTS)
    )


def delete_vswitch(client: AlicloudClient, vswitch_id: str) -> None:
    _ignore_missing(
        lambda: client.call(
            "DeleteVSwitch",
            {"VSwitchId": vswitch_id},
            retry=("IncorrectVSwitchStatus", "IncorrectRouteEntryStatus"),
            attempts=DELETE_ATTEMPTS,
        )
    )


def delete_vpc(client: AlicloudClient, vpc_id: str) -> None:
    _ignore_missing(
        lambda: client.call(
            "DeleteVpc",
            {"VpcId": vpc_id},
            retry=("IncorrectVpcStatus", "Forbbiden"),
            attempts=DELETE_ATTEMPTS,
        )
    )


def delete_key_pair(client: AlicloudClient, name: str) -> None:
    _ignore_missing(lambda: client.call("DeleteKeyPairs", {"KeyPairNames": json.dumps([name])}))


DELETERS: dict[str, Callable[[AlicloudClient, str], None]] = {
    "eip": release_eip,
    "instance": delete_instance,
    "image": delete_image,
    "snapshot": delete_snapshot,
    "security_group": delete_security_group,
    "vswitch": delete_vswitch,
    "vpc": delete_vpc,
    "key_pair": delete_key_pair,
    "oss_multipart": lambda client, rid: oss.abort_upload(client.access, client.region, rid),
    "oss_object": lambda client, rid: oss.delete_object(client.access, client.region, rid),
    "oss_bucket": lambda client, rid: oss.delete_bucket(client.access, client.region, rid),
}

# kind -> (describe action, list path, id field)
_LISTS: dict[str, tuple[str, tuple[str, str], str]] = {
    "eip": ("DescribeEipAddresses", ("EipAddresses", "EipAddress"), "AllocationId"),
    "instance": ("DescribeInstances", ("Instances", "Instance"), "InstanceId"),
    "image": ("DescribeImages", ("Images", "Image"), "ImageId"),
    "snapshot": ("DescribeSnapshots", ("Snapshots", "Snapshot"), "SnapshotId"),
    "security_group": ("DescribeSecurityGroups", ("SecurityGroups", "SecurityGroup"), "SecurityGroupId"),
    "vswitch": ("DescribeVSwitches", ("VSwitches", "VSwitch"), "VSwitchId"),
    "vpc": ("DescribeVpcs", ("Vpcs", "Vpc"), "VpcId"),
    "key_pair": ("DescribeKeyPairs", ("KeyPairs", "KeyPair"), "KeyPairName"),
}


@dataclass(frozen=True)
class Tagged:
    kind: str
    id: str
    region: str
    run_id: str
    status: str = ""
    host: str = ""  #: the `kiln-host` tag: where the run's build ran
    heartbeat: float | None = None  #: the `kiln-heartbeat` tag: when that build last said it was alive
    owner: Owner | None = None  #: the `kiln-owner` tag: that build's process


def find_tagged(client: AlicloudClient, run_id: str | None) -> list[Tagged]:
    """Resources of this region tagged `kiln-run-id` (= run_id, or any value when run_id is None)."""
    found: list[Tagged] = []
    tag = {"Key": TAG_KEY, "Value": run_id} if run_id else {"Key": TAG_KEY}
    for kind in KINDS:
        if kind not in _LISTS:
            continue  # OSS resources carry no ECS tags: the journal names them
        action, (outer, inner), id_field = _LISTS[kind]
        params: dict[str, object] = {"Tag": [tag]}
        if kind == "image":
            params.update(ImageOwnerAlias="self", Status=ALL_IMAGES)
        page = 1
        while True:
            body = client.call(action, {**params, "PageSize": 50, "PageNumber": page})
            listed = items(body, outer, inner)
            for item in listed:
                tags = {
                    str(t.get("TagKey", t.get("Key"))): str(t.get("TagValue", t.get("Value", "")))
                    for t in items(item, "Tags", "Tag")
                }
                value = tags.get(TAG_KEY, run_id or "")
                if run_id is None or value == run_id:
                    found.append(
                        Tagged(
                            kind,
                            str(item[id_field]),
                            client.region,
                            value,
                            str(item.get("Status", "")),
                            tags.get(HOST_TAG, ""),
                            parse_heartbeat(tags.get(HEARTBEAT_TAG, "")),
                            Owner.from_tag(tags.get(OWNER_TAG, ""), tags.get(HOST_TAG, "")),
                        )
                    )
            total = int(body.get("TotalCount") or 0)
            if not listed or page * 50 >= total:
                break
            page += 1
    return found
