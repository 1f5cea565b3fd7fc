"""The `shell` provisioner: upload a script to the machine and run it there, as Packer does.

Each script (or the one made from `inline`) is uploaded to remote_path, made executable and run with
execute_command (`chmod +x {{.Path}}; {{.Vars}} {{.Path}}`). Output streams live, line by line:
stdout as messages, stderr as errors (Packer's RunWithUi). Uploading and starting are retried until
start_retry_timeout while the machine cannot be reached (it may be rebooting); a connection that
drops while the script runs fails with "Script disconnected unexpectedly" unless expect_disconnect
(or 2300218 in valid_exit_codes). The communicator reconnects by itself on its next use, so the
provisioner after a rebooting script simply works.
"""

from __future__ import annotations

import functools
import io
import random
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from kiln.communicators.base import Communicator, Disconnected, RemoteCommand, Unreachable
from kiln.components import BuildContext, Provisioner
from kiln.config import DecodeContext, Duration, option
from kiln.errors import BuildError, CommunicatorError
from kiln.provisioners.shell_common import (
    DEFAULT_ENV_VAR_FORMAT,
    DEFAULT_INLINE_SHEBANG,
    ENV_FILE_VAR_FORMAT,
    ShellCommonConfig,
    build_env,
    check_exit_code,
    collect_scripts,
    flatten_env,
    validate_env_var_format,
    validate_env_vars,
    validate_scripts_exist,
    write_inline_script,
)

T = TypeVar("T")
#: Packer's exit status for "the connection dropped" (`packersdk.CmdDisconnect`).
CMD_DISCONNECT = 2300218
DEFAULT_EXECUTE_COMMAND = "chmod +x {{.Path}}; {{.Vars}} {{.Path}}"
ENV_FILE_EXECUTE_COMMAND = "chmod +x {{.Path}}; . {{.EnvVarFile}} && {{.Path}}"
_5M, _ZERO = Duration(300), Duration(0)


@dataclass
class ShellConfig(ShellCommonConfig):
    execute_command: str = option("", raw=True, doc="{{.Vars}}, {{.Path}}, {{.EnvVarFile}}")
    use_env_var_file: bool = option(False, doc="write the variables to a file and source it")
    remote_folder: str = option("/tmp", doc="the folder on the machine the script is uploaded to")
    remote_file: str = option("", cache=False, doc="script_NNNN.sh by default")
    remote_path: str = option("", cache=False, doc="remote_folder/remote_file by default")
    skip_clean: bool = option(False, cache=False, doc="leave the uploaded script on the machine")
    start_retry_timeout: Duration = option(  # noqa: RUF009 - an immutable float
        _5M,
        cache=False,
        doc="how long to keep trying to start the script while the machine cannot be reached",
    )
    pause_after: Duration = option(_ZERO, cache=False, doc="wait this long after the scripts ran")  # noqa: RUF009
    expect_disconnect: bool = option(False, doc="a dropped connection (a reboot) is not an error")
    binary: bool = option(False, doc="upload scripts as they are (no CRLF -> LF)")


