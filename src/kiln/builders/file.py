"""The `file` builder: writes a file from `content`, or copies `source` to `target`. It makes an
artifact without a machine, which is what template and post-processor tests need."""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from kiln import paths
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
        if self.config.target:
            self._check_target(dctx, f"{path}.target")

    def _check_target(self, dctx: DecodeContext, path: str) -> None:
        """A target that exists must be a regular file: writing to a folder fails, and to a FIFO
        blocks until something reads it."""
        from kiln.template.source import special_kind

        try:
            mode = os.stat(self.config.target).st_mode
        except OSError:
            return  # not there yet: the build makes it (and says why if it cannot)
        if not stat.S_ISREG(mode):
            dctx.error(
                path,
                f'"{self.config.target}" is {special_kind(mode)}; target names the file the builder '
                "writes (e.g. out/artifact.txt)",
            )

    def run(self, ctx: BuildContext) -> Artifact | None:
        target = Path(self.config.target)
        if not target.is_absolute():
            target = ctx.work_dir / target
        source = Path(self.config.source) if self.config.source else None
        if source is not None and not source.is_absolute():
            source = ctx.work_dir / source
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            reader = source.open("rb") if source is not None else None
        except OSError as exc:
            raise BuildError(f"file builder: {exc.strerror or exc}: {exc.filename or target}") from exc
        if reader is not None:
            ctx.ui.say(f"Copying {self.config.source} to {self.config.target}")
        else:
            ctx.ui.say(f"Writing content to {self.config.target}")
        try:
            # Whole or not at all: a full disk leaves no partial artifact under the target's name.
            with paths.atomic_file(target) as handle:
                if reader is not None:
                    shutil.copyfileobj(reader, handle, 1 << 20)
                else:
                    handle.write(self.config.content.encode())
        except OSError as exc:
            what = f"cannot copy {self.config.source} to {target}" if reader else f"cannot write {target}"
            raise BuildError(
                f"file builder: {what}: {exc.strerror or exc}", paths.disk_hint(exc, target)
            ) from exc
        finally:
            if reader is not None:
                reader.close()  # also when the temporary file could not even be made
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
