"""What Alibaba's API reference documents beyond the response shapes: error subcodes from the actions'
error tables, search semantics, and actions routed by product and version."""

from __future__ import annotations

from collections.abc import Callable

from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi.utils_models import OpenApiRequest, Params
from alibabacloud_vpc20160428 import models as vpcm
from alibabacloud_vpc20160428.client import Client as VpcClient
from darabonba.runtime import RuntimeOptions

from kiln.localcloud.model.images import PUBLIC_IMAGE_ID
from kiln.localcloud.sdkcalls import REGION, instance_status, network, run_instances

from .conftest import error_of
from .workflow import ALL_IMAGE_STATUSES, wait_for

#: The codes packer-plugin-alicloud's cleanup retries on (builder/ecs/step_config_vpc.go,
#: step_config_vswitch.go, step_config_security_group.go); it compares codes exactly.
PACKER_RETRIES = {
    "DeleteVpc": {
        "DependencyViolation.Instance",
        "DependencyViolation.RouteEntry",
        "DependencyViolation.VSwitch",
        "DependencyViolation.SecurityGroup",
        "Forbbiden",
        "TaskConflict",
    },
    "DeleteVSwitch": {"IncorrectVSwitchStatus", "DependencyViolation", "DependencyViolation.HaVip"},
    "DeleteSecurityGroup": {"DependencyViolation"},
}


def test_delete_vpc_names_what_is_still_in_it(ecs3: EcsClient, vpc: VpcClient) -> None:
    net = network(
        ecs3, vpc, lambda what, probe: wait_for(what, probe), cidr="10.20.0.0/16", vswitch_cidr="10.20.0.0/24"
    )

    def delete_vpc() -> object:
        return vpc.delete_vpc(vpcm.DeleteVpcRequest(region_id=REGION, vpc_id=net.vpc_id))

    has_vswitch = error_of(delete_vpc)
    assert (has_vswitch.code, has_vswitch.status_code) == ("DependencyViolation.VSwitch", 400)
    assert has_vswitch.data["Message"].startswith("Specified object has dependent resources")
    vpc.delete_vswitch(vpcm.DeleteVSwitchRequest(v_switch_id=net.vswitch_id))
    has_group = error_of(delete_vpc)
    assert (has_group.code, has_group.status_code) == ("DependencyViolation.SecurityGroup", 400)
    assert has_group.data["Message"].startswith("Specified object has dependent resources SecurityGroup.")
    assert {has_vswitch.code, has_group.code} <= PACKER_RETRIES["DeleteVpc"]
    ecs3.delete_security_group(
        ecs.DeleteSecurityGroupRequest(region_id=REGION, security_group_id=net.group_id)
    )
    delete_vpc()


def test_vswitch_and_group_in_use_answer_the_codes_packer_retries(ecs3: EcsClient, vpc: VpcClient) -> None:
    net = network(
        ecs3, vpc, lambda what, probe: wait_for(what, probe), cidr="10.21.0.0/16", vswitch_cidr="10.21.0.0/24"
    )
    run_instances(ecs3, net.vswitch_id, net.group_id)
    in_vswitch = error_of(lambda: vpc.delete_vswitch(vpcm.DeleteVSwitchRequest(v_switch_id=net.vswitch_id)))
    assert (in_vswitch.code, in_vswitch.status_code) == ("DependencyViolation", 400)
    assert in_vswitch.code in PACKER_RETRIES["DeleteVSwitch"]
    in_group = error_of(
        lambda: ecs3.delete_security_group(
            ecs.DeleteSecurityGroupRequest(region_id=REGION, security_group_id=net.group_id)
        )
    )
    assert (in_group.code, in_group.status_code) == ("DependencyViolation", 403)
    assert in_group.code in PACKER_RETRIES["DeleteSecurityGroup"]


