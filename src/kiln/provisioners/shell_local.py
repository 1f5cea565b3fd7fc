"""The `shell-local` provisioner: runs commands or scripts on the machine running kiln.

The post-processor of the same name (kiln.postprocessors.shell_local) uses the same options and
the same code: `ShellLocalConfig`, `validate_shell_local` and `run_shell_local` live here.

Each script runs as `execute_command` (default `["/bin/sh", "-c", "{{.Script}}"]`), in its own
process group, from the folder kiln was started in. Its variables (`environment_vars`, `env`,
PACKER_BUILD_NAME...) are in its environment, which only its user can read; they are on its command
line, which every user of the machine can read (`ps`), only where an execute_command of the
template's own puts `{{.Vars}}` (Packer's default does). Its output is shown line by line as it
comes (stdout as messages, stderr as errors). When the run is cancelled the whole process group gets
SIGTERM, then SIGKILL if it is still there after a grace period.
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from kiln.communicators.base import Communicator
from kiln.components import BuildContext, Provisioner
from kiln.config import DecodeContext, option
from kiln.core.secrets import redact
from kiln.core.ui import visible_line
from kiln.errors import BuildError, CancelledError
from kiln.provisioners import shell_common as sc

DEFAULT_EXECUTE_COMMAND = ["/bin/sh", "-c", "{{.Script}}"]
SUPPORTED_OS = ("darwin", "freebsd", "linux", "openbsd", "solaris", "windows")
#: Seconds between SIGTERM and SIGKILL when a run is cancelled.
KILL_GRACE = 3.0
#: Seconds to keep reading output after the script exited (a background child may hold the pipe).
DRAIN_TIMEOUT = 5.0

_TOO_MANY = (
    "You may only specify one of the following options: Command, Inline, Script or Scripts. "
    "Please consolidate these options in your config."
)


@dataclass
class ShellLocalConfig(sc.ShellCommonConfig):
    # RUF009: option() returns a dataclass field, not a shared mutable default.
    command: str = option("", doc="deprecated: one command (use inline)")
    execute_command: list[str] = option(  # noqa: RUF009
        default_factory=list,
        raw=True,
        doc="argv; {{.Script}}, {{.Vars}} (the variables as text; they are in the environment too)",
    )
    only_on: list[str] = option(  # noqa: RUF009
        default_factory=list,
        choices=SUPPORTED_OS,
        invalid="Invalid OS specified in only_on: '{value}' (supported: {choices})",
        doc="run only on these OSes (Go's names for them)",
    )
    tempfile_extension: str = option("", doc="extension of the script made from `inline`")
    use_linux_pathing: bool = option(False, doc="Windows Subsystem for Linux only; ignored here")


def validate_shell_local(config: ShellLocalConfig, dctx: DecodeContext, path: str) -> None:
    """Packer's checks for shell-local, reported all at once; fills in the defaults."""
    if not config.inline_shebang:
        config.inline_shebang = sc.DEFAULT_INLINE_SHEBANG
    if not config.execute_command:
        config.execute_command = list(DEFAULT_EXECUTE_COMMAND)
    elif len(config.execute_command) == 1:
        # Packer's post-processor once took a string run by `sh -c`; keep such templates working.
        config.execute_command = ["sh", "-c", *config.execute_command]
    given = config.command or config.inline or config.scripts or config.script
    failed = tuple(f"{path}.{key}{end}" for key in ("command", "inline", "script", "scripts") for end in ":[")
    decoded = not any(e.startswith(failed) for e in dctx.errors)
    if not given and decoded:  # a value that failed to decode was given: it is reported already
        dctx.error(path, "Command, Inline, Script and Scripts options cannot all be empty.")
    if config.command:
        if config.inline or config.scripts or config.script:
            dctx.error(path, _TOO_MANY)
        else:
            config.inline = [config.command]
    if config.script:
        if config.scripts or config.inline:
            dctx.error(path, _TOO_MANY)
        else:
            config.scripts = [config.script]
    elif config.scripts and config.inline is not None:
        dctx.error(path, _TOO_MANY)
    sc.validate_scripts_exist(config.scripts, dctx, f"{path}.scripts")
    sc.validate_env_vars(config.environment_vars, config.env, dctx, path)
    sc.validate_env_var_format(config.env_var_format, dctx, path)
    config.tempfile_extension = config.tempfile_extension.removeprefix(".")


def current_os() -> str:
    """This machine's OS under Go's name for it (GOOS), as `only_on` uses."""
    name = platform.system().lower()
    return "solaris" if name == "sunos" else name


