"""Instance types, available resources, data disks, snapshots and security group rules through the
official SDK, API only (record-only instances): fast."""

from __future__ import annotations

import json

from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_vpc20160428.client import Client as VpcClient

from kiln.localcloud import LocalCloudProcess, sdkcalls

from .conftest import REGION, error_of
from .workflow import wait_for


def test_instance_types_are_what_run_instances_accepts(ecs3: EcsClient, vpc: VpcClient) -> None:
    types = ecs3.describe_instance_types(ecs.DescribeInstanceTypesRequest()).body
    listed = {t.instance_type_id: t for t in types.instance_types.instance_type}
    assert types.next_token == ""
    g6 = listed["ecs.g6.large"]
    assert (g6.cpu_core_count, g6.memory_size, g6.instance_type_family) == (2, 8.0, "ecs.g6")
    assert g6.instance_family_level == "EnterpriseLevel" and g6.cpu_architecture == "X86"
    small = listed["ecs.t5-lc1m1.small"]
    assert (small.cpu_core_count, small.memory_size, small.instance_family_level) == (
        1,
        1.0,
        "CreditEntryLevel",
    )

    # filters: by ids, family, figures; MaxResults pages with NextToken
    two = ecs3.describe_instance_types(
        ecs.DescribeInstanceTypesRequest(instance_types=["ecs.g6.large", "ecs.c6.large"])
    ).body.instance_types.instance_type
    assert sorted(t.instance_type_id for t in two) == ["ecs.c6.large", "ecs.g6.large"]
    family = ecs3.describe_instance_types(
        ecs.DescribeInstanceTypesRequest(instance_type_family="ecs.t5")
    ).body.instance_types.instance_type
    assert family and {t.instance_type_family for t in family} == {"ecs.t5"}
    big = ecs3.describe_instance_types(
        ecs.DescribeInstanceTypesRequest(minimum_memory_size=16.0, minimum_cpu_core_count=4)
    ).body.instance_types.instance_type
    assert [t.instance_type_id for t in big] == ["ecs.g6.xlarge"]
    first = ecs3.describe_instance_types(ecs.DescribeInstanceTypesRequest(max_results=5)).body
    assert len(first.instance_types.instance_type) == 5 and first.next_token
    rest = ecs3.describe_instance_types(
        ecs.DescribeInstanceTypesRequest(max_results=1600, next_token=first.next_token)
    ).body
    paged = [
        t.instance_type_id for t in first.instance_types.instance_type + rest.instance_types.instance_type
    ]
    assert paged == list(listed)

    families = ecs3.describe_instance_type_families(
        ecs.DescribeInstanceTypeFamiliesRequest(region_id=REGION)
    ).body.instance_type_families.instance_type_family
    assert {f.instance_type_family_id for f in families} == {t.instance_type_family for t in listed.values()}
    gen4 = ecs3.describe_instance_type_families(
        ecs.DescribeInstanceTypeFamiliesRequest(region_id=REGION, generation="ecs-4")
    ).body.instance_type_families.instance_type_family
    assert [(f.instance_type_family_id, f.generation) for f in gen4] == [("ecs.t5", "ecs-4")]

    # every listed type runs, and the instance shows the type's figures; others are refused
    net = sdkcalls.network(ecs3, vpc, wait_for, vswitch_cidr="10.0.7.0/24")
    iid = sdkcalls.run_instances(ecs3, net.vswitch_id, net.group_id, instance_type="ecs.r6.large")[0]
    inst = ecs3.describe_instances(
        ecs.DescribeInstancesRequest(region_id=REGION, instance_ids=json.dumps([iid]))
    ).body.instances.instance[0]
    assert (inst.cpu, inst.memory, inst.instance_type) == (2, 16384, "ecs.r6.large")
    refused = error_of(
        lambda: sdkcalls.run_instances(ecs3, net.vswitch_id, net.group_id, instance_type="ecs.g6.huge")
    )
    assert refused.code == "InvalidInstanceType.ValueNotSupported"
    wait_for("Running", lambda: sdkcalls.instance_status(ecs3, iid) == "Running")
    ecs3.delete_instance(ecs.DeleteInstanceRequest(instance_id=iid, force=True))