class ShellProvisioner(Provisioner):
    Config = ShellConfig

    def validate(self, dctx: DecodeContext, path: str) -> None:
        cfg: ShellConfig = self.config
        scripts = collect_scripts(cfg.script, cfg.scripts)
        if cfg.inline is not None and not cfg.inline:
            cfg.inline = None
        if cfg.script and cfg.scripts:
            dctx.error(path, "Only one of script or scripts can be specified.")
        if not scripts and cfg.inline is None:
            dctx.error(path, "Either a script file or inline script must be specified.")
        elif scripts and cfg.inline is not None:
            dctx.error(path, "Only a script file or an inline script can be specified, not both.")
        validate_scripts_exist(scripts, dctx, path)
        validate_env_vars(cfg.environment_vars, cfg.env, dctx, path)
        validate_env_var_format(cfg.env_var_format, dctx, path)
        if cfg.start_retry_timeout <= 0:
            cfg.start_retry_timeout = _5M
        if not cfg.remote_path:
            remote_file = cfg.remote_file or f"script_{random.randrange(9999)}.sh"
            cfg.remote_path = f"{cfg.remote_folder.rstrip('/') or ''}/{remote_file}"

    def provision(self, ctx: BuildContext, comm: Communicator) -> None:
        cfg: ShellConfig = self.config
        inline_file: Path | None = None
        scripts = [(name, _local(ctx, name)) for name in collect_scripts(cfg.script, cfg.scripts)]
        if cfg.inline is not None:
            inline_file = write_inline_script(
                cfg.inline, cfg.inline_shebang or DEFAULT_INLINE_SHEBANG, ctx.scratch_dir()
            )
            scripts = [(str(inline_file), inline_file)]
        try:
            self._provision(ctx, comm, scripts)
        finally:
            if inline_file is not None:
                inline_file.unlink(missing_ok=True)
        if cfg.pause_after > 0:
            ctx.ui.say(f"Pausing {cfg.pause_after} after this provisioner...")
            ctx.cancel.sleep(float(cfg.pause_after))

    def _provision(self, ctx: BuildContext, comm: Communicator, scripts: list[tuple[str, Path]]) -> None:
        cfg: ShellConfig = self.config
        env = build_env(cfg.environment_vars, cfg.env, ctx.name, ctx.builder_type, ctx.generated)
        fmt = cfg.env_var_format or (ENV_FILE_VAR_FORMAT if cfg.use_env_var_file else DEFAULT_ENV_VAR_FORMAT)
        flattened = flatten_env(env, fmt)
        env_file = ""
        if cfg.use_env_var_file:
            env_file = f"{cfg.remote_folder.rstrip('/')}/varfile_{random.randrange(9999)}.sh"

            def upload_env() -> None:
                comm.upload(env_file, io.BytesIO(flattened.encode()))
                _run_quiet(comm, f"chmod 0600 {env_file}", ctx)

            self._retry(ctx, upload_env, "uploading the environment variable file")
        execute = cfg.execute_command or (
            ENV_FILE_EXECUTE_COMMAND if cfg.use_env_var_file else DEFAULT_EXECUTE_COMMAND
        )
        command = ctx.render(execute, {"Vars": flattened, "Path": cfg.remote_path, "EnvVarFile": env_file})
        try:
            self._run_scripts(ctx, comm, scripts, command)
        except Exception:
            # A failed script must not stay behind on the machine either (Packer leaves it there).
            if not cfg.skip_clean and not ctx.cancel.cancelled:
                _remove_quietly(comm, [cfg.remote_path, env_file], ctx)
            raise
        # After the last script only: Packer removes it after the first, so a second script cannot
        # source it any more.
        if env_file and not cfg.skip_clean:
            self._cleanup(ctx, comm, env_file)

    def _run_scripts(
        self, ctx: BuildContext, comm: Communicator, scripts: list[tuple[str, Path]], command: str
    ) -> None:
        cfg: ShellConfig = self.config
        for shown, local in scripts:
            ctx.ui.say(f"Provisioning with shell script: {shown}")
            try:
                content = local.read_bytes()
            except OSError as exc:
                raise BuildError(f"Error opening shell script {shown}: {exc.strerror}") from None
            if not cfg.binary:
                content = content.replace(b"\r\n", b"\n")
            run = functools.partial(self._upload_and_run, ctx, comm, content, command)
            status = self._retry(ctx, run, "running the script")
            if status == CMD_DISCONNECT and CMD_DISCONNECT not in cfg.valid_exit_codes:
                if not cfg.expect_disconnect:
                    raise BuildError(
                        "Script disconnected unexpectedly. If you expected your script to disconnect, i.e. "
                        'from a restart, you can try adding `"expect_disconnect": true` or '
                        '`"valid_exit_codes": [0, 2300218]` to the shell provisioner parameters.',
                        hint="the connection to the machine dropped while the script ran",
                    )
                ctx.log.info("shell: the script disconnected, as expected")
            else:
                check_exit_code(status, cfg.valid_exit_codes)
            if not cfg.skip_clean:
                self._cleanup(ctx, comm, cfg.remote_path)

    def _upload_and_run(self, ctx: BuildContext, comm: Communicator, content: bytes, command: str) -> int:
        # Upload and run as one retried unit: if a reboot wipes /tmp between the two, both are redone.
        path = self.config.remote_path
        comm.upload(path, io.BytesIO(content))
        _run_quiet(comm, f"chmod 0755 {path}", ctx)
        try:
            return comm.run(
                RemoteCommand(command, on_stdout=ctx.ui.message, on_stderr=ctx.ui.error), ctx.cancel
            )
        except Disconnected as exc:
            ctx.log.info("shell: %s", exc)
            return CMD_DISCONNECT

    def _cleanup(self, ctx: BuildContext, comm: Communicator, path: str) -> None:
        def remove() -> None:
            try:
                status = comm.run(RemoteCommand(f"rm -f {path}"), ctx.cancel)
            except Disconnected as exc:
                raise Unreachable("Disconnect while removing temporary script.") from exc
            if status != 0:
                raise BuildError(f"Error removing temporary script at {path}!")

        self._retry(ctx, remove, f"removing temporary script at {path}")

    def _retry(self, ctx: BuildContext, fn: Callable[[], T], what: str) -> T:
        """Call `fn` again while the machine cannot be reached (a reboot), for start_retry_timeout.
        Other errors (a full disk, a missing folder) fail at once."""
        deadline = time.monotonic() + float(self.config.start_retry_timeout)
        delay = 1.0
        while True:
            try:
                return fn()
            except (Unreachable, Disconnected) as exc:
                if time.monotonic() + delay >= deadline:
                    raise CommunicatorError(
                        f"Error {what}: {exc}",
                        hint="the machine stayed unreachable; raise start_retry_timeout",
                    ) from None
                ctx.log.info("shell: %s: %s; retrying", what, exc)
            ctx.cancel.sleep(delay)
            delay = min(delay * 2, 5.0)


def _run_quiet(comm: Communicator, command: str, ctx: BuildContext) -> None:
    """Run a helper command (chmod); like Packer, its status is only logged: the script's own
    run says what matters."""
    errors: list[str] = []
    status = comm.run(RemoteCommand(command, on_stderr=errors.append), ctx.cancel)
    if status != 0:
        ctx.log.info("shell: %r exited with %d: %s", command, status, " ".join(errors)[:300])


def _local(ctx: BuildContext, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else ctx.work_dir / path


def _remove_quietly(comm: Communicator, paths: list[str], ctx: BuildContext) -> None:
    """Best effort, one short try: the machine may be gone (that is often why the script failed),
    and waiting for it to come back would stall the failed build for ssh_timeout."""
    targets = " ".join(shlex.quote(p) for p in paths if p)
    try:
        comm.run_once(RemoteCommand(f"rm -f {targets}"), cancel=ctx.cancel)
    except Exception as exc:
        ctx.log.info("shell: could not remove %s after the failure: %s", targets, exc)
