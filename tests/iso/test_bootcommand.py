"""The boot_command parser against Packer's key language (packer-plugin-sdk's grammar): every special
key in any case, On/Off forms, waits, literal text with shifted characters, templating, and bad
syntax as a located one-line error, at validate time too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kiln.builders.qemu.bootcommand import (
    SPECIAL_KEYS,
    BootCommandError,
    Intervals,
    Key,
    Wait,
    key_events,
    parse,
    render,
)

QCODES = {
    "bs": "backspace", "del": "delete", "enter": "ret", "return": "ret", "esc": "esc", "tab": "tab",
    "spacebar": "spc", "up": "up", "down": "down", "left": "left", "right": "right", "home": "home",
    "end": "end", "pageUp": "pgup", "pageDown": "pgdn", "insert": "insert", "menu": "menu",
    **{f"f{n}": f"f{n}" for n in range(1, 13)},
    "leftAlt": "alt", "rightAlt": "alt_r", "leftCtrl": "ctrl", "rightCtrl": "ctrl_r",
    "leftShift": "shift", "rightShift": "shift_r", "leftSuper": "meta_l", "rightSuper": "meta_r",
    "leftMeta": "meta_l", "rightMeta": "meta_r",
}  # fmt: skip


def keys(text: str) -> list[tuple[str, str, bool]]:
    return [(s.qcode, s.action, s.shift) for s in parse([text]) if isinstance(s, Key)]


@pytest.mark.parametrize("name", sorted(QCODES))
def test_every_special_key_in_every_case_and_form(name: str) -> None:
    qcode = QCODES[name]
    for written in (name, name.lower(), name.upper()):
        assert keys(f"<{written}>") == [(qcode, "press", False)]
        assert keys(f"<{written}On>") == [(qcode, "on", False)]
        assert keys(f"<{written}off>") == [(qcode, "off", False)]
    assert {k.lower() for k in QCODES} == set(SPECIAL_KEYS)


def test_literal_text_as_a_us_keyboard_types_it() -> None:
    assert keys("aZ9 ") == [
        ("a", "press", False),
        ("z", "press", True),
        ("9", "press", False),
        ("spc", "press", False),
    ]
    shifted = '~!@#$%^&*()_+{}|:"<>?'
    assert [k[2] for k in keys(shifted)] == [True] * len(shifted)
    assert [k[0] for k in keys(shifted)] == [
        "grave_accent", "1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "minus", "equal",
        "bracket_left", "bracket_right", "backslash", "semicolon", "apostrophe", "comma", "dot", "slash",
    ]  # fmt: skip
    plain = "`-=[]\\;',./"
    assert [k for k in keys(plain)] == [
        (q, "press", False)
        for q in ("grave_accent", "minus", "equal", "bracket_left", "bracket_right", "backslash",
                  "semicolon", "apostrophe", "comma", "dot", "slash")
    ]  # fmt: skip


def test_char_toggles_and_modifier_chords() -> None:
    assert keys("<leftCtrlOn>c<leftCtrlOff>") == [
        ("ctrl", "on", False),
        ("c", "press", False),
        ("ctrl", "off", False),
    ]
    assert keys("<aOn><AOFF><%on>") == [("a", "on", False), ("a", "off", True), ("5", "on", True)]
    # the events a press sends: modifiers and key down together, then up in reverse order
    down, up = key_events(Key("5", "press", True))
    assert [(e["data"]["key"]["data"], e["data"]["down"]) for e in down] == [("shift", True), ("5", True)]
    assert [(e["data"]["key"]["data"], e["data"]["down"]) for e in up] == [("5", False), ("shift", False)]
    assert len(key_events(Key("ctrl", "on"))) == 1


def test_waits() -> None:
    waits = [
        s.seconds
        for s in parse(["<wait><wait5><wait10><wait0.5s><wait1m30s><wait1h><wait250ms><wait1.5h>"])
        if isinstance(s, Wait)
    ]
    assert waits == [1, 5, 10, 0.5, 90, 3600, 0.25, 5400]
    # not waits in Packer's grammar (a leading zero, a fraction without a unit): Packer types them as
    # text; kiln says they are no wait
    for written in ("<wait05>", "<wait1.5>"):
        with pytest.raises(BootCommandError, match="is not a wait"):
            parse([written])


def test_packer_types_lone_brackets_and_non_words_as_text() -> None:
    text = "cat <<EOF > /tmp/a <x-y> a<b"
    assert "".join(s.text for s in parse([text])) == text
    assert all(isinstance(s, Key) and s.action == "press" for s in parse([text]))


def test_lines_are_joined_as_packer_flattens_them() -> None:
    assert keys("<ent") + keys("") == keys("<ent")
    assert [(s.qcode, s.action) for s in parse(["<ent", "er>"]) if isinstance(s, Key)] == [("ret", "press")]


@pytest.mark.parametrize(
    ("lines", "line", "column", "problem"),
    [
        (["ok<enter>", "abc <entr>"], 1, 5, "<entr> names no key"),
        (["<f13>"], 0, 1, "<f13> names no key"),
        (["x<WAIT5>"], 0, 2, "<WAIT5> is not a wait"),
        (["<wait5x>"], 0, 1, "<wait5x> is not a wait"),
        (["<wait0>"], 0, 1, "<wait0>: a wait must be positive"),
        (["<wait-1s>"], 0, 1, "<wait-1s>: a wait must be positive"),
        (["<wait0s>"], 0, 1, "<wait0s>: a wait must be positive"),
        (["<wait99999999999h>"], 0, 1, "<wait99999999999h>: time: invalid duration"),
        (["a\nb"], 0, 2, "'\\n' (U+000A) cannot be typed on a US keyboard"),
        (["", "café"], 1, 4, "'é' (U+00E9) cannot be typed on a US keyboard"),
    ],
)
def test_bad_syntax_is_located(lines: list[str], line: int, column: int, problem: str) -> None:
    with pytest.raises(BootCommandError) as caught:
        parse(lines)
    err = caught.value
    assert (err.line, err.column) == (line, column)
    assert err.problem.startswith(problem), err.problem
    assert str(err).startswith(f"boot_command[{line}]: column {column}: ") and "\n" not in str(err)
    assert err.hint


def test_templates_are_skipped_at_validate_and_rendered_at_build() -> None:
    lines = [
        "<esc> url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/a hostname={{ .Name }}",
        "<wait{{user `w`}}><enter>",
    ]
    parse(lines, templated=True)  # nothing inside {{ }} is judged before it is rendered
    with pytest.raises(BootCommandError) as caught:
        parse(["{{ .Name }} <nokey>"], templated=True)
    assert caught.value.column == 13  # the template's own column

    def fake_render(text: str, data: dict[str, object]) -> str:  # the engine's role, for this unit test
        for key, value in data.items():
            text = text.replace(f"{{{{ .{key} }}}}", str(value))
        return text.replace("{{user `w`}}", "5")

    rendered = render(lines, fake_render, "10.0.2.2", 8123, "debian")
    assert rendered[0] == "<esc> url=http://10.0.2.2:8123/a hostname=debian"
    steps = parse(rendered)
    assert Wait(5.0, "<wait5>") in steps and "".join(s.text for s in steps).endswith("debian<wait5>enter")


def test_log_lines_say_what_packer_says() -> None:
    from kiln.builders.qemu.bootcommand import describe

    lines = [describe(step) for step in parse(["A<enter><wait1m30s><leftCtrlOn><cOff>"])]
    assert lines == [
        "Sending char 'A', qcode a, shift true (press)",
        "Special code '<enter>' found, replacing with: qcode ret (press)",
        "Waiting 1m30s",
        "Special code '<leftctrl>' found, replacing with: qcode ctrl (on)",
        "Sending char 'c', qcode c, shift false (off)",
    ]


def test_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PACKER_KEY_INTERVAL", raising=False)
    assert Intervals.resolve(0, 0) == Intervals(0.1, 0)
    monkeypatch.setenv("PACKER_KEY_INTERVAL", "10ms")
    assert Intervals.resolve(0, 0.5) == Intervals(0.01, 0.5)
    assert Intervals.resolve(0.05, 0) == Intervals(0.05, 0)  # boot_key_interval wins
    monkeypatch.setenv("PACKER_KEY_INTERVAL", "nonsense")
    assert Intervals.resolve(0, 0).key == 0.1  # ignored, as Packer does


def test_validate_names_line_and_column(tmp_path: Path) -> None:
    template = {
        "builders": [
            {
                "type": "qemu", "iso_url": "a.iso", "iso_checksum": "none", "disk_image": True,
                "ssh_username": "root",
                "boot_command": ["<esc><wait>", "linux url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/<entr>"],
            }
        ]
    }  # fmt: skip
    (tmp_path / "t.json").write_text(json.dumps(template))
    done = subprocess.run(
        [sys.executable, "-m", "kiln", "validate", "t.json"], cwd=tmp_path, capture_output=True, text=True
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in out
    assert "builders[0].boot_command[1]: column 48: <entr> names no key" in out, out
