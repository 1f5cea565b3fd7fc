"""The `file` builder: writes a file from `content`, or copies `source` to `target`. It makes an
artifact without a machine, which is what template and post-processor tests need."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from kiln.communicators.base import NoneCommunicator
from kiln.components import Artifact, BuildContext, Builder
from kiln.config import DecodeContext, Options, option
from kiln.errors import BuildError

BUILDER_ID = "packer.file"


@dataclass
class FileConfig(Options):
    target: str = option(required=True, doc="the file to write")
    source: str = option("", doc="a file to copy to target")
    content: str = option("", doc="text to write to target")


class FileBuilder(Builder):
    Config = FileConfig

    def validate(self, dctx: DecodeContext, path: str) -> None:
        if self.config.source and self.config.content:
            dctx.error(path, "only one of source or content may be specified")
        if not self.config.source and not self.config.content and self.config.target:
            # Packer allows an empty content: it writes an empty file.
            pass

    def run(self, ctx: BuildContext) -> Artifact | None:
        target = Path(self.config.target)
        if not target.is_absolute():
            target = ctx.work_dir / target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if self.config.source:
                source = Path(self.config.source)
                ctx.ui.say(f"Copying {source} to {self.config.target}")
                shutil.copyfile(source if source.is_absolute() else ctx.work_dir / source, target)
            else:
                ctx.ui.say(f"Writing content to {self.config.target}")
                target.write_text(self.config.content)
        except OSError as exc:
            raise BuildError(f"file builder: {exc.strerror or exc}: {exc.filename or target}") from exc
        ctx.provision(NoneCommunicator())

        def destroy() -> None:
            if target.exists():
                os.remove(target)

        return Artifact(
            BUILDER_ID,
            id=self.config.target,
            files=[self.config.target],
            string=f"Stored file: {self.config.target}",
            destroy=destroy,
        )