def _available(client: EcsClient, destination: str, **more: object) -> dict[str, list[str]]:
    """zone -> the values DescribeAvailableResource offers there."""
    request = ecs.DescribeAvailableResourceRequest(region_id=REGION, destination_resource=destination, **more)  # type: ignore[arg-type]
    zones = client.describe_available_resource(request).body.available_zones.available_zone
    out = {}
    for zone in zones:
        assert zone.status == "Available" and zone.region_id == REGION
        (resource,) = zone.available_resources.available_resource
        assert resource.type == destination
        out[zone.zone_id] = [r.value for r in resource.supported_resources.supported_resource]
    return out


def test_available_resource_per_zone(ecs3: EcsClient) -> None:
    zones = _available(ecs3, "Zone")
    assert sorted(zones) == ["cn-beijing-a", "cn-beijing-b", "cn-beijing-c"]
    assert zones["cn-beijing-a"] == ["cn-beijing-a"]
    types = _available(ecs3, "InstanceType", zone_id="cn-beijing-b")
    all_types = [
        t.instance_type_id
        for t in ecs3.describe_instance_types(
            ecs.DescribeInstanceTypesRequest()
        ).body.instance_types.instance_type
    ]
    assert types == {"cn-beijing-b": all_types}
    assert _available(ecs3, "InstanceType", cores=4, memory=8.0)["cn-beijing-a"] == ["ecs.c6.xlarge"]
    assert _available(ecs3, "InstanceType", instance_type="ecs.nope.large") == {}
    request = ecs.DescribeAvailableResourceRequest(
        region_id=REGION,
        destination_resource="SystemDisk",
        instance_type="ecs.g6.large",
        zone_id="cn-beijing-a",
    )
    (zone,) = ecs3.describe_available_resource(request).body.available_zones.available_zone
    disks = zone.available_resources.available_resource[0].supported_resources.supported_resource
    essd = next(d for d in disks if d.value == "cloud_essd")
    assert (essd.min, essd.max, essd.unit, essd.status_category) == (20, 2048, "GiB", "WithStock")
    data = _available(ecs3, "DataDisk", data_disk_category="cloud_ssd")
    assert set(map(tuple, data.values())) == {("cloud_ssd",)}
    missing = error_of(
        lambda: ecs3.describe_available_resource(
            ecs.DescribeAvailableResourceRequest(region_id=REGION, destination_resource="SystemDisk")
        )
    )
    assert missing.code == "MissingParameter"
    bad = error_of(
        lambda: ecs3.describe_available_resource(
            ecs.DescribeAvailableResourceRequest(region_id=REGION, destination_resource="Gpu")
        )
    )
    assert bad.code == "InvalidParameter"
    # DescribeZones says the same
    described = ecs3.describe_zones(ecs.DescribeZonesRequest(region_id=REGION)).body.zones.zone[0]
    assert described.available_instance_types.instance_types == all_types


def _disk(client: EcsClient, disk_id: str) -> ecs.DescribeDisksResponseBodyDisksDisk:
    disks = client.describe_disks(
        ecs.DescribeDisksRequest(region_id=REGION, disk_ids=json.dumps([disk_id]))
    ).body.disks.disk
    assert len(disks) == 1, disks
    return disks[0]


def _status(client: EcsClient, disk_id: str) -> str:
    return str(_disk(client, disk_id).status)


