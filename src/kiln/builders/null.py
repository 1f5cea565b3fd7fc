"""The `null` builder: creates nothing. It connects to an existing machine (or to none, with
`communicator: none`) and runs the provisioners there. Useful to provision a machine that already
exists, and to test templates."""

from __future__ import annotations

from dataclasses import dataclass

from kiln.communicators.base import NoneCommunicator
from kiln.components import Artifact, BuildContext, Builder
from kiln.config import DecodeContext, option

BUILDER_ID = "fnoeding.null"


@dataclass
class NullConfig:
    communicator: str = option("ssh", doc="ssh or none")


class NullBuilder(Builder):
    type_name = "null"
    Config = NullConfig

    def validate(self, dctx: DecodeContext, path: str) -> None:
        if self.config.communicator not in ("none", "ssh"):
            dctx.error(
                f"{path}.communicator",
                f'unknown communicator "{self.config.communicator}" (use "ssh" or "none")',
            )

    def run(self, ctx: BuildContext) -> Artifact | None:
        ctx.generated["ID"] = "Null"
        ctx.provision(NoneCommunicator())
        return Artifact(BUILDER_ID, id="Null", string="Did not export anything. This is the null builder")
