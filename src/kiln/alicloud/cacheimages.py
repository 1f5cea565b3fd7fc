"""The build cache's images on Alibaba Cloud: an image made from a build's running instance after a
cached provisioner, tagged `kiln-cache-key` with the provisioner's key and named
`kiln-cache-<key>`; a build's output image carries the tag with its final key. They are not
temporary resources: they carry no `kiln-run-id`, `kiln cleanup` leaves them, and `kiln cache
prune` deletes them (with the snapshots they are made of)."""

from __future__ import annotations

from typing import Any

from kiln.alicloud import reaper
from kiln.alicloud.client import AlicloudClient, items
from kiln.core.cancel import CancelToken

CACHE_TAG = "kiln-cache-key"
NAME_PREFIX = "kiln-cache-"


def tags_of(image: dict[str, Any]) -> dict[str, str]:
    return {
        str(t.get("TagKey", t.get("Key"))): str(t.get("TagValue", t.get("Value", "")))
        for t in items(image, "Tags", "Tag")
    }


def find(client: AlicloudClient, key: str = "", cancel: CancelToken | None = None) -> list[dict[str, Any]]:
    """This account's Available images tagged with the cache key `key` (any key when empty)."""
    tag = {"Key": CACHE_TAG, "Value": key} if key else {"Key": CACHE_TAG}
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        params = {"ImageOwnerAlias": "self", "Tag": [tag], "PageSize": 50, "PageNumber": page}
        body = client.call("DescribeImages", params, cancel=cancel)
        listed = items(body, "Images", "Image")
        found += [i for i in listed if not key or tags_of(i).get(CACHE_TAG) == key]
        if not listed or page * 50 >= int(body.get("TotalCount") or 0):
            return found
        page += 1


def layer_name(key: str, run_id: str) -> str:
    return f"{NAME_PREFIX}{key[:16]}-{run_id}"


def delete(client: AlicloudClient, image_id: str) -> None:
    """Delete a cache image and the snapshots it is made of."""
    reaper.delete_image(client, image_id, snapshots=True)
