"""The `breakpoint` provisioner: pauses the build until the user presses Enter, so that they can
look at the machine as it is at that point. `disable: true` turns it into a no-op that says so.
Without a terminal to read from (machine-readable output, stdin closed) it does not pause."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from kiln.communicators.base import Communicator
from kiln.components import BuildContext, Provisioner
from kiln.config import Options, option
from kiln.errors import CancelledError


@dataclass
class BreakpointConfig(Options):
    note: str = option("", doc="shown when the build pauses")
    disable: bool = option(False, doc="skip this breakpoint")


class BreakpointProvisioner(Provisioner):
    Config = BreakpointConfig
    needs_communicator = False

    def provision(self, ctx: BuildContext, comm: Communicator) -> None:
        note = self.config.note
        if self.config.disable:
            if note:
                ctx.ui.say(f'Breakpoint provisioner with note "{note}" disabled; continuing...')
            else:
                ctx.ui.say("Breakpoint provisioner disabled; continuing...")
            return
        if note:
            ctx.ui.say(f'Pausing at breakpoint provisioner with note "{note}".')
        else:
            ctx.ui.say("Pausing at breakpoint provisioner.")
        answered = threading.Event()

        def ask() -> None:
            try:
                ctx.ui.ask("Press enter to continue.")
            except EOFError:
                ctx.log.info("breakpoint: no input available; continuing")
            finally:
                answered.set()

        # A daemon thread, so that a cancelled run does not wait for a line nobody will type.
        threading.Thread(target=ask, name="breakpoint-ask", daemon=True).start()
        while not answered.wait(0.1):
            if ctx.cancel.cancelled:
                raise CancelledError()