def test_an_ecs_action_is_not_a_vpc_action(vpc: VpcClient) -> None:
    """RunInstances sent with VPC's Version is an unknown action there, as on vpc.aliyuncs.com."""
    params = Params(
        action="RunInstances",
        version="2016-04-28",
        protocol="HTTPS",
        pathname="/",
        method="POST",
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    request = OpenApiRequest(query={"RegionId": REGION, "ImageId": PUBLIC_IMAGE_ID})
    err = error_of(lambda: vpc.call_api(params, request, RuntimeOptions()))
    assert (err.code, err.status_code) == ("InvalidAction.NotFound", 404)


def test_each_api_names_its_own_endpoints(ecs3: EcsClient, vpc: VpcClient) -> None:
    in_ecs = ecs3.describe_regions(ecs.DescribeRegionsRequest()).body.regions.region
    in_vpc = vpc.describe_regions(vpcm.DescribeRegionsRequest()).body.regions.region
    assert [r.region_id for r in in_ecs] == [r.region_id for r in in_vpc]
    assert all(r.region_endpoint == f"ecs.{r.region_id}.aliyuncs.com" for r in in_ecs)
    assert all(r.region_endpoint == f"vpc.{r.region_id}.aliyuncs.com" for r in in_vpc)


def test_image_name_is_a_fuzzy_search(ecs3: EcsClient, vpc: VpcClient, name: Callable[[str], str]) -> None:
    net = network(
        ecs3, vpc, lambda what, probe: wait_for(what, probe), cidr="10.22.0.0/16", vswitch_cidr="10.22.0.0/24"
    )
    (instance_id,) = run_instances(ecs3, net.vswitch_id, net.group_id)
    wait_for("Running", lambda: instance_status(ecs3, instance_id) == "Running")
    stem = name("fuzzy")
    made = {
        suffix: ecs3.create_image(
            ecs.CreateImageRequest(region_id=REGION, instance_id=instance_id, image_name=f"{stem}-{suffix}")
        ).body.image_id
        for suffix in ("web", "db")
    }

    def named(part: str) -> set[str]:
        found = ecs3.describe_images(
            ecs.DescribeImagesRequest(region_id=REGION, image_name=part, status=ALL_IMAGE_STATUSES)
        ).body.images.image
        return {i.image_id for i in found}

    assert named(stem) == set(made.values())
    assert named(f"{stem}-web") == {made["web"]}
    assert named(stem[3:] + "-d") == {made["db"]}  # anywhere in the name


def test_detach_disk_answers_its_documented_errors(ecs3: EcsClient, vpc: VpcClient) -> None:
    net = network(
        ecs3, vpc, lambda what, probe: wait_for(what, probe), cidr="10.23.0.0/16", vswitch_cidr="10.23.0.0/24"
    )
    on, other = run_instances(ecs3, net.vswitch_id, net.group_id, zone_id="cn-beijing-a", amount=2)
    for instance_id in (on, other):
        wait_for("Running", lambda: instance_status(ecs3, instance_id) == "Running")  # noqa: B023

    def disk_status(disk_id: str) -> str:
        found = ecs3.describe_disks(ecs.DescribeDisksRequest(region_id=REGION, disk_ids=f'["{disk_id}"]'))
        return str(found.body.disks.disk[0].status)

    disk = ecs3.create_disk(
        ecs.CreateDiskRequest(region_id=REGION, zone_id="cn-beijing-a", size=20)
    ).body.disk_id
    wait_for("Available", lambda: disk_status(disk) == "Available")

    def detach(instance_id: str) -> object:
        return ecs3.detach_disk(ecs.DetachDiskRequest(instance_id=instance_id, disk_id=disk))

    detached = error_of(lambda: detach(on))
    assert (detached.code, detached.status_code) == ("InvalidDisk.AlreadyDetached", 404)
    ecs3.attach_disk(ecs.AttachDiskRequest(instance_id=on, disk_id=disk))
    wait_for("In_use", lambda: disk_status(disk) == "In_use")
    elsewhere = error_of(lambda: detach(other))
    assert (elsewhere.code, elsewhere.status_code) == ("DependencyViolation", 403)
    assert elsewhere.data["Message"].startswith(
        "The specified disk has not been attached on the specified instance."
    )
    system = (
        ecs3.describe_disks(ecs.DescribeDisksRequest(region_id=REGION, instance_id=on, disk_type="system"))
        .body.disks.disk[0]
        .disk_id
    )
    refused = error_of(lambda: ecs3.detach_disk(ecs.DetachDiskRequest(instance_id=on, disk_id=system)))
    assert (refused.code, refused.status_code) == ("DiskTypeViolation", 403)
    detach(on)
