"""The images an alicloud-ecs build made: `region:imageId[,region:imageId]`."""

from __future__ import annotations

from kiln.alicloud import reaper
from kiln.alicloud.client import AlicloudClient
from kiln.components import Artifact

BUILDER_ID = "alibaba.alicloud"


def images_artifact(images: dict[str, str], client: AlicloudClient, builder_id: str = BUILDER_ID) -> Artifact:
    regions = sorted(images)
    string = "Alicloud images were created:\n\n" + "\n".join(f"{r}: {images[r]}" for r in regions)

    def destroy() -> None:
        # Packer's Destroy: delete every image of the artifact and the snapshots it was made of.
        for region in regions:
            reaper.delete_image(client.for_region(region), images[region])

    return Artifact(
        builder_id,
        id=",".join(f"{r}:{images[r]}" for r in regions),
        string=string,
        state={"atlas.artifact.metadata": {r: images[r] for r in regions}, "images": dict(images)},
        destroy=destroy,
    )