def run_shell_local(ctx: BuildContext, config: ShellLocalConfig, generated: Mapping[str, str]) -> None:
    """Run each script (or the `inline` one) with `execute_command`; raise on failure."""
    if config.only_on and current_os() not in config.only_on:
        ctx.ui.say("Skipping shell-local due to runtime OS")
        ctx.log.info("shell-local: skipping, %s is not in only_on", current_os())
        return
    temporary: Path | None = None
    scripts: list[str] = list(config.scripts)
    if not scripts and config.inline is not None:
        temporary = sc.write_inline_script(
            config.inline, config.inline_shebang, ctx.scratch_dir(), config.tempfile_extension
        )
        scripts = [str(temporary)]
    try:
        env = sc.build_env(
            config.environment_vars, config.env, sc.build_name(ctx), ctx.builder_type, generated
        )
        flat = sc.flatten_env(env, config.env_var_format)
        for script in scripts:
            ctx.cancel.check()
            target = Path(script)
            absolute = str(target if target.is_absolute() else (ctx.work_dir / target).absolute())
            data = {"Vars": flat, "Script": absolute, "Command": absolute}
            try:
                argv = [ctx.render(part, data) for part in config.execute_command]
            except Exception as exc:  # the template engine's errors name the problem
                raise BuildError(
                    f"Error processing command: {exc}",
                    hint="execute_command may use {{.Vars}} and {{.Script}}",
                ) from exc
            ctx.ui.say(f"Running local shell script: {script}")
            ctx.log.info("shell-local: starting local command: %s", redact(" ".join(argv)))
            try:
                code = run_local_command(argv, ctx, cwd=ctx.work_dir, env=_child_env(ctx, env))
            except OSError as exc:
                raise BuildError(
                    f"Error executing script: {absolute}: {exc.strerror or exc}: {argv[0]}",
                    hint="check execute_command: its first element must be a program on this machine",
                ) from exc
            try:
                sc.check_exit_code(code, config.valid_exit_codes)
            except sc.InvalidExitCode as exc:
                if code == 126 and not os.access(absolute, os.X_OK):
                    exc.hint = f"{script} is not executable: chmod +x it, or run it with an interpreter in execute_command"
                raise
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)


def _child_env(ctx: BuildContext, variables: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    # Packer's own process carries the run's UUID, and local scripts inherit it.
    env.setdefault("PACKER_RUN_UUID", ctx.run_uuid)
    env.update(variables)
    return env


def run_local_command(
    argv: Sequence[str],
    ctx: BuildContext,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run `argv` here, streaming stdout lines to ctx.ui.message and stderr lines to ctx.ui.error
    as they arrive. Returns the exit code (-1 if killed by a signal, as Go reports it). Raises
    CancelledError, after the process group is gone, if the run is cancelled."""
    ctx.cancel.check()
    with sc.SPAWN_LOCK:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,  # its own process group: cancelling kills the script's children too
        )
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout, ctx.ui.message), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, ctx.ui.error), daemon=True),
    ]
    for reader in readers:
        reader.start()
    killer: list[threading.Thread] = []

    def cancel() -> None:
        thread = threading.Thread(target=_terminate_group, args=(proc,), daemon=True)
        killer.append(thread)
        thread.start()

    unregister = ctx.cancel.on_cancel(cancel)
    try:
        code = proc.wait()
    finally:
        unregister()
    for reader in readers:
        reader.join(DRAIN_TIMEOUT)
        if reader.is_alive():
            ctx.log.warning(
                "shell-local: a background process still holds the output open; not waiting for it"
            )
    for thread in killer:
        thread.join()
    if ctx.cancel.cancelled:
        raise CancelledError()
    return code if code >= 0 else -1


def _pump(stream: IO[bytes], emit: Callable[[str], None]) -> None:
    try:
        for raw in iter(stream.readline, b""):
            emit(visible_line(raw))
    except (OSError, ValueError):
        pass
    finally:
        try:
            stream.close()
        except OSError:
            pass


def _terminate_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it after KILL_GRACE seconds (also any child left over)."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(KILL_GRACE)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc.pid, signal.SIGKILL)
    try:
        proc.wait(KILL_GRACE)
    except subprocess.TimeoutExpired:
        pass


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class ShellLocalProvisioner(Provisioner):
    Config = ShellLocalConfig
    needs_communicator = False

    def validate(self, dctx: DecodeContext, path: str) -> None:
        validate_shell_local(self.config, dctx, path)

    def provision(self, ctx: BuildContext, comm: Communicator) -> None:
        run_shell_local(ctx, self.config, ctx.generated)
