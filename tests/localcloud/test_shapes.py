"""Every action localcloud answers, checked against the official SDK's model of its response.

A workflow through the official SDK clients makes every kind of resource exist and calls every
action of every product in localcloud's registry (so the lists in the answers are not empty); each
answer is kept as it came over the wire, JSON and XML (tests/localcloud/shapes.py). The check reads
the expected shape from the SDK's model classes (kiln.localcloud.sdkmodels): a field the model does
not have, an object where it has a list, a string where it has an integer, a time not in the format
its documentation gives, an XML answer that says other things than the JSON one: each is a failure,
unless ALLOWED below lists it with its reason. A time the model's comment documents is checked in
that format; any other field named *Time must be ISO 8601 UTC, with minutes or with seconds.

A new action: add its call to `workflow` (through the product's client, as a client would call it,
after what it needs exists); a new product: its SDK in kiln.localcloud.sdkmodels.SDKS and a client
here. Then make its answer match its model, or put what cannot match in ALLOWED, with the reason.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_ram20150501 import models as ram_models
from alibabacloud_ram20150501.client import Client as RamClient
from alibabacloud_vpc20160428 import models as vpc_models
from alibabacloud_vpc20160428.client import Client as VpcClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

import kiln.localcloud.actions  # noqa: F401 - declares the actions in the registry
from kiln.localcloud import LocalCloudProcess, sdkmodels, start
from kiln.localcloud.api.registry import ACTIONS
from kiln.localcloud.model.images import PUBLIC_IMAGE_ID

from .conftest import config
from .shapes import Recorder, call, has_items, leaves, mismatches, recording, xml_leaves

REGION = "cn-beijing"
OTHER_REGION = "cn-hangzhou"

#: "Product Action field" -> why localcloud answers that field otherwise than the model says. Each
#: must still be found, so a fixed one is taken off the list.
ALLOWED: dict[str, str] = {}


def registry_actions() -> list[tuple[str, str]]:
    """(product, action) for every action localcloud declares, but its own admin ones."""
    return sorted(
        (product.name, found.name)
        for found in ACTIONS.values()
        for product in found.products
        if product.emulated
    )


Call = Callable[..., dict[str, Any]]


def wait(what: str, probe: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def workflow(ecs: Call, vpc: Call) -> None:
    """Every resource kind made, looked at while it exists, changed, and deleted, through both APIs
    where both have the action."""
    r = {"RegionId": REGION}
    for api in (ecs, vpc):
        api("DescribeRegions")
        api("DescribeZones", **r)
    ecs("DescribeInstanceTypes")
    ecs("DescribeInstanceTypeFamilies", **r)
    ecs("DescribeAvailableResource", **r, DestinationResource="InstanceType")

    # networks: one made through each API
    vpc_a = vpc("CreateVpc", **r, CidrBlock="10.0.0.0/16", VpcName="shapes-a")["VpcId"]
    vpc_b = ecs("CreateVpc", **r, CidrBlock="172.16.0.0/16", VpcName="shapes-b")["VpcId"]
    for api, vpc_id in ((vpc, vpc_a), (ecs, vpc_b)):
        wait("VPC", lambda: api("DescribeVpcs", **r, VpcId=vpc_id)["Vpcs"]["Vpc"][0]["Status"] == "Available")  # noqa: B023
    vsw_a = vpc("CreateVSwitch", **r, VpcId=vpc_a, ZoneId="cn-beijing-a", CidrBlock="10.0.0.0/24")[
        "VSwitchId"
    ]
    vsw_b = ecs("CreateVSwitch", **r, VpcId=vpc_b, ZoneId="cn-beijing-a", CidrBlock="172.16.0.0/24")[
        "VSwitchId"
    ]
    for api, vsw_id in ((vpc, vsw_a), (ecs, vsw_b)):
        wait(
            "vSwitch",
            lambda: (
                api("DescribeVSwitches", **r, VSwitchId=vsw_id)["VSwitches"]["VSwitch"][0]["Status"]  # noqa: B023
                == "Available"
            ),
        )
    group = ecs("CreateSecurityGroup", **r, VpcId=vpc_a, SecurityGroupName="shapes")["SecurityGroupId"]
    spare_group = ecs("CreateSecurityGroup", **r, VpcId=vpc_b)["SecurityGroupId"]
    rule = {"IpProtocol": "tcp", "PortRange": "22/22", "NicType": "intranet"}
    ecs("AuthorizeSecurityGroup", **r, SecurityGroupId=group, SourceCidrIp="0.0.0.0/0", **rule)
    ecs("AuthorizeSecurityGroupEgress", **r, SecurityGroupId=group, DestCidrIp="0.0.0.0/0", **rule)
    ecs("DescribeSecurityGroups", **r)
    ecs("DescribeSecurityGroupAttribute", **r, SecurityGroupId=group)

    # key pairs
    pair = ecs("CreateKeyPair", **r, KeyPairName="shapes-made")["KeyPairName"]
    ecs("ImportKeyPair", **r, KeyPairName="shapes-imported", PublicKeyBody=public_key())
    ecs("DescribeKeyPairs", **r)

    # instances: two run, one created (Stopped)
    placed = {"ImageId": PUBLIC_IMAGE_ID, "InstanceType": "ecs.g6.large", "SecurityGroupId": group}
    placed |= {"VSwitchId": vsw_a, "ZoneId": "cn-beijing-a"}
    ran = ecs(
        "RunInstances",
        **r,
        **placed,
        Amount=2,
        InternetMaxBandwidthOut=5,
        SystemDisk={"Category": "cloud_essd", "Size": 20},
        Tag=[{"Key": "shapes", "Value": "yes"}],
    )["InstanceIdSets"]["InstanceIdSet"]
    made = ecs("CreateInstance", **r, **placed, KeyPairName=pair)["InstanceId"]
    everyone = [*ran, made]

    def status(instance_id: str) -> str:
        found = ecs("DescribeInstances", **r, InstanceIds=f'["{instance_id}"]')["Instances"]["Instance"]
        return str(found[0]["Status"])

    wait("Stopped", lambda: status(made) == "Stopped")
    ecs("StartInstance", InstanceId=made)

    for instance_id in everyone:
        wait("Running", lambda: status(instance_id) == "Running")  # noqa: B023
    ecs("DescribeInstanceStatus", **r)
    ecs("DescribeInstanceAttribute", InstanceId=made)
    ecs("RebootInstance", InstanceId=made)
    wait("Running", lambda: status(made) == "Running")
    ecs("AllocatePublicIpAddress", InstanceId=ran[1])

    # EIPs: one through each API
    eips = []
    for api, instance_id in ((vpc, ran[0]), (ecs, made)):
        eip = api("AllocateEipAddress", **r, Bandwidth="5", InternetChargeType="PayByTraffic")["AllocationId"]
        api("AssociateEipAddress", **r, AllocationId=eip, InstanceId=instance_id, InstanceType="EcsInstance")
        wait(
            "EIP",
            lambda: (
                api("DescribeEipAddresses", **r, AllocationId=eip)["EipAddresses"]["EipAddress"][0]["Status"]  # noqa: B023
                == "InUse"
            ),
        )
        eips.append((api, eip))
    ecs("DescribeInstances", **r)

    # key pairs on instances, disks, snapshots
    ecs("StopInstance", InstanceId=made)
    wait("Stopped", lambda: status(made) == "Stopped")
    ecs("AttachKeyPair", **r, KeyPairName="shapes-imported", InstanceIds=f'["{made}"]')
    disk = ecs("DescribeDisks", **r, InstanceId=made)["Disks"]["Disk"][0]["DiskId"]
    snapshot = ecs("CreateSnapshot", DiskId=disk, SnapshotName="shapes")["SnapshotId"]

    def snapshot_status() -> str:
        return str(
            ecs("DescribeSnapshots", **r, SnapshotIds=f'["{snapshot}"]')["Snapshots"]["Snapshot"][0]["Status"]
        )

    wait("snapshot", lambda: snapshot_status() == "accomplished")
    data_disk = ecs("CreateDisk", **r, ZoneId="cn-beijing-a", Size=20, DiskName="shapes")["DiskId"]

    def disk_status() -> str:
        return str(ecs("DescribeDisks", **r, DiskIds=f'["{data_disk}"]')["Disks"]["Disk"][0]["Status"])

    wait("disk", lambda: disk_status() == "Available")
    ecs("AttachDisk", InstanceId=made, DiskId=data_disk)
    wait("disk attached", lambda: disk_status() == "In_use")
    ecs("DescribeDisks", **r, InstanceId=made, DiskType="data")
    ecs("DetachDisk", InstanceId=made, DiskId=data_disk)
    wait("disk detached", lambda: disk_status() == "Available")
    ecs("DeleteDisk", DiskId=data_disk)

    # images: made, found by family, shared, copied (one copy cancelled)
    every = {"Status": "Creating,Waiting,Available,UnAvailable,CreateFailed"}
    image = ecs("CreateImage", **r, InstanceId=made, ImageName="shapes-image", ImageFamily="shapes-family")[
        "ImageId"
    ]

    def image_status(region: str, image_id: str) -> str:
        found = ecs("DescribeImages", RegionId=region, ImageId=image_id, **every)["Images"]["Image"]
        return str(found[0]["Status"]) if found else ""

    wait("image", lambda: image_status(REGION, image) == "Available")
    ecs("DescribeImages", **r, ImageOwnerAlias="system")
    ecs("DescribeImageFromFamily", **r, ImageFamily="shapes-family")
    ecs("ModifyImageSharePermission", **r, ImageId=image, AddAccount=["1234567890123456"])
    ecs("DescribeImageSharePermission", **r, ImageId=image)
    ecs("ModifyImageSharePermission", **r, ImageId=image, RemoveAccount=["1234567890123456"])
    copied = ecs("CopyImage", **r, ImageId=image, DestinationRegionId=OTHER_REGION)["ImageId"]
    wait("copy", lambda: image_status(OTHER_REGION, copied) == "Available")
    cancelled = ecs(
        "CopyImage", **r, ImageId=image, DestinationRegionId=OTHER_REGION, DestinationImageName="shapes-c"
    )
    ecs("CancelCopyImage", RegionId=OTHER_REGION, ImageId=cancelled["ImageId"])

    # tags, both ways
    ecs("AddTags", **r, ResourceType="instance", ResourceId=made, Tag=[{"Key": "k", "Value": "v"}])
    ecs("DescribeTags", **r, ResourceType="instance")
    ecs("RemoveTags", **r, ResourceType="instance", ResourceId=made, Tag=[{"Key": "k", "Value": "v"}])
    ecs("TagResources", **r, ResourceType="instance", ResourceId=[made], Tag=[{"Key": "k", "Value": "v"}])
    vpc("TagResources", **r, ResourceType="VPC", ResourceId=[vpc_a], Tag=[{"Key": "k", "Value": "v"}])
    ecs("ListTagResources", **r, ResourceType="instance", ResourceId=[made])
    vpc("ListTagResources", **r, ResourceType="VPC", ResourceId=[vpc_a])
    ecs("UntagResources", **r, ResourceType="instance", ResourceId=[made], TagKey=["k"])

    # everything deleted
    ecs("DetachKeyPair", **r, KeyPairName="shapes-imported", InstanceIds=f'["{made}"]')
    ecs("RevokeSecurityGroup", **r, SecurityGroupId=group, SourceCidrIp="0.0.0.0/0", **rule)
    ecs("RevokeSecurityGroupEgress", **r, SecurityGroupId=group, DestCidrIp="0.0.0.0/0", **rule)
    for api, eip in eips:
        api("UnassociateEipAddress", **r, AllocationId=eip)
        wait(
            "EIP",
            lambda: (
                api("DescribeEipAddresses", **r, AllocationId=eip)["EipAddresses"]["EipAddress"][0]["Status"]  # noqa: B023
                == "Available"
            ),
        )
        api("ReleaseEipAddress", **r, AllocationId=eip)
    ecs("DeleteImage", RegionId=OTHER_REGION, ImageId=copied)
    ecs("DeleteImage", **r, ImageId=image)
    ecs("DeleteSnapshot", SnapshotId=snapshot)
    ecs("DeleteInstance", InstanceId=made, Force=True)
    ecs("DeleteInstances", **r, InstanceId=ran, Force=True)
    ecs("DeleteKeyPairs", **r, KeyPairNames='["shapes-made", "shapes-imported"]')

    def gone(instance_id: str) -> bool:
        return not ecs("DescribeInstances", **r, InstanceIds=f'["{instance_id}"]')["Instances"]["Instance"]

    for instance_id in everyone:
        wait("deleted", lambda: gone(instance_id))  # noqa: B023
    ecs("DeleteSecurityGroup", **r, SecurityGroupId=group)
    ecs("DeleteSecurityGroup", **r, SecurityGroupId=spare_group)
    vpc("DeleteVSwitch", VSwitchId=vsw_a)
    ecs("DeleteVSwitch", VSwitchId=vsw_b)

    def vswitches(api: Call, vpc_id: str) -> bool:
        return bool(api("DescribeVSwitches", **r, VpcId=vpc_id)["VSwitches"]["VSwitch"])

    wait("vSwitches deleted", lambda: not vswitches(vpc, vpc_a) and not vswitches(ecs, vpc_b))
    vpc("DeleteVpc", VpcId=vpc_a)
    ecs("DeleteVpc", VpcId=vpc_b)


def ram_workflow(ram: Call) -> None:
    """A role the image import needs: made, a system policy attached and looked at, deleted."""
    trust = {"Service": ["ecs.aliyuncs.com"]}
    statement = {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": trust}
    document = json.dumps({"Statement": [statement], "Version": "1"})
    ram("CreateRole", RoleName="shapes-role", AssumeRolePolicyDocument=document, Description="shapes")
    ram("GetRole", RoleName="shapes-role")
    ram("UpdateRole", RoleName="shapes-role", NewDescription="shapes, updated")
    policy = {"PolicyName": "AliyunECSImageImportRolePolicy", "PolicyType": "System"}
    ram("AttachPolicyToRole", RoleName="shapes-role", **policy)
    ram("ListPoliciesForRole", RoleName="shapes-role")
    ram("GetPolicy", **policy)
    ram("DetachPolicyFromRole", RoleName="shapes-role", **policy)
    ram("DeleteRole", RoleName="shapes-role")


def import_workflow(ecs: Call, ram: Call, process: LocalCloudProcess, disk: Path) -> None:
    """A disk uploaded to OSS becomes an image (ImportImage), with the role it needs."""
    import alibabacloud_oss_v2 as oss

    trust = {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": ["ecs.aliyuncs.com"]}}
    role = {"RoleName": "AliyunECSImageImportDefaultRole"}
    ram("CreateRole", **role, AssumeRolePolicyDocument=json.dumps({"Statement": [trust], "Version": "1"}))
    ram("AttachPolicyToRole", **role, PolicyName="AliyunECSImageImportRolePolicy", PolicyType="System")
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        process.access_key_id, process.secret
    )
    cfg.region, cfg.endpoint = REGION, process.url
    bucket = oss.Client(cfg)
    bucket.put_bucket(oss.PutBucketRequest(bucket="shapes-import"))
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    bucket.put_object_from_file(oss.PutObjectRequest(bucket="shapes-import", key="disk.qcow2"), str(disk))
    mapping = {
        "OSSBucket": "shapes-import",
        "OSSObject": "disk.qcow2",
        "Format": "QCOW2",
        "DiskImageSize": "5",
    }
    image = ecs("ImportImage", RegionId=REGION, ImageName="shapes-imported", DiskDeviceMapping=[mapping])
    every = {"Status": "Creating,Waiting,Available,UnAvailable,CreateFailed"}

    def status() -> str:
        found = ecs("DescribeImages", RegionId=REGION, ImageId=image["ImageId"], **every)["Images"]["Image"]
        return str(found[0]["Status"]) if found else ""

    wait("imported image", lambda: status() == "Available")
    ecs("DeleteImage", RegionId=REGION, ImageId=image["ImageId"])


@pytest.fixture(scope="module")
def answers(state_root: Path) -> Iterator[Recorder]:
    """The workflow's answers, from a record-only localcloud of its own."""
    recorder = Recorder()
    with start(state_root / "shapes", runner="none") as process:

        def client(product: str, client_class: type, models: Any) -> Call:
            made = recording(client_class, product, recorder)(config(process))
            return lambda action, **fields: call(made, models, action, **fields)

        workflow(client("Ecs", EcsClient, ecs_models), client("Vpc", VpcClient, vpc_models))
        ram = client("Ram", RamClient, ram_models)
        ram_workflow(ram)
        import_workflow(client("Ecs", EcsClient, ecs_models), ram, process, state_root / "shapes-disk.qcow2")
        yield recorder
    log = (state_root / "shapes" / "server.log").read_text()
    assert "Traceback" not in log, log[-3000:]


