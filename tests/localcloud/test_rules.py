"""The cloud's rules and statuses, API only (record-only instances): fast."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_vpc20160428 import models as vpcm
from alibabacloud_vpc20160428.client import Client as VpcClient

from kiln.localcloud import LocalCloudProcess, client, sdkcalls
from kiln.localcloud.model.images import PUBLIC_IMAGE_FAMILY, PUBLIC_IMAGE_ID
from kiln.localcloud.sdkcalls import Network, instance_status, vpc_status, vswitch_status

from .conftest import REGION, error_of
from .workflow import ALL_IMAGE_STATUSES, wait_for


def network(client: EcsClient, vpc: VpcClient, tag: str) -> Network:
    return sdkcalls.network(client, vpc, wait_for, name=tag, vswitch_cidr="10.0.1.0/24")


def run(client: EcsClient, vsw: str, group: str, **extra: object) -> str:
    return sdkcalls.run_instances(client, vsw, group, **extra)[0]


def running(client: EcsClient, vsw: str, group: str) -> str:
    iid = run(client, vsw, group)
    wait_for("Running", lambda: instance_status(client, iid) == "Running")
    return iid


def stopped(client: EcsClient, vsw: str, group: str) -> str:
    iid = running(client, vsw, group)
    client.stop_instance(ecs.StopInstanceRequest(instance_id=iid))
    wait_for("Stopped", lambda: instance_status(client, iid) == "Stopped")
    return iid


def listed(client: EcsClient, image_id: str, region: str = REGION) -> int:
    """How many images DescribeImages lists for the id with its default Status filter (Available)."""
    count: int = client.describe_images(
        ecs.DescribeImagesRequest(region_id=region, image_id=image_id)
    ).body.total_count
    return count


def test_vpc_statuses_and_dependency_violation(
    ecs3: EcsClient, vpc: VpcClient, name: Callable[[str], str]
) -> None:
    vpc_id = vpc.create_vpc(vpcm.CreateVpcRequest(region_id=REGION, cidr_block="192.168.0.0/16")).body.vpc_id
    first = vpc_status(vpc, vpc_id)
    assert first in ("Pending", "Available")
    wait_for("vpc", lambda: vpc_status(vpc, vpc_id) == "Available")
    vsw = vpc.create_vswitch(
        vpcm.CreateVSwitchRequest(
            region_id=REGION, vpc_id=vpc_id, zone_id="cn-beijing-b", cidr_block="192.168.1.0/24"
        )
    ).body.v_switch_id
    err = error_of(lambda: vpc.delete_vpc(vpcm.DeleteVpcRequest(region_id=REGION, vpc_id=vpc_id)))
    assert (err.code, err.status_code) == ("DependencyViolation.VSwitch", 400)
    outside = error_of(
        lambda: vpc.create_vswitch(
            vpcm.CreateVSwitchRequest(
                region_id=REGION, vpc_id=vpc_id, zone_id="cn-beijing-b", cidr_block="10.9.0.0/24"
            )
        )
    )
    assert outside.code == "InvalidCidrBlock.Malformed"
    overlap = error_of(
        lambda: vpc.create_vswitch(
            vpcm.CreateVSwitchRequest(
                region_id=REGION, vpc_id=vpc_id, zone_id="cn-beijing-b", cidr_block="192.168.1.128/25"
            )
        )
    )
    assert overlap.code == "InvalidCidrBlock.Overlapped"
    wait_for("vsw", lambda: vswitch_status(vpc, vsw) == "Available")
    vpc.delete_vswitch(vpcm.DeleteVSwitchRequest(region_id=REGION, v_switch_id=vsw))
    vpc.delete_vpc(vpcm.DeleteVpcRequest(region_id=REGION, vpc_id=vpc_id))
    gone = error_of(lambda: vpc.delete_vpc(vpcm.DeleteVpcRequest(region_id=REGION, vpc_id=vpc_id)))
    assert (gone.code, gone.status_code) == ("InvalidVpcId.NotFound", 404)


def test_instance_status_rules(ecs3: EcsClient, vpc: VpcClient) -> None:
    _, vsw, group = network(ecs3, vpc, "rules")
    iid = run(ecs3, vsw, group)
    assert instance_status(ecs3, iid) in ("Pending", "Starting", "Running")
    wait_for("Running", lambda: instance_status(ecs3, iid) == "Running")
    assert (
        error_of(lambda: ecs3.start_instance(ecs.StartInstanceRequest(instance_id=iid))).code
        == "IncorrectInstanceStatus"
    )
    assert (
        error_of(lambda: ecs3.delete_instance(ecs.DeleteInstanceRequest(instance_id=iid))).code
        == "IncorrectInstanceStatus"
    )
    busy = error_of(
        lambda: ecs3.delete_security_group(
            ecs.DeleteSecurityGroupRequest(region_id=REGION, security_group_id=group)
        )
    )
    assert busy.code == "DependencyViolation"
    ecs3.stop_instance(ecs.StopInstanceRequest(instance_id=iid))
    assert instance_status(ecs3, iid) in ("Stopping", "Stopped")
    assert (
        error_of(lambda: ecs3.stop_instance(ecs.StopInstanceRequest(instance_id=iid))).code
        == "IncorrectInstanceStatus"
    )
    wait_for("Stopped", lambda: instance_status(ecs3, iid) == "Stopped")
    ecs3.delete_instance(ecs.DeleteInstanceRequest(instance_id=iid))
    assert (
        error_of(lambda: ecs3.start_instance(ecs.StartInstanceRequest(instance_id=iid))).code
        == "InvalidInstanceId.NotFound"
    )
    fresh = ecs3.create_instance(
        ecs.CreateInstanceRequest(
            region_id=REGION,
            image_id=PUBLIC_IMAGE_ID,
            instance_type="ecs.g6.large",
            security_group_id=group,
            v_switch_id=vsw,
        )
    ).body.instance_id
    wait_for("created Stopped", lambda: instance_status(ecs3, fresh) == "Stopped")
    ecs3.delete_instance(ecs.DeleteInstanceRequest(instance_id=fresh))


def test_run_instances_checks_its_references(ecs3: EcsClient, vpc: VpcClient) -> None:
    _, vsw, group = network(ecs3, vpc, "refs")
    assert (
        error_of(lambda: run(ecs3, vsw, group, image_id="m-doesnotexist")).code == "InvalidImageId.NotFound"
    )
    assert error_of(lambda: run(ecs3, vsw, group, key_pair_name="nope")).code == "InvalidKeyPairName.NotFound"
    assert error_of(lambda: run(ecs3, "vsw-nope", group)).code == "InvalidVSwitchId.NotFound"
    assert (
        error_of(lambda: run(ecs3, vsw, group, user_data="not base64!")).code
        == "InvalidUserData.Base64FormatInvalid"
    )
    by_family = ecs.RunInstancesRequest(
        region_id=REGION,
        image_family=PUBLIC_IMAGE_FAMILY,
        instance_type="ecs.g6.large",
        security_group_id=group,
        v_switch_id=vsw,
        amount=3,
    )
    ids = ecs3.run_instances(by_family).body.instance_id_sets.instance_id_set
    assert len(set(ids)) == 3


def test_client_token_makes_retries_idempotent(vpc: VpcClient, name: Callable[[str], str]) -> None:
    token = name("tok")
    first = vpc.create_vpc(
        vpcm.CreateVpcRequest(region_id=REGION, cidr_block="172.16.0.0/12", client_token=token)
    ).body
    again = vpc.create_vpc(
        vpcm.CreateVpcRequest(region_id=REGION, cidr_block="172.16.0.0/12", client_token=token)
    ).body
    assert first.vpc_id == again.vpc_id and first.request_id != again.request_id
    other = error_of(
        lambda: vpc.create_vpc(
            vpcm.CreateVpcRequest(region_id=REGION, cidr_block="10.0.0.0/8", client_token=token)
        )
    )
    assert other.code == "IdempotentParameterMismatch"


def test_images_create_progress_duplicate_and_not_found(
    ecs3: EcsClient, vpc: VpcClient, name: Callable[[str], str]
) -> None:
    _, vsw, group = network(ecs3, vpc, "img")
    iid = stopped(ecs3, vsw, group)
    image_name = name("img")
    image_id = ecs3.create_image(
        ecs.CreateImageRequest(
            region_id=REGION, instance_id=iid, image_name=image_name, image_family="fam-test"
        )
    ).body.image_id
    seen = ecs3.describe_images(
        ecs.DescribeImagesRequest(region_id=REGION, image_id=image_id, status=ALL_IMAGE_STATUSES)
    ).body.images.image[0]
    assert seen.status in ("Creating", "Available") and seen.progress.endswith("%")
    assert seen.image_owner_alias == "self"
    dup = error_of(
        lambda: ecs3.create_image(
            ecs.CreateImageRequest(region_id=REGION, instance_id=iid, image_name=image_name)
        )
    )
    assert (dup.code, dup.status_code) == ("InvalidImageName.Duplicated", 400)
    bad = error_of(
        lambda: ecs3.create_image(
            ecs.CreateImageRequest(region_id=REGION, instance_id=iid, image_name="aliyun_reserved")
        )
    )
    assert bad.code == "InvalidImageName.Malformed"
    # the default Status filter is Available: a Creating image is not listed without asking
    wait_for("Available", lambda: listed(ecs3, image_id) == 1)
    family = ecs3.describe_image_from_family(
        ecs.DescribeImageFromFamilyRequest(region_id=REGION, image_family="fam-test")
    ).body.image
    assert family.image_id == image_id
    again = run(ecs3, vsw, group, image_id=image_id)
    wait_for("from image", lambda: instance_status(ecs3, again) == "Running")
    snapshot = (
        ecs3.describe_images(ecs.DescribeImagesRequest(region_id=REGION, image_id=image_id))
        .body.images.image[0]
        .disk_device_mappings.disk_device_mapping[0]
        .snapshot_id
    )
    in_use = error_of(lambda: ecs3.delete_snapshot(ecs.DeleteSnapshotRequest(snapshot_id=snapshot)))
    assert in_use.code == "SnapshotCreatedImage"
    ecs3.delete_image(ecs.DeleteImageRequest(region_id=REGION, image_id=image_id))
    ecs3.delete_snapshot(ecs.DeleteSnapshotRequest(snapshot_id=snapshot))
    missing = error_of(lambda: ecs3.delete_image(ecs.DeleteImageRequest(region_id=REGION, image_id=image_id)))
    assert (missing.code, missing.status_code) == ("InvalidImageId.NotFound", 404)


def test_describe_images_paging_and_owner_filter(
    ecs3: EcsClient, vpc: VpcClient, name: Callable[[str], str]
) -> None:
    _, vsw, group = network(ecs3, vpc, "paging")
    iid = stopped(ecs3, vsw, group)
    prefix = name("pg")
    ids = [
        ecs3.create_image(
            ecs.CreateImageRequest(region_id=REGION, instance_id=iid, image_name=f"{prefix}-{n}")
        ).body.image_id
        for n in range(5)
    ]
    pages: list[str] = []
    for number in (1, 2, 3):
        body = ecs3.describe_images(
            ecs.DescribeImagesRequest(
                region_id=REGION,
                image_name=prefix,  # fuzzy: every name with it
                status=ALL_IMAGE_STATUSES,
                page_size=2,
                page_number=number,
            )
        ).body
        assert body.total_count == 5 and body.page_number == number
        pages.extend(i.image_id for i in body.images.image)
    assert sorted(pages) == sorted(ids)
    system = ecs3.describe_images(
        ecs.DescribeImagesRequest(region_id=REGION, image_owner_alias="system")
    ).body.images.image
    assert [i.image_id for i in system] == [PUBLIC_IMAGE_ID]
    too_big = error_of(
        lambda: ecs3.describe_images(ecs.DescribeImagesRequest(region_id=REGION, page_size=101))
    )
    assert too_big.code == "InvalidParameter"


def test_copy_cancel_and_share(ecs3: EcsClient, vpc: VpcClient, name: Callable[[str], str]) -> None:
    _, vsw, group = network(ecs3, vpc, "copy")
    iid = stopped(ecs3, vsw, group)
    image_id = ecs3.create_image(
        ecs.CreateImageRequest(region_id=REGION, instance_id=iid, image_name=name("src"))
    ).body.image_id
    early = error_of(
        lambda: ecs3.copy_image(
            ecs.CopyImageRequest(region_id=REGION, image_id=image_id, destination_region_id="cn-hangzhou")
        )
    )
    assert early.code in ("IncorrectImageStatus",) or early is None
    wait_for("Available", lambda: listed(ecs3, image_id) == 1)
    copy_id = ecs3.copy_image(
        ecs.CopyImageRequest(
            region_id=REGION,
            image_id=image_id,
            destination_region_id="cn-hangzhou",
            destination_image_name=name("copy"),
        )
    ).body.image_id
    copied = ecs3.describe_images(
        ecs.DescribeImagesRequest(region_id="cn-hangzhou", image_id=copy_id, status=ALL_IMAGE_STATUSES)
    ).body.images.image[0]
    assert copied.is_copied and copied.status in ("Creating", "Available")
    assert (
        ecs3.describe_images(
            ecs.DescribeImagesRequest(region_id=REGION, image_id=copy_id, status=ALL_IMAGE_STATUSES)
        ).body.total_count
        == 0
    )
    wait_for("copy Available", lambda: listed(ecs3, copy_id, "cn-hangzhou") == 1)
    late = error_of(
        lambda: ecs3.cancel_copy_image(ecs.CancelCopyImageRequest(region_id="cn-hangzhou", image_id=copy_id))
    )
    assert late.code == "IncorrectImageStatus"
    ecs3.modify_image_share_permission(
        ecs.ModifyImageSharePermissionRequest(
            region_id=REGION, image_id=image_id, add_account=["1234567890", "2222"]
        )
    )
    ecs3.modify_image_share_permission(
        ecs.ModifyImageSharePermissionRequest(region_id=REGION, image_id=image_id, remove_account=["2222"])
    )
    shared = ecs3.describe_image_share_permission(
        ecs.DescribeImageSharePermissionRequest(region_id=REGION, image_id=image_id)
    ).body
    assert [a.aliyun_id for a in shared.accounts.account] == ["1234567890"]
    assert (
        error_of(lambda: ecs3.delete_image(ecs.DeleteImageRequest(region_id=REGION, image_id=image_id))).code
        == "InvalidImageId.IsShared"
    )
    ecs3.delete_image(ecs.DeleteImageRequest(region_id=REGION, image_id=image_id, force=True))


def test_key_pairs(ecs: EcsClient, name: Callable[[str], str]) -> None:
    key_name = name("kp")
    created = ecs.create_key_pair(ecs_models_create(key_name)).body
    assert created.private_key_body and len(created.key_pair_finger_print.split(":")) == 16
    assert error_of(lambda: ecs.create_key_pair(ecs_models_create(key_name))).code == "KeyPair.AlreadyExist"
    listed = ecs.describe_key_pairs(
        ecs_models.DescribeKeyPairsRequest(region_id=REGION, key_pair_name=key_name)
    ).body.key_pairs.key_pair
    assert [k.key_pair_name for k in listed] == [key_name]
    assert "private" not in json.dumps(listed[0].to_map()).lower()
    imported = name("imp")
    public = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHzBl4DqJLCz2Sx9C8UPPmTw0XbWlZXdVGqbqYS6wwwi test"
    ecs.import_key_pair(
        ecs_models.ImportKeyPairRequest(region_id=REGION, key_pair_name=imported, public_key_body=public)
    )
    bad = error_of(
        lambda: ecs.import_key_pair(
            ecs_models.ImportKeyPairRequest(
                region_id=REGION, key_pair_name=name("bad"), public_key_body="ssh-rsa garbage"
            )
        )
    )
    assert bad.code == "InvalidPublicKeyBody.Malformed"
    ecs.delete_key_pairs(
        ecs_models.DeleteKeyPairsRequest(region_id=REGION, key_pair_names=json.dumps([key_name, imported]))
    )
    assert (
        ecs.describe_key_pairs(
            ecs_models.DescribeKeyPairsRequest(region_id=REGION, key_pair_name=key_name)
        ).body.total_count
        == 0
    )


ecs_models = ecs


def ecs_models_create(key_name: str) -> ecs.CreateKeyPairRequest:
    return ecs.CreateKeyPairRequest(region_id=REGION, key_pair_name=key_name)


def test_eip_rules(ecs3: EcsClient, vpc: VpcClient) -> None:
    _, vsw, group = network(ecs3, vpc, "eip")
    iid = running(ecs3, vsw, group)
    eip = vpc.allocate_eip_address(vpcm.AllocateEipAddressRequest(region_id=REGION)).body
    other = vpc.allocate_eip_address(vpcm.AllocateEipAddressRequest(region_id=REGION)).body
    assert eip.eip_address != other.eip_address and eip.eip_address.startswith("127.100.")
    vpc.associate_eip_address(
        vpcm.AssociateEipAddressRequest(region_id=REGION, allocation_id=eip.allocation_id, instance_id=iid)
    )
    assert (
        error_of(
            lambda: vpc.release_eip_address(
                vpcm.ReleaseEipAddressRequest(region_id=REGION, allocation_id=eip.allocation_id)
            )
        ).code
        == "IncorrectEipStatus"
    )
    assert (
        error_of(
            lambda: vpc.associate_eip_address(
                vpcm.AssociateEipAddressRequest(
                    region_id=REGION, allocation_id=other.allocation_id, instance_id=iid
                )
            )
        ).code
        == "InvalidAssociation.Duplicated"
    )
    listed = ecs3.describe_instances(
        ecs.DescribeInstancesRequest(region_id=REGION, eip_addresses=json.dumps([eip.eip_address]))
    ).body.instances.instance
    assert [i.instance_id for i in listed] == [iid]
    ecs3.stop_instance(ecs.StopInstanceRequest(instance_id=iid, force_stop=True))
    wait_for("Stopped", lambda: instance_status(ecs3, iid) == "Stopped")
    ecs3.delete_instance(ecs.DeleteInstanceRequest(instance_id=iid))
    status = vpc.describe_eip_addresses(
        vpcm.DescribeEipAddressesRequest(region_id=REGION, allocation_id=eip.allocation_id)
    ).body.eip_addresses.eip_address[0]
    assert status.status == "Available" and not status.instance_id
    for allocation in (eip.allocation_id, other.allocation_id):
        vpc.release_eip_address(vpcm.ReleaseEipAddressRequest(region_id=REGION, allocation_id=allocation))
    iid2 = running(ecs3, vsw, group)
    address = ecs3.allocate_public_ip_address(
        ecs.AllocatePublicIpAddressRequest(instance_id=iid2)
    ).body.ip_address
    assert address.startswith("127.100.")
    got = ecs3.describe_instances(
        ecs.DescribeInstancesRequest(region_id=REGION, instance_ids=json.dumps([iid2]))
    ).body.instances.instance[0]
    assert got.public_ip_address.ip_address == [address]


def test_tags(ecs3: EcsClient, vpc: VpcClient, name: Callable[[str], str]) -> None:
    _, vsw, group = network(ecs3, vpc, "tags")
    value = name("v")
    iid = run(ecs3, vsw, group, tag=[ecs.RunInstancesRequestTag(key="team", value=value)])
    ecs3.add_tags(
        ecs.AddTagsRequest(
            region_id=REGION,
            resource_type="instance",
            resource_id=iid,
            tag=[ecs.AddTagsRequestTag(key="env", value="test")],
        )
    )
    ecs3.tag_resources(
        ecs.TagResourcesRequest(
            region_id=REGION,
            resource_type="securitygroup",
            resource_id=[group],
            tag=[ecs.TagResourcesRequestTag(key="team", value=value)],
        )
    )
    rows = ecs3.list_tag_resources(
        ecs.ListTagResourcesRequest(region_id=REGION, resource_type="instance", resource_id=[iid])
    ).body.tag_resources.tag_resource
    assert {(r.tag_key, r.tag_value) for r in rows} == {("team", value), ("env", "test")}
    found = ecs3.describe_instances(
        ecs.DescribeInstancesRequest(
            region_id=REGION, tag=[ecs.DescribeInstancesRequestTag(key="team", value=value)]
        )
    ).body.instances.instance
    assert [i.instance_id for i in found] == [iid]
    tags = ecs3.describe_tags(
        ecs.DescribeTagsRequest(region_id=REGION, tag=[ecs.DescribeTagsRequestTag(key="team", value=value)])
    ).body.tags.tag
    assert (
        len(tags) == 1
        and tags[0].resource_type_count.instance == 1
        and tags[0].resource_type_count.securitygroup == 1
    )
    ecs3.untag_resources(
        ecs.UntagResourcesRequest(
            region_id=REGION, resource_type="instance", resource_id=[iid], tag_key=["env"]
        )
    )
    rows = ecs3.list_tag_resources(
        ecs.ListTagResourcesRequest(region_id=REGION, resource_type="instance", resource_id=[iid])
    ).body.tag_resources.tag_resource
    assert [(r.tag_key) for r in rows] == ["team"]
    assert (
        error_of(
            lambda: ecs3.add_tags(
                ecs.AddTagsRequest(
                    region_id=REGION,
                    resource_type="instance",
                    resource_id="i-nope",
                    tag=[ecs.AddTagsRequestTag(key="a", value="b")],
                )
            )
        ).code
        == "InvalidInstanceId.NotFound"
    )


@pytest.mark.parametrize("action", ["DescribeNothing"])
def test_unknown_action(cloud: LocalCloudProcess, action: str) -> None:
    answer = client.call(cloud.url, cloud.access_key_id, cloud.secret, action, {"RegionId": REGION})
    assert answer.status == 404 and answer.json()["Code"] == "InvalidAction.NotFound"


def test_snapshots_disks_and_image_from_snapshot(
    ecs3: EcsClient, vpc: VpcClient, name: Callable[[str], str]
) -> None:
    _, vsw, group = network(ecs3, vpc, "snap")
    iid = running(ecs3, vsw, group)
    ecs3.reboot_instance(ecs.RebootInstanceRequest(instance_id=iid))
    wait_for("Running after reboot", lambda: instance_status(ecs3, iid) == "Running")
    disks = ecs3.describe_disks(ecs.DescribeDisksRequest(region_id=REGION, instance_id=iid)).body.disks.disk
    assert len(disks) == 1 and disks[0].type == "system" and disks[0].size == 20
    disk_id = disks[0].disk_id
    ecs3.stop_instance(ecs.StopInstanceRequest(instance_id=iid))
    wait_for("Stopped", lambda: instance_status(ecs3, iid) == "Stopped")
    sid = ecs3.create_snapshot(
        ecs.CreateSnapshotRequest(disk_id=disk_id, snapshot_name=name("snap"))
    ).body.snapshot_id

    def snapshot_status() -> str:
        found = ecs3.describe_snapshots(
            ecs.DescribeSnapshotsRequest(region_id=REGION, snapshot_ids=json.dumps([sid]))
        ).body.snapshots.snapshot
        return str(found[0].status)

    assert snapshot_status() in ("progressing", "accomplished")
    wait_for("accomplished", lambda: snapshot_status() == "accomplished")
    image_id = ecs3.create_image(
        ecs.CreateImageRequest(region_id=REGION, snapshot_id=sid, image_name=name("fromsnap"))
    ).body.image_id
    wait_for("Available", lambda: listed(ecs3, image_id) == 1)
    ecs3.delete_image(ecs.DeleteImageRequest(region_id=REGION, image_id=image_id))
    ecs3.delete_snapshot(ecs.DeleteSnapshotRequest(snapshot_id=sid))
    assert (
        error_of(lambda: ecs3.delete_snapshot(ecs.DeleteSnapshotRequest(snapshot_id=sid))).code
        == "InvalidSnapshotId.NotFound"
    )
    assert (
        error_of(lambda: ecs3.create_snapshot(ecs.CreateSnapshotRequest(disk_id="d-nope"))).code
        == "InvalidDiskId.NotFound"
    )


def test_vpc_api_tags_filter_and_key_value_format(vpc: VpcClient, name: Callable[[str], str]) -> None:
    run_id = name("run")
    tag = [vpcm.CreateVpcRequestTag(key="kiln-run-id", value=run_id)]
    vpc_id = vpc.create_vpc(
        vpcm.CreateVpcRequest(region_id=REGION, cidr_block="10.0.0.0/16", tag=tag)
    ).body.vpc_id
    vpc.create_vpc(vpcm.CreateVpcRequest(region_id=REGION, cidr_block="10.0.0.0/16"))
    eip = vpc.allocate_eip_address(
        vpcm.AllocateEipAddressRequest(
            region_id=REGION, tag=[vpcm.AllocateEipAddressRequestTag(key="kiln-run-id", value=run_id)]
        )
    ).body
    found = vpc.describe_vpcs(
        vpcm.DescribeVpcsRequest(
            region_id=REGION, tag=[vpcm.DescribeVpcsRequestTag(key="kiln-run-id", value=run_id)]
        )
    ).body.vpcs.vpc
    assert [v.vpc_id for v in found] == [vpc_id]
    assert [(t.key, t.value) for t in found[0].tags.tag] == [("kiln-run-id", run_id)]
    eips = vpc.describe_eip_addresses(
        vpcm.DescribeEipAddressesRequest(
            region_id=REGION, tag=[vpcm.DescribeEipAddressesRequestTag(key="kiln-run-id", value=run_id)]
        )
    ).body.eip_addresses.eip_address
    assert [e.allocation_id for e in eips] == [eip.allocation_id]


def test_data_disks_are_listed(ecs3: EcsClient, vpc: VpcClient) -> None:
    _, vsw, group = network(ecs3, vpc, "disks")
    data = [ecs.RunInstancesRequestDataDisk(size=50, category="cloud_essd", delete_with_instance=False)]
    iid = run(ecs3, vsw, group, data_disk=data)
    disks = ecs3.describe_disks(ecs.DescribeDisksRequest(region_id=REGION, instance_id=iid)).body.disks.disk
    assert sorted((d.type, d.size) for d in disks) == [("data", 50), ("system", 20)]
    only_data = ecs3.describe_disks(
        ecs.DescribeDisksRequest(region_id=REGION, instance_id=iid, disk_type="data")
    ).body.disks.disk
    assert [(d.category, d.delete_with_instance) for d in only_data] == [("cloud_essd", False)]


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="listening on port 22 needs root")
def test_eip_skips_addresses_another_server_forwards(vpc: VpcClient) -> None:
    import socket

    # Another localcloud on this host (another state folder) forwards the next free address already.
    first = vpc.allocate_eip_address(vpcm.AllocateEipAddressRequest(region_id=REGION)).body
    vpc.release_eip_address(
        vpcm.ReleaseEipAddressRequest(region_id=REGION, allocation_id=first.allocation_id)
    )
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind((first.eip_address, 22))
        other.listen()
        second = vpc.allocate_eip_address(vpcm.AllocateEipAddressRequest(region_id=REGION)).body
    vpc.release_eip_address(
        vpcm.ReleaseEipAddressRequest(region_id=REGION, allocation_id=second.allocation_id)
    )
    assert second.eip_address != first.eip_address


def test_a_refused_run_instances_takes_no_private_ip(ecs3: EcsClient, vpc: VpcClient) -> None:
    _, vsw, group = network(ecs3, vpc, "ips")

    def private_ip(iid: str) -> str:
        inst = ecs3.describe_instances(
            ecs.DescribeInstancesRequest(region_id=REGION, instance_ids=json.dumps([iid]))
        ).body.instances.instance[0]
        return str(inst.vpc_attributes.private_ip_address.ip_address[0])

    first = private_ip(run(ecs3, vsw, group))
    refused = [
        error_of(lambda: run(ecs3, vsw, group, user_data="not base64!")).code,
        error_of(lambda: run(ecs3, vsw, group, internet_max_bandwidth_out=5000)).code,
    ]
    assert refused == ["InvalidUserData.Base64FormatInvalid", "InvalidParameter"]
    second = private_ip(run(ecs3, vsw, group))
    assert int(second.rsplit(".", 1)[1]) == int(first.rsplit(".", 1)[1]) + 1, (first, second)


@pytest.mark.parametrize(
    ("action", "version"),
    [("RunInstances", client.VPC_VERSION), ("KilnDescribeFaults", client.ECS_VERSION)],
)
def test_an_action_answers_only_for_its_products(cloud: LocalCloudProcess, action: str, version: str) -> None:
    answer = client.call(
        cloud.url, cloud.access_key_id, cloud.secret, action, {"RegionId": REGION}, version=version
    )
    assert answer.status == 404 and answer.json()["Code"] == "InvalidAction.NotFound"
    both = client.call(
        cloud.url, cloud.access_key_id, cloud.secret, "DescribeRegions", version=client.VPC_VERSION
    )
    assert both.status == 200 and both.json()["Regions"]["Region"]
