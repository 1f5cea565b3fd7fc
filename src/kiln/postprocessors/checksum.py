"""The `checksum` post-processor: writes checksum files for the artifact's files, as Packer does.

For each type in `checksum_types` (md5 by default; sha1, sha224, sha256, sha384, sha512), the line
`HEX<TAB>basename` of every file is appended to `output` (default
`packer_{{.BuildName}}_{{.BuilderType}}_{{.ChecksumType}}.checksum`), which `sha256sum -c` and
friends read. Each file is read once, whatever the number of types. The new artifact holds the input
files and the checksum files this run created; the input is always kept.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from kiln import paths
from kiln.components import Artifact, BuildContext, PostProcessor, PostProcessResult
from kiln.config import DecodeContext, Options, option
from kiln.errors import BuildError
from kiln.provisioners.shell_common import build_name

BUILDER_ID = "packer.post-processor.checksum"
TYPES = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
DEFAULT_OUTPUT = "packer_{{.BuildName}}_{{.BuilderType}}_{{.ChecksumType}}.checksum"
CHUNK = 1 << 20


@dataclass
class ChecksumConfig(Options):
    checksum_types: list[str] = option(  # noqa: RUF009 - option() returns a dataclass field
        default_factory=lambda: ["md5"],
        choices=TYPES,
        invalid="Unrecognized checksum type: {value} (use one of {choices})",
        doc="one checksum file per type",
    )
    output: str = option("", raw=True, doc="{{.BuildName}} {{.BuilderType}} {{.ChecksumType}}")


def file_digests(path: Path, types: list[str], ctx: BuildContext | None = None) -> dict[str, str]:
    """Hex digests of one file for each type, reading it once."""
    hashers = {t: hashlib.new(t) for t in dict.fromkeys(types)}
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            for hasher in hashers.values():
                hasher.update(chunk)
            if ctx is not None:
                ctx.cancel.check()
    return {t: h.hexdigest() for t, h in hashers.items()}


class ChecksumPostProcessor(PostProcessor):
    Config = ChecksumConfig

    def validate(self, dctx: DecodeContext, path: str) -> None:
        if not self.config.checksum_types:
            self.config.checksum_types = ["md5"]
        if not self.config.output:
            self.config.output = DEFAULT_OUTPUT

    def post_process(self, ctx: BuildContext, artifact: Artifact) -> PostProcessResult:
        types: list[str] = self.config.checksum_types
        digests: dict[str, dict[str, str]] = {}
        for name in artifact.files:
            source = _resolve(ctx, name)
            try:
                digests[name] = file_digests(source, types, ctx)
            except OSError as exc:
                raise BuildError(f"unable to open file {name}: {exc.strerror or exc}") from exc
        created: list[str] = []
        for checksum_type in types:
            data = {
                "BuildName": build_name(ctx),
                "BuilderType": ctx.builder_type,
                "ChecksumType": checksum_type,
            }
            shown = ctx.render(self.config.output, data)
            target = _resolve(ctx, shown)
            if not artifact.files:
                continue
            if not target.exists() and shown not in created:
                created.append(shown)
            lines = "".join(f"{digests[n][checksum_type]}\t{os.path.basename(n)}\n" for n in artifact.files)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                # Packer appends to an existing file; the whole file is written anew, so a full
                # disk leaves the old one as it was (or none), never an empty or cut one.
                before = target.read_bytes() if target.exists() else b""
                with paths.atomic_file(target, 0o666) as handle:
                    handle.write(before + lines.encode("utf-8", errors="surrogateescape"))
            except OSError as exc:
                raise BuildError(
                    f"unable to create file {shown}: {exc.strerror or exc}", paths.disk_hint(exc, target)
                ) from exc
            ctx.log.info("checksum: %s of %d file(s) in %s", checksum_type, len(artifact.files), shown)
        files = [*artifact.files, *created]
        result = Artifact(
            BUILDER_ID,
            files=files,
            string="Created artifact from files: " + ", ".join(files),
            destroy=lambda: _remove(ctx, files),
        )
        # Keep the input whatever the template says: these files *are* the input's files.
        return PostProcessResult(result, keep=True, force_override=True)


def _resolve(ctx: BuildContext, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else ctx.work_dir / path


def _remove(ctx: BuildContext, files: list[str]) -> None:
    for name in files:
        path = _resolve(ctx, name)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
