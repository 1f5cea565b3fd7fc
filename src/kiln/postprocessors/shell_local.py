"""The `shell-local` post-processor: the shell-local provisioner's options and code, run after the
build. Scripts run from the folder kiln was started in, so the artifact's files (relative paths,
as builders report them) are where the script expects them, and `{{ build `X` }}` holds the
builder's generated data. Like Packer's, it always passes its input artifact on, kept."""

from __future__ import annotations

from kiln.components import Artifact, BuildContext, PostProcessor, PostProcessResult
from kiln.config import DecodeContext
from kiln.provisioners.shell_local import ShellLocalConfig, run_shell_local, validate_shell_local


class ShellLocalPostProcessor(PostProcessor):
    Config = ShellLocalConfig

    def validate(self, dctx: DecodeContext, path: str) -> None:
        validate_shell_local(self.config, dctx, path)

    def post_process(self, ctx: BuildContext, artifact: Artifact) -> PostProcessResult:
        generated = dict(ctx.generated)
        state = artifact.state("generated_data")
        if isinstance(state, dict):
            generated.update({str(k): str(v) for k, v in state.items()})
        run_shell_local(ctx, self.config, generated)
        # Deleting the input here would lose it for the rest of the chain (Packer forces keep too).
        return PostProcessResult(artifact, keep=True, force_override=True)
