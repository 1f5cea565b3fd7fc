"""The `null` builder: creates nothing. It connects to an existing machine (or to none, with
`communicator: none`) and runs the provisioners there. Useful to provision a machine that already
exists, and to test templates."""

from __future__ import annotations

from dataclasses import dataclass

from kiln.communicators.config import SSHConfig, validate_ssh_config
from kiln.components import Artifact, BuildContext, Builder
from kiln.config import DecodeContext

BUILDER_ID = "fnoeding.null"


@dataclass
class NullConfig(SSHConfig):
    """Only the communicator options: the machine already exists, so ssh_host is required."""


class NullBuilder(Builder):
    Config = NullConfig
    generated_keys = ("ID",)

    def validate(self, dctx: DecodeContext, path: str) -> None:
        validate_ssh_config(self.config, dctx, path, needs_host=True)

    def run(self, ctx: BuildContext) -> Artifact | None:
        from kiln.communicators.connect import connect  # asyncssh only when a build connects

        ctx.generated["ID"] = "Null"
        comm = connect(self.config, ctx)
        try:
            ctx.provision(comm)
        finally:
            comm.close()
        return Artifact(BUILDER_ID, id="Null", string="Did not export anything. This is the null builder")