def findings(recorder: Recorder, product: str, action: str) -> list[str]:
    shape = sdkmodels.response_shape(product, action)
    found: set[str] = set()
    for answer in recorder.answers[product, action]:
        found.update(mismatches(shape, answer.json, ""))
        # each answer has its own RequestId: the XML one is another request's
        in_json = sorted(leaf for leaf in leaves(answer.json) if leaf[0] != ("RequestId",))
        in_xml = sorted(leaf for leaf in xml_leaves(answer.xml) if leaf[0] != ("RequestId",))
        if in_json != in_xml:
            json_only, xml_only = set(in_json) - set(in_xml), set(in_xml) - set(in_json)
            found.add(f"(XML): says {sorted(xml_only)[:3]} where JSON says {sorted(json_only)[:3]}")
    return sorted(f"{product} {action} {finding}" for finding in found)


def declares_lists(shape: sdkmodels.Shape) -> bool:
    if isinstance(shape, sdkmodels.ListOf):
        return True
    return isinstance(shape, sdkmodels.Struct) and any(declares_lists(f) for f in shape.fields.values())


def allowed(finding: str) -> bool:
    return finding.partition(": ")[0] in ALLOWED


def test_every_product_has_its_sdk() -> None:
    products = {product for product, _ in registry_actions()}
    assert products <= sdkmodels.SDKS.keys(), "name their SDK packages in kiln.localcloud.sdkmodels.SDKS"
    for product in products:
        assert sdkmodels.installed(product), f"install {sdkmodels.SDKS[product]} (pyproject.toml)"


@pytest.mark.parametrize(("product", "action"), registry_actions())
def test_the_answer_has_the_models_shape(answers: Recorder, product: str, action: str) -> None:
    got = answers.answers.get((product, action), [])
    assert got, f"the workflow in {__file__} does not call {action} through the {product} API: add it"
    if declares_lists(sdkmodels.response_shape(product, action)):
        assert any(has_items(a.json) for a in got), f"{action}: every answer had only empty lists"
    bad = [finding for finding in findings(answers, product, action) if not allowed(finding)]
    assert not bad, "\n".join(bad)


def test_every_allowed_finding_is_still_found(answers: Recorder) -> None:
    found = [f for product, action in registry_actions() for f in findings(answers, product, action)]
    stale = sorted(ALLOWED.keys() - {f.partition(": ")[0] for f in found})
    assert not stale, f"these no longer happen: take them off ALLOWED: {stale}"
