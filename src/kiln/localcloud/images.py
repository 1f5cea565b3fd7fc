"""The public image localcloud offers, and looking images up.

The public image is Debian 12 built by `kiln baseimage`, offered in every region with the id
`debian_12_x64_20G_kiln_20261128.vhd` (the shape of Alibaba's public image ids, e.g.
`debian_12_5_x64_20G_alibase_20240430.vhd`), family `acs:debian_12_x64`, owner alias `system`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kiln.localcloud.wire import ApiError, not_found

PUBLIC_IMAGE_ID = "debian_12_x64_20G_kiln_20261128.vhd"
PUBLIC_IMAGE_FAMILY = "acs:debian_12_x64"

_PUBLIC_CREATED = "2026-11-28T00:00:00Z"


def public_image(region: str, file: Path | None) -> dict[str, Any]:
    return {
        "_kind": "image",
        "_id": PUBLIC_IMAGE_ID,
        "_created": 0.0,
        "_file": str(file) if file else None,
        "RegionId": region,
        "ImageId": PUBLIC_IMAGE_ID,
        "ImageName": PUBLIC_IMAGE_ID,
        "ImageVersion": "",
        "ImageFamily": PUBLIC_IMAGE_FAMILY,
        "Description": "Debian 12 (bookworm) 64 bit, built by kiln baseimage",
        "Status": "Available",
        "Progress": "100%",
        "OSType": "linux",
        "OSName": "Debian  12 64位",
        "OSNameEn": "Debian  12 64 bit",
        "Platform": "Debian",
        "Architecture": "x86_64",
        "Size": 20,
        "CreationTime": _PUBLIC_CREATED,
        "ImageOwnerAlias": "system",
        "IsSupportCloudinit": True,
        "IsSupportIoOptimized": True,
        "Usage": "instance",
        "BootMode": "BIOS",
        "IsCopied": False,
        "IsSelfShared": "",
        "IsPublic": True,
        "IsSubscribed": False,
        "ProductCode": "",
        "LoginAsNonRootSupported": False,
        "Tags": [],
        "_snapshots": [],
    }


def own_images(cloud: Any, region: str | None) -> list[dict[str, Any]]:
    return list(cloud.items("image", region))


def find_image(cloud: Any, region: str, image_id: str | None, family: str | None = None) -> dict[str, Any]:
    """An image visible in `region` by id (public or own), or the newest Available one of a family."""
    if image_id is None and family is not None:
        found = family_latest(cloud, region, family)
        if found is None:
            raise ApiError(
                404,
                "InvalidImageFamily.NotFound",
                f"The specified ImageFamily has no available image. ({family})",
            )
        return found
    if image_id is None:
        raise ApiError(
            400,
            "MissingParameter",
            'The input parameter "ImageId" that is mandatory for processing this request is not supplied.',
        )
    if image_id == PUBLIC_IMAGE_ID:
        return public_image(region, cloud.backend.public_image_file())
    image = cloud.store.get("image", image_id)
    if image is None or image["RegionId"] != region:
        raise not_found("ImageId", image_id)
    return dict(cloud.settle(image))


def family_latest(cloud: Any, region: str, family: str) -> dict[str, Any] | None:
    candidates = [
        i for i in own_images(cloud, region) if i.get("ImageFamily") == family and i["Status"] == "Available"
    ]
    if family == PUBLIC_IMAGE_FAMILY:
        candidates.append(public_image(region, cloud.backend.public_image_file()))
    if not candidates:
        return None
    return max(candidates, key=lambda i: i["_created"])


def progress(image: dict[str, Any]) -> str:
    if image["Status"] != "Creating" and image["Status"] != "Waiting":
        return "100%" if image["Status"] == "Available" else image.get("Progress", "0%")
    began, until = image["_created"], image.get("_until", time.time())
    span = max(until - began, 0.001)
    done = min(99, int((time.time() - began) / span * 100))
    return f"{max(done, 0)}%"
