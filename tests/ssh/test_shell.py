"""The shell provisioner against a real sshd."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Captured, Server, SudoUser, needs_root

from kiln.communicators.ssh import SSHCommunicator
from kiln.config import DecodeContext
from kiln.errors import BuildError
from kiln.provisioners.shell import ShellProvisioner
from kiln.provisioners.shell_common import InvalidExitCode


def shell(**raw: Any) -> ShellProvisioner:
    prov = ShellProvisioner()
    dctx = DecodeContext()
    prov.prepare(raw, dctx, "provisioners[0]")
    assert dctx.errors == []
    return prov


def messages(build: Captured) -> list[str]:
    return [line.removeprefix("    test: ") for line in build.lines() if line.startswith("    test: ")]


TRICKY = {
    "QUOTES": "it's \"quoted\" and 'single'",
    "SPACES": "  two  spaces  ",
    "DOLLAR": "$HOME `id` $(id) \\n",
    "EMPTY": "",
}


@pytest.mark.parametrize("use_env_var_file", [False, True])
def test_inline_with_tricky_environment(
    comm: SSHCommunicator, build: Captured, use_env_var_file: bool
) -> None:
    prov = shell(
        inline=[f'printf "%s|\\n" "${name}"' for name in TRICKY]
        + ['echo "$PACKER_BUILD_NAME $PACKER_BUILDER_TYPE"'],
        environment_vars=[f"{k}={v}" for k, v in TRICKY.items() if k != "EMPTY"],
        env={"EMPTY": ""},
        use_env_var_file=use_env_var_file,
    )
    prov.provision(build.ctx, comm)
    assert messages(build) == [f"{v}|" for v in TRICKY.values()] + ["test null"]
    assert build.lines()[0].startswith("==> test: Provisioning with shell script: ")
    # The script and the variable file are removed afterwards.
    leftovers: list[str] = []
    comm.run(
        __import__("kiln.communicators.base", fromlist=["RemoteCommand"]).RemoteCommand(
            f"ls {prov.config.remote_path} /tmp/varfile_* 2>/dev/null", on_stdout=leftovers.append
        )
    )
    assert leftovers == []


def test_output_streams_live(comm: SSHCommunicator, build: Captured) -> None:
    seen: list[float] = []
    original = build.ctx.ui.message
    build.ctx.ui.message = lambda line: (seen.append(time.monotonic()), original(line))  # type: ignore[method-assign]
    shell(inline=["echo first", "sleep 1.5", "echo second"]).provision(build.ctx, comm)
    assert messages(build) == ["first", "second"]
    assert seen[1] - seen[0] > 1.0  # the first line was shown while the script still ran


def test_stderr_lines_are_errors(comm: SSHCommunicator, build: Captured) -> None:
    shell(inline=["echo to-out", "echo to-err >&2"]).provision(build.ctx, comm)
    assert messages(build) == ["to-out"]
    assert "==> test: to-err" in build.errors()


def test_exit_codes(comm: SSHCommunicator, build: Captured, tmp_path: Path) -> None:
    remote = str(tmp_path / "failing.sh")
    with pytest.raises(InvalidExitCode, match=r"non-zero exit status: 3. Allowed exit codes are: \[0\]"):
        shell(inline=["exit 3"], remote_path=remote).provision(build.ctx, comm)
    assert not Path(remote).exists(), "a failed script stays behind on the machine"
    shell(inline=["exit 3"], valid_exit_codes=[0, 3]).provision(build.ctx, comm)
    with pytest.raises(InvalidExitCode):  # inline_shebang /bin/sh -e: a failing command stops the script
        shell(inline=["false", "echo not reached"]).provision(build.ctx, comm)
    assert "not reached" not in messages(build)


def test_scripts_in_order_with_crlf_remote_path_and_skip_clean(
    comm: SSHCommunicator, build: Captured, tmp_path: Path
) -> None:
    (tmp_path / "one.sh").write_bytes(b"#!/bin/sh\r\necho one\r\n")
    (tmp_path / "two.sh").write_text("#!/bin/sh\necho two $0\n")
    remote = tmp_path / "remote-script.sh"
    shell(
        scripts=[str(tmp_path / "one.sh"), str(tmp_path / "two.sh")], remote_path=str(remote), skip_clean=True
    ).provision(build.ctx, comm)
    assert messages(build) == ["one", f"two {remote}"]
    assert remote.exists()
    says = [line for line in build.lines() if line.startswith("==> ")]
    assert says == [
        f"==> test: Provisioning with shell script: {tmp_path / 'one.sh'}",
        f"==> test: Provisioning with shell script: {tmp_path / 'two.sh'}",
    ]


def test_remote_folder_and_remote_file(comm: SSHCommunicator, build: Captured, tmp_path: Path) -> None:
    shell(inline=["echo $0"], remote_folder=str(tmp_path), remote_file="named.sh", skip_clean=True).provision(
        build.ctx, comm
    )
    assert messages(build) == [f"{tmp_path}/named.sh"]
    assert (tmp_path / "named.sh").read_text() == "#!/bin/sh -e\necho $0\n"


def test_execute_command_and_pause_after(comm: SSHCommunicator, build: Captured) -> None:
    start = time.monotonic()
    shell(
        inline=["echo $GREETING"], environment_vars=["GREETING=hello there"],
        execute_command="{{.Vars}} sh {{.Path}} && echo custom", pause_after="1s",
    ).provision(build.ctx, comm)  # fmt: skip
    assert messages(build) == ["hello there", "custom"]
    assert "==> test: Pausing 1s after this provisioner..." in build.lines()
    assert time.monotonic() - start >= 1.0


@needs_root
def test_sudo_in_execute_command(server: Server, test_user: SudoUser, build: Captured) -> None:
    comm = SSHCommunicator(
        server.config(ssh_username=test_user.name, ssh_password=test_user.password, ssh_private_key_file="")
    )
    try:
        shell(
            inline=[
                "id -un",
                "echo $WHO",
                "touch /root/kiln-sudo-test && rm /root/kiln-sudo-test && echo wrote",
            ],
            environment_vars=["WHO=it's me"],
            execute_command=f"echo '{test_user.password}' | sudo -S env {{{{ .Vars }}}} {{{{ .Path }}}}",
        ).provision(build.ctx, comm)
        assert messages(build)[-3:] == ["root", "it's me", "wrote"]
        # Without sudo, the same user may not write there.
        with pytest.raises(InvalidExitCode):
            shell(inline=["id -un", "touch /root/kiln-sudo-test"]).provision(build.ctx, comm)
        assert test_user.name in messages(build)
    finally:
        comm.close()


KILL_MY_SESSION = [
    "echo going down; sleep 1",
    # Walk up to this session's sshd and kill it: the connection drops, as in a reboot.
    'p=$$; while [ "$(cat /proc/$p/comm)" != sshd ]; do p=$(cut -d" " -f4 /proc/$p/stat); done; kill -9 $p',
    "sleep 5",
]


def test_unexpected_disconnect_fails(comm: SSHCommunicator, build: Captured) -> None:
    with pytest.raises(BuildError, match="Script disconnected unexpectedly"):
        shell(inline=KILL_MY_SESSION, start_retry_timeout="10s").provision(build.ctx, comm)
    assert "going down" in messages(build)


def test_expected_disconnect_and_next_provisioner_reconnects(comm: SSHCommunicator, build: Captured) -> None:
    shell(inline=KILL_MY_SESSION, expect_disconnect=True, start_retry_timeout="20s").provision(
        build.ctx, comm
    )
    shell(inline=["echo back again"]).provision(build.ctx, comm)
    assert messages(build) == ["going down", "back again"]


def test_reboot_the_next_provisioner_waits_for_the_machine(
    server: Server, comm: SSHCommunicator, build: Captured
) -> None:
    """sshd goes away entirely for 3 s (the machine reboots) while the script runs."""

    def reboot() -> None:
        deadline = time.monotonic() + 10
        while "going down" not in build.out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        server.sshd.stop()
        time.sleep(3)
        server.sshd.start()

    rebooter = threading.Thread(target=reboot)
    rebooter.start()
    try:
        shell(
            inline=["echo going down", "sleep 30"], expect_disconnect=True, start_retry_timeout="30s"
        ).provision(build.ctx, comm)
        shell(inline=["echo after reboot"]).provision(build.ctx, comm)
    finally:
        rebooter.join()
    assert messages(build) == ["going down", "after reboot"]


def test_validation_messages() -> None:
    prov = ShellProvisioner()
    dctx = DecodeContext()
    prov.prepare(
        {"script": "/nonexistent.sh", "scripts": ["/x.sh"], "environment_vars": ["NOVALUE"]}, dctx, "p"
    )
    text = "\n".join(dctx.errors)
    assert "Only one of script or scripts can be specified." in text
    assert "Bad script '/nonexistent.sh'" in text
    assert "Environment variable not in format 'key=value': NOVALUE" in text
    dctx = DecodeContext()
    ShellProvisioner().prepare({}, dctx, "p")
    assert dctx.errors == ["p: Either a script file or inline script must be specified."]
