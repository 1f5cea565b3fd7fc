"""shell-local (provisioner and post-processor) running real scripts through /bin/sh."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kiln.components import Artifact
from kiln.core.secrets import REDACTOR
from kiln.errors import CancelledError
from kiln.postprocessors.shell_local import ShellLocalPostProcessor
from kiln.provisioners.shell_common import InvalidExitCode
from kiln.provisioners.shell_local import ShellLocalProvisioner, current_os

from .conftest import Harness

Prepare = Callable[..., Any]


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting for a reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_inline_output_and_env_vars_with_quotes_and_spaces(harness: Harness, prepare: Prepare) -> None:
    prov = prepare(
        ShellLocalProvisioner,
        {
            "inline": ['printf "%s|%s|%s\\n" "$GREETING" "$QUOTED" "$PACKER_BUILD_NAME"', "echo oops >&2"],
            "environment_vars": ["GREETING=hello  big world", 'QUOTED=it\'s "both" $HOME'],
            "env": {"MAPPED": "x y"},
        },
    )
    prov.provision(harness.ctx, None)
    assert '    example: hello  big world|it\'s "both" $HOME|example\n' in harness.stdout
    assert "==> example: Running local shell script: " in harness.stdout
    assert "==> example: oops\n" in harness.stderr  # stderr lines are errors, as in Packer


def test_scripts_run_in_order_from_the_work_dir(
    harness: Harness, prepare: Prepare, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = harness.ctx.work_dir
    (work / "one.sh").write_text("#!/bin/sh\necho one > order.txt\n")
    (work / "two.sh").write_text(
        '#!/bin/sh\necho two >> order.txt\necho "$PACKER_BUILDER_TYPE" >> order.txt\n'
    )
    (work / "one.sh").chmod(0o755)
    (work / "two.sh").chmod(0o755)
    monkeypatch.chdir(work)  # scripts are checked relative to the folder kiln runs in
    prov = prepare(ShellLocalProvisioner, {"scripts": ["one.sh", "two.sh"]})
    prov.provision(harness.ctx, None)
    assert (work / "order.txt").read_text() == "one\ntwo\nnull\n"
    assert "Running local shell script: one.sh" in harness.stdout


def test_script_that_is_not_executable_gets_a_hint(harness: Harness, prepare: Prepare) -> None:
    script = harness.ctx.work_dir / "plain.sh"
    script.write_text("echo hi\n")
    prov = prepare(ShellLocalProvisioner, {"script": str(script)})
    with pytest.raises(InvalidExitCode) as info:
        prov.provision(harness.ctx, None)
    assert info.value.code == 126 and info.value.hint is not None and "chmod +x" in info.value.hint


def test_exit_code_fails_unless_allowed(harness: Harness, prepare: Prepare) -> None:
    failing = prepare(ShellLocalProvisioner, {"inline": ["exit 2"]})
    with pytest.raises(
        InvalidExitCode, match=r"^Script exited with non-zero exit status: 2\. Allowed exit codes are: \[0\]$"
    ):
        failing.provision(harness.ctx, None)
    allowed = prepare(ShellLocalProvisioner, {"inline": ["exit 2"], "valid_exit_codes": [0, 2]})
    allowed.provision(harness.ctx, None)


def test_custom_execute_command_and_command_option(harness: Harness, prepare: Prepare) -> None:
    prov = prepare(
        ShellLocalProvisioner,
        {
            "command": "echo via-command",
            "execute_command": ["/bin/bash", "-c", "{{.Vars}} bash {{.Script}} && echo bash-ran"],
        },
    )
    prov.provision(harness.ctx, None)
    assert "    example: via-command\n    example: bash-ran\n" in harness.stdout


def test_only_on_skips_other_systems(harness: Harness, prepare: Prepare) -> None:
    other = "darwin" if current_os() != "darwin" else "linux"
    prov = prepare(ShellLocalProvisioner, {"inline": ["touch ran"], "only_on": [other]})
    prov.provision(harness.ctx, None)
    assert "==> example: Skipping shell-local due to runtime OS" in harness.stdout
    assert not (harness.ctx.work_dir / "ran").exists()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "Command, Inline, Script and Scripts options cannot all be empty."),
        ({"inline": ["x"], "command": "y"}, "You may only specify one of the following options"),
        ({"script": "/nonexistent/x.sh"}, "Bad script '/nonexistent/x.sh': no such file or directory"),
        ({"inline": ["x"], "only_on": ["plan9"]}, "Invalid OS specified in only_on: 'plan9'"),
        (
            {"inline": ["x"], "environment_vars": ["NOPE"]},
            "Environment variable not in format 'key=value': NOPE",
        ),
    ],
)
def test_bad_config_is_reported(prepare: Prepare, raw: dict[str, Any], message: str) -> None:
    _, errors = prepare(ShellLocalProvisioner, raw, expect_errors=True)
    assert any(message in e for e in errors), errors


def test_output_is_streamed_live(harness: Harness, prepare: Prepare) -> None:
    gate = harness.ctx.work_dir / "gate"
    prov = prepare(
        ShellLocalProvisioner,
        {"inline": ["echo first", f"while [ ! -e {gate} ]; do sleep 0.05; done", "echo second"]},
    )
    thread = threading.Thread(target=prov.provision, args=(harness.ctx, None))
    thread.start()
    try:
        # The first line shows up while the script is still blocked on the gate.
        wait_for(lambda: "example: first" in harness.stdout)
        assert "second" not in harness.stdout
    finally:
        gate.touch()
        thread.join(10)
    assert "    example: second\n" in harness.stdout


def test_cancel_kills_the_script_and_its_children(harness: Harness, prepare: Prepare) -> None:
    work = harness.ctx.work_dir
    prov = prepare(
        ShellLocalProvisioner, {"inline": ["sleep 300 & echo $! > child.pid", "echo $$ > shell.pid", "wait"]}
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            prov.provision(harness.ctx, None)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    wait_for(lambda: (work / "child.pid").exists() and (work / "shell.pid").exists()
             and bool((work / "child.pid").read_text().strip()) and bool((work / "shell.pid").read_text().strip()))  # fmt: skip
    pids = [int((work / name).read_text()) for name in ("child.pid", "shell.pid")]
    assert all(alive(pid) for pid in pids)
    started = time.monotonic()
    harness.ctx.cancel.cancel()
    thread.join(15)
    assert not thread.is_alive()
    assert time.monotonic() - started < 10
    assert len(errors) == 1 and isinstance(errors[0], CancelledError)
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=5)


def test_inline_temp_script_is_removed(harness: Harness, prepare: Prepare) -> None:
    prov = prepare(ShellLocalProvisioner, {"inline": ['echo "$0" > script-path']})
    prov.provision(harness.ctx, None)
    script = Path((harness.ctx.work_dir / "script-path").read_text().strip())
    assert script.name.startswith("script-") and script.parent == harness.ctx.scratch_dir()
    assert not script.exists()


def test_sensitive_values_never_appear_in_output(harness: Harness, prepare: Prepare) -> None:
    REDACTOR.add("hunter2-secret", "line-one-secret\nline-two-secret")
    prov = prepare(
        ShellLocalProvisioner,
        {
            "inline": ['echo "password is $PASSWORD"', "printf 'line-one-secret\\nline-two-secret\\n' >&2"],
            "environment_vars": ["PASSWORD=hunter2-secret"],
        },
    )
    prov.provision(harness.ctx, None)
    combined = harness.stdout + harness.stderr
    assert "example: password is <sensitive>" in combined
    for secret in ("hunter2-secret", "line-one-secret", "line-two-secret"):
        assert secret not in combined


def command_lines_seen(work: Path) -> str:
    """What the script wrote of the command lines of itself and its parent (every user of the
    machine can read these in /proc)."""
    return " ".join((work / n).read_bytes().replace(b"\0", b" ").decode() for n in ("self", "parent"))


CAPTURE = ["cat /proc/$$/cmdline > self", "cat /proc/$PPID/cmdline > parent", 'printf %s "$TOKEN" > seen']


@pytest.mark.parametrize("kind", [ShellLocalProvisioner, ShellLocalPostProcessor])
def test_variables_reach_the_script_through_its_environment_not_its_command_line(
    harness: Harness, prepare: Prepare, kind: type[Any]
) -> None:
    component = prepare(kind, {"inline": CAPTURE, "environment_vars": ["TOKEN=tok-3141-secret"]})
    if kind is ShellLocalProvisioner:
        component.provision(harness.ctx, None)
    else:
        component.post_process(harness.ctx, Artifact("x", id="a"))
    work = harness.ctx.work_dir
    assert (work / "seen").read_text() == "tok-3141-secret"
    seen = command_lines_seen(work)
    assert "/bin/sh" in seen and "tok-3141-secret" not in seen and "TOKEN" not in seen


def test_an_execute_command_of_the_templates_own_gets_vars_as_text(
    harness: Harness, prepare: Prepare
) -> None:
    prov = prepare(
        ShellLocalProvisioner,
        {
            "inline": CAPTURE,
            "environment_vars": ["TOKEN=abc"],
            "execute_command": ["/bin/sh", "-c", "{{.Vars}} /bin/sh {{.Script}}"],
        },
    )
    prov.provision(harness.ctx, None)
    assert "TOKEN='abc'" in command_lines_seen(harness.ctx.work_dir)
    assert (harness.ctx.work_dir / "seen").read_text() == "abc"


def test_post_processor_keeps_its_input_and_sees_build_data(harness: Harness, prepare: Prepare) -> None:
    work = harness.ctx.work_dir
    (work / "disk.img").write_bytes(b"disk")
    harness.ctx.generated["ID"] = "Null"
    pp = prepare(
        ShellLocalPostProcessor,
        {"inline": ["wc -c < disk.img > size.txt", "echo $PACKER_BUILD_NAME $PACKER_RUN_UUID > who.txt"]},
    )
    artifact = Artifact("test", files=["disk.img"])
    result = pp.post_process(harness.ctx, artifact)
    assert result.artifact is artifact and result.keep and result.force_override
    assert (work / "size.txt").read_text().strip() == "4"
    assert (work / "who.txt").read_text().split() == [
        "example",
        os.environ.get("PACKER_RUN_UUID", harness.ctx.run_uuid),
    ]


def test_post_processor_single_string_execute_command_runs_under_sh(
    harness: Harness, prepare: Prepare
) -> None:
    pp = prepare(
        ShellLocalPostProcessor,
        {"inline": ["echo hi"], "execute_command": "{{.Vars}} sh {{.Script}} > out.txt"},
    )
    assert pp.config.execute_command == ["sh", "-c", "{{.Vars}} sh {{.Script}} > out.txt"]
    pp.post_process(harness.ctx, Artifact("test"))
    assert (harness.ctx.work_dir / "out.txt").read_text() == "hi\n"


def test_a_background_child_holding_the_output_does_not_hang_the_build(
    harness: Harness, prepare: Prepare, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiln.provisioners import shell_local

    monkeypatch.setattr(shell_local, "DRAIN_TIMEOUT", 0.5)
    pidfile = harness.ctx.work_dir / "bg.pid"
    prov = prepare(ShellLocalProvisioner, {"inline": [f"sleep 60 & echo $! > {pidfile}", "echo done"]})
    started = time.monotonic()
    try:
        prov.provision(harness.ctx, None)
        assert time.monotonic() - started < 10
        assert "    example: done" in harness.stdout
    finally:
        if pidfile.exists():
            pid = int(pidfile.read_text())
            if alive(pid):
                os.kill(pid, 9)
            wait_for(lambda: not alive(pid), timeout=5)


def test_parallel_builds_never_meet_text_file_busy(harness: Harness, prepare: Prepare) -> None:
    # Several builds writing and running their inline scripts at once: without SPAWN_LOCK one
    # build's fork can hold another's script open for writing when it is executed (ETXTBSY).
    provs = [prepare(ShellLocalProvisioner, {"inline": [f"echo build-{i}"]}) for i in range(6)]
    failures: list[BaseException] = []

    def run(prov: Any) -> None:
        for _ in range(15):
            try:
                prov.provision(harness.ctx, None)
            except BaseException as exc:
                failures.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in provs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert failures == []
    assert "Text file busy" not in harness.stderr
    assert harness.stdout.count("example: build-0\n") == 15
