"""The `file` provisioner: copy files and folders to the machine, or from it, with Packer's rules.

Upload: a folder source without a trailing slash lands *inside* destination (`dir` -> `dst/dir`);
with one (`dir/`), its contents go straight into destination. A file goes to destination, or into
it when destination ends with `/`. `content` is written to destination (`dst/pkr-file-content` when
destination is a folder). A folder goes as one stream (see kiln.communicators.transfer).

Download: a source ending with `/` or holding a glob is a folder (its contents, or the matches, go
into destination); otherwise a file, written to destination or into it when it ends with `/`.
Local parent folders are created.
"""

from __future__ import annotations

import io
import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kiln.communicators.base import Communicator
from kiln.components import BuildContext, Provisioner
from kiln.config import DecodeContext, Options, option
from kiln.errors import BuildError, CommunicatorError

CONTENT_FILE_NAME = "pkr-file-content"
DIRECTIONS = ("upload", "download")


@dataclass
class FileConfig(Options):
    source: str = option("", cache="file", doc="a local file or folder (remote, with direction download)")
    sources: list[str] = option(  # noqa: RUF009
        default_factory=list, cache="file", doc="several sources; destination should end with /"
    )
    content: str = option("", doc="text to write to destination, instead of a source")
    destination: str = option("", doc="where the file goes (on the machine, or here with direction download)")
    direction: str = option(
        "upload",
        choices=DIRECTIONS,
        invalid="Direction must be one of: download, upload.",
        doc="upload to the machine, or download from it",
    )
    generated: bool = option(
        False, doc="the sources are made during the build: check them only when uploading"
    )


class FileProvisioner(Provisioner):
    Config = FileConfig

    def validate(self, dctx: DecodeContext, path: str) -> None:
        cfg: FileConfig = self.config
        direction = cfg.direction
        sources = self.sources
        if direction == "upload" and not cfg.generated:
            for src in sources:
                if not os.path.exists(src):
                    dctx.error(path, f"Bad source '{src}': no such file or directory")
        if sources and cfg.content:
            dctx.error(path, "source(s) conflicts with content.")
        if cfg.content and direction == "download":
            dctx.error(path, "content can only be uploaded (direction must be upload)")
        if not sources and not cfg.content:
            dctx.error(path, "source, sources or content must be specified.")
        if not cfg.destination:
            dctx.error(path, "Destination must be specified.")

    @property
    def sources(self) -> list[str]:
        cfg: FileConfig = self.config
        return list(cfg.sources) + ([cfg.source] if cfg.source else [])

    def provision(self, ctx: BuildContext, comm: Communicator) -> None:
        if (self.config.direction or "upload") == "download":
            self._download(ctx, comm)
        else:
            self._upload(ctx, comm)

    def _upload(self, ctx: BuildContext, comm: Communicator) -> None:
        cfg: FileConfig = self.config
        dst = cfg.destination
        if cfg.content:
            target = dst + CONTENT_FILE_NAME if dst.endswith("/") else dst
            ctx.ui.say(f"Uploading content => {target}")
            with _reported(ctx, "Upload"):
                comm.upload(target, io.BytesIO(cfg.content.encode()), 0o644, cancel=ctx.cancel)
        for src in self.sources:
            ctx.ui.say(f"Uploading {src} => {dst}")
            local = _local(ctx, src)
            if local.is_dir():
                # No trailing slash: the folder itself is copied, into destination.
                target = dst if src.endswith("/") else posixpath.join(dst, local.name)
                with _reported(ctx, "Upload"):
                    comm.upload_dir(target, local, cancel=ctx.cancel)
                continue
            try:
                mode = local.stat().st_mode & 0o7777
                handle = local.open("rb")
            except OSError as exc:
                raise BuildError(
                    f"Bad source '{src}': {exc.strerror}",
                    hint="the file must exist when the provisioner runs",
                ) from None
            target = dst + local.name if dst.endswith("/") else dst
            with handle, _reported(ctx, "Upload"):
                comm.upload(target, handle, mode, cancel=ctx.cancel)

    def _download(self, ctx: BuildContext, comm: Communicator) -> None:
        cfg: FileConfig = self.config
        for src in self.sources:
            dst = cfg.destination
            folder = dst
            if not dst.endswith("/"):
                folder = os.path.dirname(dst)
            elif not src.endswith("/") and not src.endswith("*"):
                dst = posixpath.join(dst, posixpath.basename(src))
            ctx.ui.say(f"Downloading {src} => {dst}")
            local = _local(ctx, dst)
            if folder:
                _local(ctx, folder).mkdir(parents=True, exist_ok=True)
            if src.endswith("/") or any(c in src for c in "*?["):
                with _reported(ctx, "Download"):
                    comm.download_dir(src, local, cancel=ctx.cancel)
                continue
            partial = local.with_name(local.name + ".kiln-partial")
            try:
                with partial.open("wb") as out, _reported(ctx, "Download"):
                    comm.download(src, out, cancel=ctx.cancel)
                partial.replace(local)
            finally:
                partial.unlink(missing_ok=True)


@contextmanager
def _reported(ctx: BuildContext, what: str) -> Iterator[None]:
    try:
        yield
    except CommunicatorError as exc:
        ctx.ui.error(f"{what} failed: {exc}")
        raise


def _local(ctx: BuildContext, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else ctx.work_dir / path
