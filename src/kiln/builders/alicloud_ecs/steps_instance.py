"""The instance: created with its key pair (so it boots once, where Packer's RunInstances / stop /
attach / start boots it twice), an EIP allocated while it boots, then started and reachable."""

from __future__ import annotations

import base64
from typing import Any

from kiln.alicloud import reaper
from kiln.alicloud.client import ApiError, items
from kiln.builders.alicloud_ecs.steps import (
    INSTANCE_WAIT,
    EcsState,
    create_tracked,
    delete_tracked,
    find_given,
    instance_ids,
    wait,
)
from kiln.components import BuildContext
from kiln.engine.steps import CleanupFailed, Step
from kiln.errors import BuildError


def describe_instance(state: EcsState, ctx: BuildContext | None = None) -> dict[str, Any]:
    body = state.client.call(
        "DescribeInstances",
        {"InstanceIds": instance_ids(state.instance_id)},
        cancel=ctx.cancel if ctx else None,
    )
    found = items(body, "Instances", "Instance")
    return dict(found[0]) if found else {}


def wait_instance(state: EcsState, ctx: BuildContext, status: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        instance = describe_instance(state, ctx)
        if not instance:
            raise BuildError(f"instance {state.instance_id} disappeared while waiting for it to be {status}")
        return instance if instance.get("Status") == status else None

    return wait(state, ctx, probe, f"instance {state.instance_id} to be {status}", INSTANCE_WAIT)


def _disk(device: Any) -> dict[str, Any]:
    disk = {
        "DiskName": device.disk_name or None,
        "Category": device.disk_category or None,
        "Size": device.disk_size or None,
        "SnapshotId": device.disk_snapshot_id or None,
        "Description": device.disk_description or None,
        "DeleteWithInstance": device.disk_delete_with_instance,
        "Device": device.disk_device or None,
    }
    if device.disk_encrypted:
        disk["Encrypted"] = "true"
        disk["KMSKeyId"] = device.kms_key_id or None
    return {k: v for k, v in disk.items() if v is not None}


class StepCreateInstance(Step[EcsState]):
    name = "StepCreateAlicloudInstance"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        ctx.ui.say("Creating instance.")
        system = cfg.system_disk_mapping
        params: dict[str, Any] = {
            "InstanceType": cfg.instance_type,
            "SecurityGroupId": state.security_group_id,
            "VSwitchId": state.vswitch_id,
            "ZoneId": state.zone_id or None,
            "InstanceName": cfg.instance_name or None,
            "Description": cfg.description or None,
            "RamRoleName": cfg.ram_role_name or None,
            "SecurityEnhancementStrategy": cfg.security_enhancement_strategy or None,
            "InternetChargeType": cfg.internet_charge_type or None,
            "InternetMaxBandwidthOut": cfg.internet_max_bandwidth_out or None,
            "Password": cfg.ssh_password or None,
            "KeyPairName": state.key_pair_name or None,
            "Amount": 1,
            "MinAmount": 1,
            "Tag": state.tags(cfg.run_tags),
        }
        if cfg.image_family:
            params["ImageFamily"] = cfg.image_family
        else:
            params["ImageId"] = state.source_image.get("ImageId") or cfg.source_image
        if cfg.io_optimized is not None:
            params["IoOptimized"] = "optimized" if cfg.io_optimized else "none"
        user_data = cfg.read_user_data(ctx.work_dir)
        if user_data:
            params["UserData"] = base64.b64encode(user_data.encode()).decode()
        system_disk = {
            "DiskName": system.disk_name or None,
            "Category": system.disk_category or None,
            "Size": system.disk_size or None,
            "Description": system.disk_description or None,
        }
        if system.disk_encrypted:
            system_disk["Encrypted"] = "true"
            system_disk["KMSKeyId"] = system.kms_key_id or None
        system_disk = {k: v for k, v in system_disk.items() if v is not None}
        if system_disk:
            params["SystemDisk"] = system_disk
        if cfg.image_disk_mappings:
            params["DataDisk"] = [_disk(d) for d in cfg.image_disk_mappings]

        def first_id(body: dict[str, Any]) -> str:
            ids = items(body, "InstanceIdSets", "InstanceIdSet")
            if not ids:
                raise BuildError("RunInstances returned no instance id")
            return str(ids[0])

        params = {k: v for k, v in params.items() if v is not None}
        state.instance_id, _ = create_tracked(state, ctx, "instance", "RunInstances", params, first_id)
        ctx.generated["ID"] = state.instance_id

    def cleanup(self, state: EcsState, ctx: BuildContext) -> None:
        if not state.instance_id or state.instance_deleted:
            return
        ctx.ui.say("Cleaning up 'instance'")
        try:
            delete_tracked(state, "instance", state.instance_id)
        except CleanupFailed as exc:
            raise CleanupFailed(f"{exc}; its network is deleted after it, by the sweep") from None
        state.instance_deleted = True


class StepConfigEip(Step[EcsState]):
    """Allocate (or look up) the EIP now; it is associated once the instance runs. With
    ssh_private_ip and no EIP wanted, the private address is used instead."""

    name = "StepConfigAlicloudEIP"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        if not cfg.wants_eip():
            return
        if cfg.eip_id:
            ctx.ui.say("Querying eip...")
            given = {"AllocationId": cfg.eip_id}
            path = ("EipAddresses", "EipAddress")
            eip = find_given(
                state, ctx, "eip", "DescribeEipAddresses", given, path, "check eip_id and region"
            )
            state.eip_id = cfg.eip_id
            if not cfg.ssh_private_ip:
                state.host = str(eip.get("IpAddress") or "")
            ctx.ui.message(f"Using eip: {eip.get('IpAddress')}")
            return
        ctx.ui.say("Allocating eip")
        params = {
            "InternetChargeType": cfg.internet_charge_type or None,
            "Bandwidth": str(cfg.internet_max_bandwidth_out) if cfg.internet_max_bandwidth_out else None,
            "Tag": state.tags(),
        }
        state.eip_id, body = create_tracked(
            state,
            ctx,
            "eip",
            "AllocateEipAddress",
            {k: v for k, v in params.items() if v is not None},
            lambda b: str(b["AllocationId"]),
        )
        state.eip_allocated = True
        address = str(body.get("EipAddress") or "")
        if not cfg.ssh_private_ip:
            state.host = address
        ctx.ui.say(f"Allocated eip {address}")

    def cleanup(self, state: EcsState, ctx: BuildContext) -> None:
        if not state.eip_id or not (state.eip_allocated or state.eip_associated):
            return
        ctx.ui.say("Cleaning up 'EIP'")
        if not state.eip_allocated:  # the user's EIP: only unassociate it
            try:
                reaper.release_eip(state.client, state.eip_id, release=False)
            except Exception as exc:
                raise CleanupFailed(f"EIP {state.eip_id} is still associated ({exc})") from None
            state.eip_associated = False
            return
        delete_tracked(state, "eip", state.eip_id)
        state.eip_allocated = state.eip_associated = False


class StepAttachKeyPair(Step[EcsState]):
    """The key pair went in with RunInstances (as in Packer's newest plugin); this step says so, and
    detaches it afterwards as Packer does."""

    name = "StepAttachKeyPair"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        if state.key_pair_name:
            ctx.ui.message(f"Attach keypair {state.key_pair_name} to instance: {state.instance_id}")

    def cleanup(self, state: EcsState, ctx: BuildContext) -> None:
        if not state.key_pair_name or not state.instance_id or state.key_pair_detached:
            return
        state.key_pair_detached = True
        try:
            state.client.call(
                "DetachKeyPair",
                {"KeyPairName": state.key_pair_name, "InstanceIds": instance_ids(state.instance_id)},
                attempts=3,
            )
        except ApiError as exc:
            ctx.log.debug("DetachKeyPair: %s", exc)  # the instance is deleted next anyway
            return
        ctx.ui.message(f"Detach keypair {state.key_pair_name} from instance: {state.instance_id}")


class StepRunInstance(Step[EcsState]):
    """Wait until the instance runs, then associate the EIP (the cloud wants a running or stopped
    instance for that) and find the address to connect to."""

    name = "StepRunAlicloudInstance"

    def run(self, state: EcsState, ctx: BuildContext) -> None:
        cfg = state.config
        ctx.ui.say(f"Starting instance: {state.instance_id}")
        state.instance = wait_instance(state, ctx, "Running")
        if state.eip_id:
            try:
                state.client.call(
                    "AssociateEipAddress",
                    {"AllocationId": state.eip_id, "InstanceId": state.instance_id},
                    retry=("IncorrectInstanceStatus", "IncorrectEipStatus"),
                    cancel=ctx.cancel,
                )
            except ApiError as exc:
                if exc.code != "TaskConflict":
                    raise
            state.eip_associated = True
            associated = lambda: reaper.eip_status(state.client, state.eip_id) == "InUse" or None  # noqa: E731
            wait(state, ctx, associated, f"eip {state.eip_id} to be associated")
        if cfg.ssh_private_ip:
            private = items(state.instance, "VpcAttributes", "PrivateIpAddress", "IpAddress")
            if not private:
                raise BuildError(f"Failed to get private ip of instance {state.instance_id}")
            state.host = str(private[0])
        elif not state.host:
            public = items(state.instance, "PublicIpAddress", "IpAddress")
            state.host = str(public[0]) if public else ""
        if cfg.communicator == "ssh" and not state.host and not cfg.ssh_host:
            raise BuildError(
                f"instance {state.instance_id} has no address to connect to",
                "set associate_public_ip_address, eip_id or ssh_private_ip",
            )
