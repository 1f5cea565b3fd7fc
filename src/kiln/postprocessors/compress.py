"""The `compress` post-processor: packs the artifact's files into one archive.

The format comes from `output`'s extension (or `format`), by Packer's rules: `.tar`, `.zip`, `.gz`,
`.tar.gz`, `.lz4`, `.tar.lz4`, and kiln also knows `.tgz`, `.xz`/`.tar.xz`/`.txz`,
`.bz2`/`.bzip2`/`.tar.bz2`/`.tbz2`, `.zst`/`.tar.zst`/`.tzst`. An extension it does not know gives a
gzipped tarball under the name asked for (Packer's behaviour). Compressing without tar takes exactly
one file. Tar members are named by the file's base name, zip members by the path the artifact gives
(both as Packer does). `compression_level` is 1..9 (6 by default; zstd accepts up to 19).

The input artifact is deleted afterwards unless the template sets `keep_input_artifact: true`.
How each format uses the machine's cores is described in kiln.postprocessors._codecs.
"""

from __future__ import annotations

import os
import re
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kiln.components import Artifact, BuildContext, PostProcessor, PostProcessResult
from kiln.config import DecodeContext, Options, option
from kiln.errors import BuildError, CancelledError
from kiln.postprocessors import _codecs
from kiln.provisioners.shell_common import build_name

BUILDER_ID = "packer.post-processor.compress"
DEFAULT_OUTPUT = "packer_{{.BuildName}}_{{.BuilderType}}"
DEFAULT_LEVEL = 6
CHUNK = 1 << 20

_EXTENSION = re.compile(r"\.([a-z0-9]+)")
_ALGORITHMS = {
    "gz": "gzip",
    "lz4": "lz4",
    "xz": "xz",
    "bz2": "bzip2",
    "bzip2": "bzip2",
    "zst": "zstd",
    "zstd": "zstd",
}
_TAR_SHORT = {"tgz": "gzip", "txz": "xz", "tbz2": "bzip2", "tbz": "bzip2", "tzst": "zstd"}


@dataclass
class CompressConfig(Options):
    output: str = option(DEFAULT_OUTPUT, raw=True, doc="the archive; {{.BuildName}} {{.BuilderType}}")
    format: str = option("", doc="the format, instead of output's extension: tar.gz, zip, xz...")
    compression_level: int = option(DEFAULT_LEVEL, doc="1 (fast) .. 9 (small)")


@dataclass(frozen=True)
class Format:
    archive: str  #: "tar", "zip" or "" (compress the one input file)
    algorithm: str  #: "gzip", "bzip2", "xz", "zstd", "lz4" or "" (none)

    def describe(self) -> str:
        return self.algorithm or "no compression"


def detect_format(output: str, fmt: str = "") -> Format:
    """The archive and compression `output` (plus `.format`, if given) asks for, by Packer's rules."""
    name = f"{output}.{fmt}" if fmt else output
    found = _EXTENSION.findall(os.path.basename(name))
    if not found:
        return Format("tar", "gzip")
    last = found[-1]
    before = found[-2] if len(found) > 1 else ""
    if last in ("zip", "tar"):
        return Format(last, "")
    if last in _TAR_SHORT:
        return Format("tar", _TAR_SHORT[last])
    if last in _ALGORITHMS:
        return Format("tar" if before == "tar" else "", _ALGORITHMS[last])
    return Format("tar", "gzip")


