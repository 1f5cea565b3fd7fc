"""The `sleep` provisioner: waits `duration` ("30s", "2m"), waking up at once when the run is
cancelled or the provisioner's `timeout` ends it. It prints nothing, like Packer's."""

from __future__ import annotations

from dataclasses import dataclass

from kiln.communicators.base import Communicator
from kiln.components import BuildContext, Provisioner
from kiln.config import DecodeContext, Duration, Options, option


@dataclass
class SleepConfig(Options):
    duration: Duration = option(  # noqa: RUF009 - option() returns a dataclass field
        Duration(0), doc='how long to wait: "30s", "5m", "1h30m"'
    )


class SleepProvisioner(Provisioner):
    Config = SleepConfig
    needs_communicator = False

    def validate(self, dctx: DecodeContext, path: str) -> None:
        if self.config.duration < 0:
            dctx.error(f"{path}.duration", f"must not be negative, got {self.config.duration}")

    def provision(self, ctx: BuildContext, comm: Communicator) -> None:
        ctx.log.info("sleep: waiting %s", self.config.duration)
        ctx.cancel.sleep(float(self.config.duration))