def test_data_disks_statuses_files_and_snapshots(
    ecs3: EcsClient, vpc: VpcClient, cloud: LocalCloudProcess
) -> None:
    net = sdkcalls.network(ecs3, vpc, wait_for, vswitch_cidr="10.0.8.0/24", zone="cn-beijing-a")
    iid = sdkcalls.run_instances(
        ecs3,
        net.vswitch_id,
        net.group_id,
        data_disk=[
            ecs.RunInstancesRequestDataDisk(size=40, category="cloud_ssd", delete_with_instance=False),
            ecs.RunInstancesRequestDataDisk(size=20, device="/dev/xvdd"),
        ],
    )[0]
    wait_for("Running", lambda: sdkcalls.instance_status(ecs3, iid) == "Running")
    listed = ecs3.describe_disks(ecs.DescribeDisksRequest(region_id=REGION, instance_id=iid)).body
    by_type = sorted((d.type, d.device, d.size, d.category, d.status) for d in listed.disks.disk)
    assert by_type == [
        ("data", "/dev/xvdb", 40, "cloud_ssd", "In_use"),
        ("data", "/dev/xvdd", 20, "cloud_efficiency", "In_use"),
        ("system", "/dev/xvda", 20, "cloud_efficiency", "In_use"),
    ]
    kept = next(d for d in listed.disks.disk if d.device == "/dev/xvdb")
    assert kept.portable is True and kept.delete_with_instance is False and kept.zone_id == "cn-beijing-a"
    system = next(d for d in listed.disks.disk if d.type == "system")
    # the disk is a real file of its size (sparse)
    files = {p.name: p.stat().st_size for p in (cloud.state_dir / "disks").iterdir()}
    assert files[f"{kept.disk_id}.img"] == 40 << 30

    # a disk of its own: Creating -> Available, attach, detach, delete; its documented errors
    created = ecs3.create_disk(
        ecs.CreateDiskRequest(region_id=REGION, zone_id="cn-beijing-a", size=25, disk_name="extra")
    ).body.disk_id
    wait_for("Available", lambda: _status(ecs3, created) == "Available")
    detached = error_of(lambda: ecs3.detach_disk(ecs.DetachDiskRequest(instance_id=iid, disk_id=created)))
    assert (detached.code, detached.status_code) == ("InvalidDisk.AlreadyDetached", 404)
    ecs3.attach_disk(ecs.AttachDiskRequest(instance_id=iid, disk_id=created))
    assert _status(ecs3, created) in ("Attaching", "In_use")
    wait_for("In_use", lambda: _status(ecs3, created) == "In_use")
    assert _disk(ecs3, created).device == "/dev/xvdc" and _disk(ecs3, created).instance_id == iid
    refused = error_of(lambda: ecs3.delete_disk(ecs.DeleteDiskRequest(disk_id=created)))
    assert refused.code == "IncorrectDiskStatus"
    not_portable = error_of(
        lambda: ecs3.detach_disk(ecs.DetachDiskRequest(instance_id=iid, disk_id=system.disk_id))
    )
    assert (not_portable.code, not_portable.status_code) == ("DiskTypeViolation", 403)
    ecs3.detach_disk(ecs.DetachDiskRequest(instance_id=iid, disk_id=created))
    wait_for("Available", lambda: _status(ecs3, created) == "Available")
    assert _disk(ecs3, created).instance_id == ""
    elsewhere = ecs3.create_disk(
        ecs.CreateDiskRequest(region_id=REGION, zone_id="cn-beijing-b", size=20)
    ).body.disk_id
    wait_for("Available", lambda: _status(ecs3, elsewhere) == "Available")
    other_zone = error_of(lambda: ecs3.attach_disk(ecs.AttachDiskRequest(instance_id=iid, disk_id=elsewhere)))
    assert other_zone.code == "InvalidParameter"

    # a snapshot of a data disk, a disk made from it, and an image that uses it
    snap = ecs3.create_snapshot(
        ecs.CreateSnapshotRequest(disk_id=kept.disk_id, snapshot_name="data1")
    ).body.snapshot_id
    described = lambda: ecs3.describe_snapshots(  # noqa: E731
        ecs.DescribeSnapshotsRequest(region_id=REGION, snapshot_ids=json.dumps([snap]))
    ).body.snapshots.snapshot[0]
    wait_for("accomplished", lambda: described().status == "accomplished")
    assert (described().source_disk_id, described().source_disk_type, described().source_disk_size) == (
        kept.disk_id, "data", "40",
    )  # fmt: skip
    of_kind = ecs3.describe_snapshots(
        ecs.DescribeSnapshotsRequest(region_id=REGION, instance_id=iid, source_disk_type="Data")
    ).body.snapshots.snapshot
    assert [s.snapshot_id for s in of_kind] == [snap]
    too_small = error_of(
        lambda: ecs3.create_disk(
            ecs.CreateDiskRequest(region_id=REGION, zone_id="cn-beijing-a", snapshot_id=snap, size=30)
        )
    )
    assert too_small.code == "InvalidParameter"
    bad_category = error_of(
        lambda: sdkcalls.run_instances(
            ecs3, net.vswitch_id, net.group_id, data_disk=[ecs.RunInstancesRequestDataDisk(category="floppy")]
        )
    )
    assert bad_category.code == "InvalidDataDiskCategory.ValueNotSupported"
    bad_size = error_of(
        lambda: sdkcalls.run_instances(
            ecs3, net.vswitch_id, net.group_id, data_disk=[ecs.RunInstancesRequestDataDisk(size=5)]
        )
    )
    assert bad_size.code == "InvalidDataDiskSize.ValueNotSupported"
    bad_system = error_of(
        lambda: sdkcalls.run_instances(
            ecs3,
            net.vswitch_id,
            net.group_id,
            system_disk=ecs.RunInstancesRequestSystemDisk(category="floppy"),
        )
    )
    assert bad_system.code == "InvalidSystemDiskCategory.ValueNotSupported"
    from_snap = ecs3.create_disk(
        ecs.CreateDiskRequest(region_id=REGION, zone_id="cn-beijing-a", snapshot_id=snap)
    ).body.disk_id
    wait_for("Available", lambda: _status(ecs3, from_snap) == "Available")
    assert (_disk(ecs3, from_snap).size, _disk(ecs3, from_snap).source_snapshot_id) == (40, snap)

    image_id = ecs3.create_image(
        ecs.CreateImageRequest(region_id=REGION, instance_id=iid, image_name=f"disks-{iid}")
    ).body.image_id

    def image() -> ecs.DescribeImagesResponseBodyImagesImage:
        return ecs3.describe_images(
            ecs.DescribeImagesRequest(region_id=REGION, image_id=image_id, status="Creating,Available")
        ).body.images.image[0]

    wait_for("image", lambda: image().status == "Available")
    mappings = sorted((m.type, m.device, m.size) for m in image().disk_device_mappings.disk_device_mapping)
    assert mappings == [
        ("data", "/dev/xvdb", "40"),
        ("data", "/dev/xvdd", "20"),
        ("system", "/dev/xvda", "20"),
    ]
    data_snap = next(
        m.snapshot_id for m in image().disk_device_mappings.disk_device_mapping if m.device == "/dev/xvdb"
    )
    in_use = error_of(lambda: ecs3.delete_snapshot(ecs.DeleteSnapshotRequest(snapshot_id=data_snap)))
    assert in_use.code == "SnapshotCreatedImage"

    # an instance of that image gets its data disks, made from the image's snapshots
    second = sdkcalls.run_instances(ecs3, net.vswitch_id, net.group_id, image_id=image_id)[0]
    wait_for("Running", lambda: sdkcalls.instance_status(ecs3, second) == "Running")
    made = ecs3.describe_disks(
        ecs.DescribeDisksRequest(region_id=REGION, instance_id=second, disk_type="data")
    ).body.disks.disk
    assert sorted((d.device, d.size, bool(d.source_snapshot_id)) for d in made) == [
        ("/dev/xvdb", 40, True), ("/dev/xvdd", 20, True),
    ]  # fmt: skip

    # deleting the instances: DeleteWithInstance disks go with them, the others are Available again
    for instance in (iid, second):
        ecs3.delete_instance(ecs.DeleteInstanceRequest(instance_id=instance, force=True))
    assert _status(ecs3, kept.disk_id) == "Available"
    left = ecs3.describe_disks(ecs.DescribeDisksRequest(region_id=REGION, instance_id=second)).body.disks.disk
    assert left == []
    ecs3.delete_image(ecs.DeleteImageRequest(region_id=REGION, image_id=image_id, force=True))
    for disk_id in (kept.disk_id, created, elsewhere, from_snap):
        ecs3.delete_disk(ecs.DeleteDiskRequest(disk_id=disk_id))
    ecs3.delete_disk(ecs.DeleteDiskRequest(disk_id=created))  # gone: ignored, as documented
    ours = {f"{d}.img" for d in (kept.disk_id, created, elsewhere, from_snap, *(d.disk_id for d in made))}
    wait_for(
        "files removed",
        lambda: not ours & {p.name for p in (cloud.state_dir / "disks").iterdir()},
        timeout=30,
    )
