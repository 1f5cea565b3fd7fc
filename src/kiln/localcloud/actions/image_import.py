"""ImportImage: an OSS object becomes a custom image, its disk really converted.

The checks run in the documented order of what a caller can get wrong: the parameters, the RAM
role (it must exist, trust ecs.aliyuncs.com and have the import policy: else
NoSetRoletoECSServiceAcount), the bucket (in the call's region), the object, and the object's real
format (`qemu-img info`) against the Format asked for. The image is then Creating, with Progress,
until both the latency profile's `image_import` has passed and `qemu-img convert` has written its
disk under state/images in the format the instance backend boots; RunInstances from it boots that
disk. A conversion that fails makes the image CreateFailed, as the cloud reports a failed task.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from kiln.errors import KilnError
from kiln.localcloud import errors
from kiln.localcloud.actions.images import being_made, check_image_name, new_image
from kiln.localcloud.api.registry import ECS, Json, action
from kiln.localcloud.api.request import Call
from kiln.localcloud.model import ram
from kiln.localcloud.model.cloud import Cloud
from kiln.localcloud.store import new_id
from kiln.machines.diskimage import QEMU_NAMES, probe

OS_TYPES = ("linux", "windows")
ARCHITECTURES = ("x86_64", "i386", "arm64")
BOOT_MODES = ("BIOS", "UEFI")
PLATFORMS = (
    "Aliyun", "Anolis", "CentOS", "Ubuntu", "CoreOS", "SUSE", "Debian", "OpenSUSE", "FreeBSD", "RedHat",
    "Kylin", "UOS", "Fedora", "Fedora CoreOS", "CentOS Stream", "AlmaLinux", "Rocky Linux", "Gentoo",
    "Customized Linux", "Others Linux", "Windows Server 2022", "Windows Server 2019",
    "Windows Server 2016", "Windows Server 2012", "Windows Server 2008", "Windows Server 2003",
)  # fmt: skip
GIB = 1024**3
MAX_DISK_GIB = 2048


def _choice(call: Call, name: str, allowed: tuple[str, ...], default: str, error: errors.Error) -> str:
    value = call.text(name, default)
    for option in allowed:  # the API takes these case-insensitively and answers its own spelling
        if option.lower() == value.lower():
            return option
    raise error(value)


def _size(mapping: dict[str, str], index: int) -> int | None:
    raw = mapping.get("DiskImageSize") or mapping.get("DiskImSize")
    if raw is None:
        return None
    bad = errors.IMAGE_SIZE_INVALID if index == 1 else errors.DATA_DISK_SIZE_INVALID
    try:
        size = int(raw)
    except ValueError:
        raise bad(raw, why=f"DiskDeviceMapping.{index}.DiskImageSize must be a number of GiB") from None
    if not 1 <= size <= MAX_DISK_GIB:
        raise bad(raw, why=f"DiskDeviceMapping.{index}.DiskImageSize must be 1 to {MAX_DISK_GIB} GiB")
    return size


def _check_role(cloud: Cloud, name: str) -> None:
    role = cloud.get("role", name)
    if role is None or not ram.role_authorises_import(role):
        why = "no such role" if role is None else "ECS is not trusted or the import policy is not attached"
        raise errors.IMPORT_ROLE_NOT_SET(f"{name}: {why}")


def _source(cloud: Cloud, region: str, bucket: str, key: str) -> Path:
    """The file of OSS object `bucket/key` (read, never changed), the bucket being in `region`."""
    try:
        found = cloud.oss.bucket(bucket)
    except errors.ApiError:  # NoSuchBucket, or another account's
        raise errors.OSS_BUCKET_NOT_FOUND(bucket) from None
    if found.region != region:
        raise errors.OSS_BUCKET_NOT_FOUND(f"{bucket} is in {found.region}")
    try:
        return cloud.oss.object_file(bucket, key)
    except errors.ApiError:
        raise errors.OSS_OBJECT_NOT_FOUND(f"{bucket}/{key}") from None


@action("ImportImage", ECS)
async def import_image(cloud: Cloud, call: Call) -> Json:
    region = call.require_region()
    mappings = call.structs("DiskDeviceMapping")
    if not mappings:
        raise errors.DISK_DEVICE_MAPPING_MISSING()
    system = mappings[0]
    for index, mapping in enumerate(mappings, 1):
        for field in ("OSSBucket", "OSSObject"):
            if not mapping.get(field):
                raise errors.missing(f"DiskDeviceMapping.{index}.{field}")
        if mapping.get("Format") and mapping["Format"].upper() not in QEMU_NAMES:
            raise errors.IMAGE_FORMAT_MALFORMED(mapping["Format"])
        _size(mapping, index)
    os_type = _choice(call, "OSType", OS_TYPES, "linux", errors.OS_TYPE_MALFORMED)
    platform = _choice(call, "Platform", PLATFORMS, "Others Linux", errors.PLATFORM_MALFORMED)
    arch = _choice(call, "Architecture", ARCHITECTURES, "x86_64", errors.ARCHITECTURE_MALFORMED)
    boot_mode = _choice(call, "BootMode", BOOT_MODES, "BIOS", errors.BOOT_MODE_MALFORMED)
    description = call.text("Description")
    if description and (len(description) > 256 or description.lower().startswith(("http://", "https://"))):
        raise errors.DESCRIPTION_MALFORMED(description[:40])
    name = call.get("ImageName") or new_id("import-image-", 12)
    check_image_name(cloud, region, name)
    _check_role(cloud, call.text("RoleName", ram.IMPORT_ROLE))

    bucket, key = system["OSSBucket"], system["OSSObject"]
    source = _source(cloud, region, bucket, key)
    if source.stat().st_size == 0:
        raise errors.OSS_OBJECT_EMPTY(f"{bucket}/{key}")
    try:
        info = await asyncio.to_thread(probe, source)
    except KilnError:
        raise errors.IMAGE_FORMAT_MISMATCH(
            why=f"{bucket}/{key} is not a disk image qemu-img can read"
        ) from None
    asked = (system.get("Format") or "").upper()
    if info.api_format is None or (asked and asked != info.api_format):
        found = info.api_format or info.format
        raise errors.IMAGE_FORMAT_MISMATCH(
            why=f"{bucket}/{key} is {found}, not {asked or 'RAW, VHD or QCOW2'}"
        )
    needed = max(1, math.ceil(info.virtual_size / GIB))
    size = _size(system, 1) or max(needed, 20)
    if size < needed:
        raise errors.IMAGE_SIZE_INVALID(
            why=f"DiskImageSize {size} GiB is smaller than the image's {needed} GiB"
        )

    image = new_image(cloud, call, region, name, {"Size": size, "Platform": platform})
    image.update(
        OSType=os_type,
        OSName=f"{platform} {'64' if arch != 'i386' else '32'} bit",
        OSNameEn=f"{platform} {'64' if arch != 'i386' else '32'} bit",
        Architecture=arch,
        BootMode=boot_mode,
        Description=description,
        _import={"OSSBucket": bucket, "OSSObject": key, "Format": info.api_format},
    )
    snap = being_made(cloud, image, "", f"import_{image['ImageId']}", "import")
    targets = [dict(image), dict(snap)]
    dest = Path(image["_file"])

    async def work() -> None:
        ok = True
        try:
            await cloud.backend.import_disk(source, info.format, dest)
        except Exception:  # any failure of the conversion is the cloud's CreateFailed
            ok = False
        cloud.finish_targets(targets, ok)

    cloud.spawn(work())
    return {"ImageId": image["ImageId"], "TaskId": new_id("t-"), "RegionId": region}
