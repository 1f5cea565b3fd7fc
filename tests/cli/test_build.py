"""`kiln build` end to end, with the null builder and local provisioners: output, exit codes,
on-error modes, SIGINT, parallel builds, retries and timeouts."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.cli.conftest import Kiln, pid_alive


def null_build(*provisioners: dict[str, object], name: str = "null", **extra: object) -> dict[str, object]:
    return {
        "builders": [{"type": "null", "name": name, "communicator": "none"}],
        "provisioners": list(provisioners),
        **extra,
    }


def test_successful_build_prints_packer_lines(kiln: Kiln) -> None:
    path = kiln.template(null_build({"type": "shell-local", "inline": ["echo hello from {{build_name}}"]}))
    result = kiln("build", "-color=false", str(path))
    assert result.code == 0, result.text
    assert "null: output will be in this color." in result.out
    assert "    null: hello from null" in result.out
    assert "Build 'null' finished after" in result.out
    assert "==> Builds finished. The artifacts of successful builds are:" in result.out
    assert "--> null: Did not export anything. This is the null builder" in result.out


def test_failing_provisioner_fails_the_build_with_summary(kiln: Kiln) -> None:
    path = kiln.template(null_build({"type": "shell-local", "inline": ["exit 3"]}))
    result = kiln("build", str(path))
    assert result.code == 1
    assert "Build 'null' errored after" in result.text
    assert "==> Some builds didn't complete successfully and had errors:" in result.text
    assert "--> null:" in result.text
    assert "  hint: fix the script, or add the code to valid_exit_codes" in result.text


def test_error_cleanup_provisioner_runs_on_failure_but_not_on_abort(kiln: Kiln) -> None:
    template = null_build(
        {"type": "shell-local", "inline": ["exit 1"]},
        **{"error-cleanup-provisioner": {"type": "shell-local", "inline": ["touch cleanup-ran"]}},
    )
    path = kiln.template(template)
    assert kiln("build", str(path)).code == 1
    assert (kiln.cwd / "cleanup-ran").exists()
    (kiln.cwd / "cleanup-ran").unlink()
    result = kiln("build", "-on-error=abort", str(path))
    assert result.code == 1
    assert not (kiln.cwd / "cleanup-ran").exists()
    result = kiln("build", "-on-error=run-cleanup-provisioner", str(path))
    assert result.code == 1 and (kiln.cwd / "cleanup-ran").exists()


def test_bad_on_error_value_is_one_line_error(kiln: Kiln) -> None:
    path = kiln.template(null_build())
    result = kiln("build", "-on-error=explode", str(path))
    assert result.code == 1
    assert 'invalid value "explode" for flag -on-error' in result.err
    assert "Traceback" not in result.text


def test_max_retries_retries_then_succeeds(kiln: Kiln) -> None:
    script = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 3 ]"
    path = kiln.template(null_build({"type": "shell-local", "inline": [script], "max_retries": 3}))
    result = kiln("build", str(path))
    assert result.code == 0, result.text
    assert (kiln.cwd / "count").read_text().strip() == "3"
    assert "retrying with 2 trie(s) left" in result.out


def test_max_retries_from_a_variable_is_rendered_as_packer_does(kiln: Kiln) -> None:
    script = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; exit 1"
    prov = {"type": "shell-local", "inline": [script], "max_retries": "{{user `retries`}}"}
    path = kiln.template(null_build(prov, variables={"retries": "2"}))
    result = kiln("build", str(path))
    assert result.code == 1, result.text
    assert (kiln.cwd / "count").read_text().strip() == "3"
    bad = kiln.template(null_build(prov, variables={"retries": "two"}), name="bad.json")
    result = kiln("validate", str(bad))
    assert result.code == 1
    assert 'provisioners[0].max_retries: `max_retries` must be a valid integer, got "two"' in result.err


def test_timeout_stops_a_provisioner(kiln: Kiln) -> None:
    path = kiln.template(
        null_build({"type": "shell-local", "inline": ["echo $$ > pid; exec sleep 60"], "timeout": "1s"})
    )
    started = time.monotonic()
    result = kiln("build", str(path))
    assert result.code == 1
    assert time.monotonic() - started < 30
    assert "timed out" in result.text
    assert not pid_alive(int((kiln.cwd / "pid").read_text()))


def test_sigint_cancels_cleans_up_and_exits_1(kiln: Kiln) -> None:
    path = kiln.template(null_build({"type": "shell-local", "inline": ["echo $$ > pid; exec sleep 60"]}))
    proc = kiln.start("build", str(path))
    pid_file = kiln.cwd / "pid"
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline and proc.poll() is None, "provisioner never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1, out
    assert "Cancelling build after receiving interrupt" in out
    assert "Cleanly cancelled builds after being interrupted." in out
    assert not pid_alive(int(pid_file.read_text()))


def test_sigterm_also_cancels(kiln: Kiln) -> None:
    path = kiln.template(null_build({"type": "shell-local", "inline": ["touch started; sleep 60"]}))
    proc = kiln.start("build", str(path))
    deadline = time.monotonic() + 30
    while not (kiln.cwd / "started").exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "Cleanly cancelled builds" in out


def _rendezvous_template(kiln: Kiln) -> Path:
    # Each build marks that it started, then waits for the other: only concurrent builds succeed.
    def wait_for(other: str) -> str:
        return f"touch {{{{build_name}}}}.started; for i in $(seq 50); do [ -e {other}.started ] && exit 0; sleep 0.1; done; exit 1"

    return kiln.template(
        {
            "builders": [
                {"type": "null", "name": "a", "communicator": "none"},
                {"type": "null", "name": "b", "communicator": "none"},
            ],
            "provisioners": [
                {"type": "shell-local", "only": ["a"], "inline": [wait_for("b")]},
                {"type": "shell-local", "only": ["b"], "inline": [wait_for("a")]},
            ],
        }
    )


def test_builds_run_in_parallel(kiln: Kiln) -> None:
    result = kiln("build", str(_rendezvous_template(kiln)))
    assert result.code == 0, result.text
    assert "Build 'a' finished" in result.out and "Build 'b' finished" in result.out


def test_parallel_builds_1_runs_one_at_a_time(kiln: Kiln) -> None:
    result = kiln("build", "-parallel-builds=1", str(_rendezvous_template(kiln)))
    assert result.code == 1  # the first build waits for a second one that never starts alongside it
    assert "Build 'a' errored" in result.text


def test_only_and_except_select_builds(kiln: Kiln) -> None:
    template = {
        "builders": [{"type": "null", "name": n, "communicator": "none"} for n in ("a", "b", "c")],
        "provisioners": [{"type": "shell-local", "inline": ["touch {{build_name}}.built"]}],
    }
    path = kiln.template(template)
    assert kiln("build", "-only=a,c", str(path)).code == 0
    assert sorted(p.name for p in kiln.cwd.glob("*.built")) == ["a.built", "c.built"]
    result = kiln("build", "-only=nope", str(path))
    assert result.code == 1 and "No builds to run" in result.err


def test_machine_readable_artifact_lines(kiln: Kiln) -> None:
    path = kiln.template({"builders": [{"type": "file", "target": "out.txt", "content": "x,y"}]})
    result = kiln("-machine-readable", "build", str(path))
    assert result.code == 0, result.text
    fields = [line.split(",")[1:] for line in result.out.splitlines()]
    assert ["file", "artifact-count", "1"] in fields
    assert ["file", "artifact", "0", "builder-id", "packer.file"] in fields
    assert ["file", "artifact", "0", "file", "0", "out.txt"] in fields
    assert ["file", "artifact", "0", "end"] in fields
    assert (kiln.cwd / "out.txt").read_text() == "x,y"


def test_template_from_stdin(kiln: Kiln) -> None:
    result = kiln("build", "-", stdin='{"builders":[{"type":"file","target":"s.txt","content":"hi"}]}')
    assert result.code == 0, result.text
    assert (kiln.cwd / "s.txt").read_text() == "hi"


def test_template_errors_found_while_building_are_each_listed(kiln: Kiln) -> None:
    # `build` data is known only once the builder ran: these errors show at build time
    path = kiln.template(
        null_build({"type": "shell-local", "inline": ["echo {{ build `Nope` }}", "echo {{ build `Other` }}"]})
    )
    assert kiln("validate", str(path)).code == 0
    result = kiln("build", "-color=false", str(path))
    assert result.code == 1
    for where, name in (("provisioners[0].inline[0]", "Nope"), ("provisioners[0].inline[1]", "Other")):
        line = f"* {where}: error processing template: error calling build: loaded data, but couldn't find {name}"
        assert result.err.count(line) == 2, result.err  # in the build's error and in the summary
    assert "2 error(s) occurred:\n\n* provisioners[0].inline[0]" in result.err  # and nothing made up
