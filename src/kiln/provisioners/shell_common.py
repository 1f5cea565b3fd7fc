"""What the shell provisioners share: `shell` (runs on the machine) and `shell-local` (runs here).

Both take Packer's common shell options (`inline`, `script`, `scripts`, `environment_vars`, `env`,
`env_var_format`, `valid_exit_codes`, `inline_shebang`) and both hand the script its environment the
way Packer does: as text put in front of the command (`{{.Vars}}` in `execute_command`), built from
`env_var_format` (default `%s='%s' `), with every single quote in a value written as `'"'"'` so that
values holding quotes, spaces, `$` or newlines reach the script unchanged under `sh`.

Variable *names* are checked too (Packer does not): a name such as `A B` or `X;rm -rf /` would be
executed by the shell, so only `[A-Za-z_][A-Za-z0-9_]*` is accepted.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kiln.config import DecodeContext, Options, option
from kiln.core.secrets import REDACTOR
from kiln.errors import BuildError

#: Packer's default `env_var_format` on Unix: `NAME='value' ` (the value's quotes escaped).
DEFAULT_ENV_VAR_FORMAT = "%s='%s' "
#: The format the remote `shell` provisioner uses with `use_env_var_file`.
ENV_FILE_VAR_FORMAT = "export %s='%s'\n"
DEFAULT_INLINE_SHEBANG = "/bin/sh -e"

#: Held while kiln has a script file open for writing and while it starts a local process. A
#: process forked while such a file is open inherits it until it execs, and running the script in
#: that moment fails with "Text file busy" (ETXTBSY): parallel builds hit this. Code that starts
#: local processes (subprocess.Popen) should hold it around the call.
SPAWN_LOCK = threading.Lock()

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_GO_VERB = re.compile(r"%[%sqv]")


@dataclass
class ShellCommonConfig(Options):
    """Options both shell provisioners accept. Subclass it (as a dataclass) to add your own."""

    # RUF009: option() returns a dataclass field, not a shared mutable default.

    inline: list[str] | None = option(doc="commands, run as one script")  # noqa: RUF009
    script: str = option("", cache="file", doc="a local script file to run")
    scripts: list[str] = option(default_factory=list, cache="file", doc="local script files, run in order")  # noqa: RUF009
    environment_vars: list[str] = option(default_factory=list, doc='"KEY=value" strings')  # noqa: RUF009
    env: dict[str, str] = option(default_factory=dict, doc="KEY: value (wins over environment_vars)")  # noqa: RUF009
    env_var_format: str = option("", doc="how each variable is written in {{.Vars}}: two %s")
    valid_exit_codes: list[int] = option(default_factory=list, doc="exit codes that mean success ([0])")  # noqa: RUF009
    inline_shebang: str = option("", doc="shebang of the script made from `inline`")


class InvalidExitCode(BuildError):
    """A script ended with an exit code that is not in `valid_exit_codes`."""

    def __init__(self, code: int, allowed: Sequence[int]) -> None:
        super().__init__(
            f"Script exited with non-zero exit status: {code}. Allowed exit codes are: {go_int_list(allowed)}",
            hint="fix the script, or add the code to valid_exit_codes if it means success",
        )
        self.code = code
        self.allowed = list(allowed)


def build_name(ctx: object) -> str:
    """The build's name as components report it (Packer's PackerBuildName: PACKER_BUILD_NAME, the
    manifest's `name`, `{{.BuildName}}`): the source's name in HCL2 (`test` for `null.test`), the
    builder's name in JSON. Taken from `ctx.build_name` when the engine sets it, else `ctx.name`."""
    value = getattr(ctx, "build_name", None)
    return value if isinstance(value, str) and value else str(getattr(ctx, "name", ""))


def go_int_list(values: Iterable[int]) -> str:
    """A list of ints the way Go's `%v` prints it: `[0 2300218]`."""
    return "[" + " ".join(str(v) for v in values) + "]"


def validate_env_vars(
    environment_vars: Sequence[str], env: Mapping[str, str], dctx: DecodeContext, path: str
) -> None:
    """Report malformed `environment_vars` entries (Packer's message) and unsafe variable names."""
    for index, item in enumerate(environment_vars):
        key, sep, _ = item.partition("=")
        if "\0" in item:
            dctx.error(
                f"{path}.environment_vars[{index}]",
                "contains a NUL character, which no environment variable can hold",
            )
        elif not sep or not key:
            dctx.error(
                f"{path}.environment_vars[{index}]", f"Environment variable not in format 'key=value': {item}"
            )
        elif not _NAME.match(key):
            dctx.error(
                f"{path}.environment_vars[{index}]",
                f"invalid environment variable name {key!r} (use letters, digits and _; not starting with a digit)",
            )
    for key, value in env.items():
        if not _NAME.match(key):
            dctx.error(
                f"{path}.env",
                f"invalid environment variable name {key!r} (use letters, digits and _; not starting with a digit)",
            )
        elif "\0" in value:
            dctx.error(
                f"{path}.env.{key}", "contains a NUL character, which no environment variable can hold"
            )


