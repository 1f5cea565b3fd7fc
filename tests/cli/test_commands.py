"""Every command answers -help, rejects unknown flags in one line, and never shows a traceback."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Kiln

COMMANDS = [
    "build",
    "validate",
    "inspect",
    "fmt",
    "hcl2_upgrade",
    "version",
    "cleanup",
    "baseimage",
    "localcloud",
]


@pytest.mark.parametrize("flag", ["--help", "-help", "-h"])
@pytest.mark.parametrize("command", COMMANDS)
def test_help(kiln: Kiln, command: str, flag: str) -> None:
    result = kiln(command, flag)
    assert result.code == 0, result.text
    assert "usage" in result.text.lower()
    assert "Error:" not in result.text and ": error:" not in result.text and "Traceback" not in result.text


@pytest.mark.parametrize("command", ["cleanup", "baseimage", "localcloud"])
def test_bad_argument_is_one_line_error(kiln: Kiln, command: str) -> None:
    result = kiln(command, "--no-such-flag")
    assert result.code == 1, result.text
    assert result.err == (
        f"Error: kiln {command}: unrecognized arguments: --no-such-flag\n  hint: see `kiln {command} -help`\n"
    ) or (command == "baseimage" and result.err.startswith("Error: kiln baseimage: ")), result.err
    assert "Traceback" not in result.text


@pytest.mark.parametrize("command", ["build", "validate", "inspect", "fmt", "hcl2_upgrade"])
def test_unknown_flag_is_one_line_error(kiln: Kiln, command: str) -> None:
    result = kiln(command, "-no-such-flag", "x.json")
    assert result.code == 1
    assert result.err.startswith("Error: flag provided but not defined: -no-such-flag")
    assert "Traceback" not in result.text


def test_version_and_unknown_command(kiln: Kiln) -> None:
    version = kiln("version")
    assert version.code == 0 and version.out.startswith("Kiln v") and "Packer 1.16.0" in version.out
    unknown = kiln("frobnicate")
    assert unknown.code == 127 and "unknown command 'frobnicate'" in unknown.err
