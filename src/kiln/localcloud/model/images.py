"""The public image localcloud offers, and looking images up.

The public image is Debian 12 built by `kiln baseimage`, offered in every region with the id
`debian_12_x64_20G_kiln_20261128.vhd` (the shape of Alibaba's public image ids, e.g.
`debian_12_5_x64_20G_alibase_20240430.vhd`), family `acs:debian_12_x64`, owner alias `system`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.localcloud import errors
from kiln.localcloud.model import lifecycle

if TYPE_CHECKING:
    from kiln.localcloud.model.cloud import Cloud

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
        "_share": [],
    }


def visible(cloud: Cloud, region: str, owner: str | None = None) -> list[Mapping[str, Any]]:
    """The images a region lists: the public one (owner system) and the account's own (owner self)."""
    images: list[Mapping[str, Any]] = []
    if owner in (None, "", "system"):
        images.append(public_image(region, cloud.backend.public_image_file()))
    if owner in (None, "", "self"):
        images.extend(cloud.items("image", region))
    return images


def find_image(
    cloud: Cloud, region: str, image_id: str | None, family: str | None = None
) -> Mapping[str, Any]:
    """An image visible in `region` by id (public or own), or the newest Available one of a family."""
    if image_id is None and family is not None:
        found = family_latest(cloud, region, family)
        if found is None:
            raise errors.IMAGE_FAMILY_NOT_FOUND(family)
        return found
    if image_id is None:
        raise errors.missing("ImageId")
    if image_id == PUBLIC_IMAGE_ID:
        return public_image(region, cloud.backend.public_image_file())
    return cloud.find("image", image_id, region)


def family_latest(cloud: Cloud, region: str, family: str) -> Mapping[str, Any] | None:
    candidates = [
        i
        for i in cloud.items("image", region)
        if i.get("ImageFamily") == family and i["Status"] == "Available"
    ]
    if family == PUBLIC_IMAGE_FAMILY:
        candidates.append(public_image(region, cloud.backend.public_image_file()))
    if not candidates:
        return None
    return max(candidates, key=lambda i: float(i["_created"]))


def progress(image: Mapping[str, Any]) -> str:
    if image["Status"] != "Creating" and image["Status"] != "Waiting":
        return "100%" if image["Status"] == "Available" else str(image.get("Progress", "0%"))
    began, until = float(image["_created"]), lifecycle.until(image) or time.time()
    span = max(until - began, 0.001)
    done = min(99, int((time.time() - began) / span * 100))
    return f"{max(done, 0)}%"