def validate_env_var_format(fmt: str, dctx: DecodeContext, path: str) -> None:
    """`env_var_format` must take exactly two values (name, then value)."""
    if fmt and len([m for m in _GO_VERB.findall(fmt) if m != "%%"]) != 2:
        dctx.error(f"{path}.env_var_format", f"must contain two %s (name, then value), got {fmt!r}")


def build_env(
    environment_vars: Sequence[str],
    env: Mapping[str, str],
    build_name: str,
    builder_type: str,
    generated: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables a script gets, unescaped, sorted by name: PACKER_BUILD_NAME,
    PACKER_BUILDER_TYPE, PACKER_HTTP_* (when the builder serves HTTP), then `environment_vars`,
    then `env` (which wins on duplicates)."""
    values: dict[str, str] = {"PACKER_BUILD_NAME": build_name, "PACKER_BUILDER_TYPE": builder_type}
    generated = generated or {}
    for key, name in (("PackerHTTPAddr", "PACKER_HTTP_ADDR"), ("PackerHTTPIP", "PACKER_HTTP_IP"),
                      ("PackerHTTPPort", "PACKER_HTTP_PORT")):  # fmt: skip
        value = generated.get(key)
        if value and not str(value).startswith("ERR_HTTP_"):  # Packer's "not implemented" markers
            values[name] = str(value)
    for item in environment_vars:
        key, _, value = item.partition("=")
        values[key] = value
    values.update(env)
    return dict(sorted(values.items()))


def quote_value(value: str) -> str:
    """Escape a value for use inside single quotes in sh: `it's` -> `it'"'"'s`."""
    return value.replace("'", "'\"'\"'")


def go_sprintf(fmt: str, *args: str) -> str:
    """Format `fmt` as Go's fmt.Sprintf does for the verbs env_var_format uses (%s %v %q %%)."""
    values = iter(args)

    def substitute(match: re.Match[str]) -> str:
        verb = match.group(0)
        if verb == "%%":
            return "%"
        value = next(values, None)
        if value is None:
            return f"%!{verb[1]}(MISSING)"
        if verb == "%q":
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return value

    return _GO_VERB.sub(substitute, fmt)


def flatten_env(env: Mapping[str, str], env_var_format: str = "") -> str:
    """`{{.Vars}}`: each variable written with `env_var_format` (default `%s='%s' `), values
    quote-escaped, in the order of `env` (use `build_env`, which sorts). The escaped form of a value
    holding a secret is registered as a secret too."""
    fmt = env_var_format or DEFAULT_ENV_VAR_FORMAT
    parts = []
    for key, value in env.items():
        quoted = quote_value(value)
        if quoted != value and REDACTOR.redact(value) != value:
            # The escaped text no longer contains the secret as registered: register it too, or a
            # logged command line would show it.
            REDACTOR.add(quoted)
        parts.append(go_sprintf(fmt, key, quoted))
    return "".join(parts)


def inline_script_text(inline: Sequence[str], shebang: str) -> str:
    """The script made from `inline`: `#!shebang` (if any), then one command per line."""
    head = f"#!{shebang}\n" if shebang else ""
    return head + "".join(command + "\n" for command in inline)


def write_inline_script(inline: Sequence[str], shebang: str, folder: Path, suffix: str = "") -> Path:
    """Write the `inline` script to a new private file (mode 0700) in `folder` (the run's own:
    `ctx.scratch_dir()`, which a killed run's sweep removes; never TMPDIR) and return its path.
    The caller removes it."""
    text = inline_script_text(inline, shebang)
    with SPAWN_LOCK:
        import tempfile  # at run time only: validating a template stays fast

        fd, name = tempfile.mkstemp(prefix="script-", suffix=f".{suffix}" if suffix else "", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(name, 0o700)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
    return Path(name)


def collect_scripts(script: str | None, scripts: Sequence[str] | None) -> list[str]:
    """`script` and `scripts` as one list (`script` first)."""
    return ([script] if script else []) + list(scripts or [])


def validate_scripts_exist(
    scripts: Sequence[str], dctx: DecodeContext, path: str, base: Path | None = None
) -> None:
    """Report each script file that cannot be read, with Packer's "Bad script" message."""
    for item in scripts:
        target = Path(item)
        if base is not None and not target.is_absolute():
            target = base / target
        try:
            if not target.is_file():
                reason = (
                    "is a directory"
                    if target.is_dir()
                    else "not a regular file"  # a FIFO or a device: reading it would block or never end
                    if target.exists()
                    else "no such file or directory"
                )
                dctx.error(path, f"Bad script '{item}': {reason}")
            elif not os.access(target, os.R_OK):
                dctx.error(path, f"Bad script '{item}': permission denied")
        except OSError as exc:
            dctx.error(path, f"Bad script '{item}': {exc.strerror or exc}")


def check_exit_code(code: int, valid_exit_codes: Sequence[int] | None) -> None:
    """Raise InvalidExitCode (Packer's message) unless `code` is allowed (default: only 0)."""
    allowed = list(valid_exit_codes) if valid_exit_codes else [0]
    if code not in allowed:
        raise InvalidExitCode(code, allowed)