class CompressPostProcessor(PostProcessor):
    Config = CompressConfig

    def validate(self, dctx: DecodeContext, path: str) -> None:
        config: CompressConfig = self.config
        if not config.output:
            config.output = DEFAULT_OUTPUT
        if config.compression_level in (0, -1):
            config.compression_level = DEFAULT_LEVEL
        elif config.compression_level < -1:
            dctx.error(f"{path}.compression_level", f"must be from 1 to 9, got {config.compression_level}")
        written = config.format
        config.format = written.strip().lstrip(".").lower()
        known = {"tar", "zip", *_ALGORITHMS, *_TAR_SHORT}
        if config.format and not set(config.format.split(".")) <= known:
            dctx.error(
                f"{path}.format",
                f'unknown format "{written}" (use tar, zip, gz, tar.gz, xz, tar.xz, bz2, zst, lz4...)',
            )

    def post_process(self, ctx: BuildContext, artifact: Artifact) -> PostProcessResult:
        config: CompressConfig = self.config
        target = ctx.render(config.output, {"BuildName": build_name(ctx), "BuilderType": ctx.builder_type})
        fmt = detect_format(target, config.format)
        level = config.compression_level
        if fmt.algorithm != "zstd":
            level = min(level, 9)
        path = Path(target) if Path(target).is_absolute() else ctx.work_dir / target
        sources = [Path(f) if Path(f).is_absolute() else ctx.work_dir / f for f in artifact.files]
        if not fmt.archive and len(sources) != 1:
            raise BuildError(
                f"Can only have 1 input file when not using tar/zip. Found {len(sources)} files: "
                + "["
                + " ".join(artifact.files)
                + "]",
                hint=f'use an archive format for several files, e.g. "{target}.tar.gz" or ".zip"',
            )
        for source in sources:
            if source.resolve() == path.resolve():
                raise BuildError(
                    f"the archive {target} would overwrite its own input", hint="choose another output"
                )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            out = path.open("wb")
        except OSError as exc:
            raise BuildError(f"Unable to create archive {target}: {exc.strerror or exc}") from exc
        try:
            with out:
                self._write(ctx, fmt, level, out, target, artifact.files, sources)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        ctx.ui.say(f"Archive {target} completed")
        result = Artifact(
            BUILDER_ID,
            files=[target],
            string=f"compressed artifacts in: {target}",
            destroy=lambda: path.unlink(missing_ok=True),
        )
        return PostProcessResult(result, keep=False)

    def _write(
        self,
        ctx: BuildContext,
        fmt: Format,
        level: int,
        out: BinaryIO,
        target: str,
        names: list[str],
        sources: list[Path],
    ) -> None:
        if fmt.archive == "zip":
            ctx.ui.say(f"Zipping {target}")
            _write_zip(ctx, out, level, names, sources)
            return
        sink, used = _codecs.open_sink(fmt.algorithm, out, ctx.cancel, level)
        try:
            if fmt.algorithm:
                ctx.ui.say(f"Using {fmt.algorithm} compression with {used} cores for {target}")
            if fmt.archive == "tar":
                ctx.ui.say(f"Tarring {target} with {fmt.describe()}")
                _write_tar(sink, sources)
            else:
                ctx.ui.say(f"Archiving {names[0]} with {fmt.describe()}")
                _copy(sources[0], sink, names[0])
            sink.close()
        except BaseException:
            sink.abort()
            raise


def _copy(source: Path, sink: _codecs.Sink, shown: str) -> None:
    try:
        handle = source.open("rb")
    except OSError as exc:
        raise BuildError(f"Failed to open source file {shown} for reading: {exc.strerror or exc}") from exc
    with handle:
        while chunk := handle.read(CHUNK):
            sink.write(chunk)


def _write_tar(sink: _codecs.Sink, sources: list[Path]) -> None:
    # dereference: a symlinked disk image is archived as its content, as Packer does.
    with tarfile.open(
        fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT, copybufsize=CHUNK, dereference=True
    ) as tar:  # type: ignore[call-overload]
        for source in sources:
            try:
                tar.add(source, arcname=source.name)
            except (CancelledError, BuildError):
                raise
            except OSError as exc:
                raise BuildError(f"Unable to read file {source}: {exc.strerror or exc}") from exc


def _member_name(name: str) -> str:
    """A zip member name that stays inside the folder it is extracted to (no `/x`, no `../x`)."""
    parts = [p for p in name.replace(os.sep, "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "file"


def _write_zip(ctx: BuildContext, out: BinaryIO, level: int, names: list[str], sources: list[Path]) -> None:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=level, allowZip64=True) as archive:
        for name, source in zip(names, sources, strict=True):
            members = [(source, name)]
            if source.is_dir():
                members = [
                    (p, f"{name.rstrip('/')}/{p.relative_to(source)}")
                    for p in sorted(source.rglob("*"))
                    if p.is_file()
                ]
            for path, arcname in members:
                arcname = _member_name(arcname)
                try:
                    handle = path.open("rb")
                except OSError as exc:
                    raise BuildError(f"Unable to read file {path}: {exc.strerror or exc}") from exc
                info = zipfile.ZipInfo.from_file(path, arcname)
                info.compress_type = zipfile.ZIP_DEFLATED
                info._compresslevel = level  # type: ignore[attr-defined]  # open() ignores the archive's level
                with handle, archive.open(info, "w", force_zip64=True) as member:
                    while chunk := handle.read(CHUNK):
                        ctx.cancel.check()
                        member.write(chunk)
