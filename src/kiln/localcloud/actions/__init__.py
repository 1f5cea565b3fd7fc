"""The API's actions, one module per family of resources; importing this package registers them all.

Each action is one declaration and one handler: `@action(Name, *products)` over an
`async def handler(cloud, call) -> dict` that parses the call (`api.request`), raises errors from
the catalogue (`kiln.localcloud.errors`), changes the model (`model.cloud`, `model.lifecycle`) and
answers a view (`api.views`). Describe actions declare a `Describe` (`api.describe`) instead of a
handler.
"""

from __future__ import annotations

from kiln.localcloud.actions import (
    admin,
    disks,
    eips,
    image_import,
    images,
    instance_types,
    instances,
    keypairs,
    ram,
    regions,
    security_groups,
    snapshots,
    tags,
    vpcs,
)

__all__ = [
    "admin",
    "disks",
    "eips",
    "image_import",
    "images",
    "instance_types",
    "instances",
    "keypairs",
    "ram",
    "regions",
    "security_groups",
    "snapshots",
    "tags",
    "vpcs",
]
