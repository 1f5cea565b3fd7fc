"""boot_command: Packer's key language, parsed into actions, then typed through QMP.

    actions = parse(lines)                       # BootCommandError: which line, which column, what
    type_actions(qmp, actions, Intervals.from_config(cfg), cancel, log)

The language is the packer-plugin-sdk grammar's (bootcommand/boot_command.pigeon): the lines are
joined into one text (as Packer's FlatBootCommand does), read left to right, and at each `<` the
first of these that matches is taken, else the `<` is a literal character:

- `<wait>` (1 s), `<waitN>` (N seconds: `0` or digits without a leading zero), `<waitDURATION>`
  (Go durations, `1m30s`, `1.5h`, `-1s`); `wait` is lower case. A wait of 0 or less is an error.
- `<XOn>` / `<XOff>`: press or release the one character X (on/off in any case).
- `<KEY>`, `<KEYOn>`, `<KEYOff>`: the special keys, in any case (SPECIAL_KEYS).

Every other character is typed as a US keyboard types it, shifted characters with the left shift
held around them. Where Packer would type them as text, kiln refuses (a located error) what can only
be a mistake: `<word>` that names no key (`<entr>`, `<f13>`, `<WAIT>`, `<wait5x>`), and characters a
US keyboard cannot type (a newline: write `<enter>`; non-ASCII letters).

`{{ ... }}` in a line is rendered (HTTPIP, HTTPPort, Name and the user's variables) before the
build parses it; at validate time the line is parsed as written, so its columns are the template's.

Typing: each key goes to QEMU as `input-send-event` qcode events, its modifiers and key down in one
command, key up and modifiers up in a second, with boot_key_interval (Packer's 100 ms, or
PACKER_KEY_INTERVAL) after each, and boot_keygroup_interval after the whole key; a wait is a wait.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from kiln.duration import Duration
from kiln.errors import KilnError

if TYPE_CHECKING:
    import logging

    from kiln.core.cancel import CancelToken
    from kiln.machines.qemu import QMP

#: the special keys, in the grammar's order (the first that matches is taken), and their QEMU qcodes
SPECIAL_KEYS: dict[str, str] = {
    "bs": "backspace", "del": "delete", "enter": "ret", "esc": "esc",
    "f10": "f10", "f11": "f11", "f12": "f12", "f1": "f1", "f2": "f2", "f3": "f3", "f4": "f4",
    "f5": "f5", "f6": "f6", "f7": "f7", "f8": "f8", "f9": "f9",
    "return": "ret", "tab": "tab", "up": "up", "down": "down", "spacebar": "spc",
    "insert": "insert", "home": "home", "end": "end", "pageup": "pgup", "pagedown": "pgdn",
    "leftalt": "alt", "leftctrl": "ctrl", "leftmeta": "meta_l", "leftshift": "shift",
    "rightalt": "alt_r", "rightctrl": "ctrl_r", "rightmeta": "meta_r", "rightshift": "shift_r",
    "leftsuper": "meta_l", "rightsuper": "meta_r", "left": "left", "right": "right", "menu": "menu",
}  # fmt: skip

#: what each printable ASCII character is on a US keyboard: its qcode, and whether shift is held
_UNSHIFTED = {
    "-": "minus", "=": "equal", "[": "bracket_left", "]": "bracket_right", "\\": "backslash",
    ";": "semicolon", "'": "apostrophe", "`": "grave_accent", ",": "comma", ".": "dot", "/": "slash",
    " ": "spc",
}  # fmt: skip
_SHIFTED = dict(zip("!@#$%^&*()", "1234567890", strict=True)) | {
    "_": "minus", "+": "equal", "{": "bracket_left", "}": "bracket_right", "|": "backslash",
    ":": "semicolon", '"': "apostrophe", "~": "grave_accent", "<": "comma", ">": "dot", "?": "slash",
}  # fmt: skip
SHIFT = "shift"


def char_key(char: str) -> tuple[str, bool] | None:
    """(qcode, shifted) for a character a US keyboard types, or None."""
    if "a" <= char <= "z" or "0" <= char <= "9":
        return char, False
    if "A" <= char <= "Z":
        return char.lower(), True
    if char in _UNSHIFTED:
        return _UNSHIFTED[char], False
    if char in _SHIFTED:
        return _SHIFTED[char], True
    return None


Action = Literal["press", "on", "off"]


@dataclass(frozen=True)
class Key:
    qcode: str
    action: Action = "press"
    shift: bool = False  #: the left shift is held around it (a shifted character)
    text: str = ""  #: the character, or the special key's name in lower case (for the log)
    special: bool = False  #: a special key (<enter>), not a character


@dataclass(frozen=True)
class Wait:
    seconds: float
    text: str = ""


Step = Key | Wait


class BootCommandError(KilnError):
    """A boot_command line Packer's key language cannot type; `where` is "boot_command[i]: column c"."""

    def __init__(self, line: int, column: int, problem: str, hint: str | None = None) -> None:
        self.line, self.column, self.problem = line, column, problem
        super().__init__(f"boot_command[{line}]: column {column}: {problem}", hint)


_DURATION = r"(?:-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+"
_WAIT = re.compile(rf"<wait({_DURATION}|0|[1-9][0-9]*)?>")
_TOGGLE = re.compile(r"<(.)((?i:on|off))>", re.DOTALL)
_SPECIAL = re.compile(rf"<({'|'.join(SPECIAL_KEYS)})((?:on|off)?)>", re.IGNORECASE)
#: what Packer would type as text but can only be a mistake
_NOT_A_KEY = re.compile(r"<(wait[^<>\s]*|[A-Za-z][A-Za-z0-9]*)>", re.IGNORECASE)
_TEMPLATE = re.compile(r"\{\{.*?\}\}", re.DOTALL)


def parse(lines: Sequence[str], *, templated: bool = False) -> list[Step]:
    """The actions of a boot command. `templated`: the lines are as written, `{{ }}` not rendered yet
    (validate time): what is inside `{{ }}` is skipped."""
    text = "".join(lines)
    starts, offset = [], 0
    for line in lines:
        starts.append(offset)
        offset += len(line)

    def where(pos: int) -> tuple[int, int]:
        index = max(i for i, start in enumerate(starts) if start <= pos) if starts else 0
        return index, pos - starts[index] + 1

    def fail(pos: int, problem: str, hint: str | None = None) -> BootCommandError:
        line, column = where(pos)
        return BootCommandError(line, column, problem, hint)

    skip = [m.span() for m in _TEMPLATE.finditer(text)] if templated else []
    steps: list[Step] = []
    pos = 0
    while pos < len(text):
        span = next((s for s in skip if s[0] == pos), None)
        if span is not None:
            pos = span[1]
            continue
        if text[pos] == "<":
            if match := _WAIT.match(text, pos):
                try:
                    steps.append(_wait(match.group(1), match.group(0)))
                except ValueError as exc:
                    raise fail(pos, str(exc), "a wait is <wait>, <wait5> (seconds) or <wait1m30s>") from None
                pos = match.end()
                continue
            if (match := _TOGGLE.match(text, pos)) and (key := char_key(match.group(1))):
                qcode, shifted = key
                steps.append(Key(qcode, match.group(2).lower(), shifted, match.group(1)))  # type: ignore[arg-type]
                pos = match.end()
                continue
            if match := _SPECIAL.match(text, pos):
                action: Action = match.group(2).lower() or "press"  # type: ignore[assignment]
                name = match.group(1).lower()
                steps.append(Key(SPECIAL_KEYS[name], action, False, name, True))
                pos = match.end()
                continue
            match = _NOT_A_KEY.match(text, pos)
            if match and not (templated and "{{" in match.group(0)):
                raise fail(pos, *_unknown(match.group(0), match.group(1)))
        key = char_key(text[pos])
        if key is None:
            raise fail(
                pos, f"{_char_name(text[pos])} cannot be typed on a US keyboard", _char_hint(text[pos])
            )
        steps.append(Key(key[0], "press", key[1], text[pos]))
        pos += 1
    return steps


def _wait(value: str | None, written: str) -> Wait:
    if value is None:
        return Wait(1.0, written)
    try:
        seconds = float(value) if value.isdigit() else float(Duration.parse(value))
    except ValueError as exc:
        raise ValueError(f"{written}: {exc}") from None
    if seconds <= 0:
        raise ValueError(f"{written}: a wait must be positive")
    return Wait(seconds, written)


def _unknown(written: str, name: str) -> tuple[str, str]:
    """(problem, hint) for a <word> that names no key."""
    if name.lower().startswith("wait"):
        hint = "a wait is <wait>, <wait5> (seconds) or <wait1m30s> (a Go duration), with wait in lower case"
        return f"{written} is not a wait", hint
    keys = "<enter> <tab> <esc> <bs> <del> <spacebar> <up> <f1>..<f12> <leftCtrlOn> ..."
    hint = f"the keys are {keys}; to type it as text, write <<leftShiftOff>{written[1:]}"
    return f"{written} names no key", hint


def _char_name(char: str) -> str:
    return f"{char!r} (U+{ord(char):04X})"


def _char_hint(char: str) -> str:
    named = {"\n": "<enter>", "\r": "<enter>", "\t": "<tab>", "\b": "<bs>", "\x1b": "<esc>"}
    if char in named:
        return f"write {named[char]} for it"
    return "type ASCII characters only (the keyboard is a US one)"


def render(lines: Sequence[str], render_one: Any, http_ip: str, http_port: int, name: str) -> list[str]:
    """The lines with `{{ .HTTPIP }}`, `{{ .HTTPPort }}`, `{{ .Name }}` and the user's variables
    rendered: `render_one` is BuildContext.render."""
    data = {"HTTPIP": http_ip, "HTTPPort": http_port, "Name": name}
    return [render_one(line, data) for line in lines]


# -- typing ----------------------------------------------------------------------------------------

#: Packer's PackerKeyDefault
DEFAULT_KEY_INTERVAL = 0.1


@dataclass(frozen=True)
class Intervals:
    key: float = DEFAULT_KEY_INTERVAL  #: after each key event sent
    group: float = 0.0  #: after each whole key (its events down and up)

    @classmethod
    def resolve(cls, boot_key_interval: float, boot_keygroup_interval: float) -> Intervals:
        """boot_key_interval if set (> 0), else PACKER_KEY_INTERVAL (a Go duration) if it parses,
        else Packer's 100 ms."""
        key = DEFAULT_KEY_INTERVAL
        env = os.environ.get("PACKER_KEY_INTERVAL", "")
        if env:
            try:
                key = max(0.0, float(Duration.parse(env)))
            except ValueError:
                pass  # Packer ignores one that does not parse
        if boot_key_interval > 0:
            key = boot_key_interval
        return cls(key, max(0.0, boot_keygroup_interval))


def _event(qcode: str, down: bool) -> dict[str, Any]:
    return {"type": "key", "data": {"down": down, "key": {"type": "qcode", "data": qcode}}}


def key_events(step: Key) -> list[list[dict[str, Any]]]:
    """The input-send-event batches of one key: [down events], [up events] (one for On or Off)."""
    shift = [SHIFT] if step.shift else []
    down = [_event(q, True) for q in [*shift, step.qcode]]
    up = [_event(q, False) for q in [step.qcode, *shift]]
    if step.action == "on":
        return [down]
    if step.action == "off":
        return [up]
    return [down, up]


def describe(step: Step) -> str:
    """The debug-log line of a step, as Packer's boot command drivers log theirs."""
    if isinstance(step, Wait):
        return f"Waiting {Duration(step.seconds)}"
    if step.special:
        return f"Special code '<{step.text}>' found, replacing with: qcode {step.qcode} ({step.action})"
    return f"Sending char '{step.text}', qcode {step.qcode}, shift {str(step.shift).lower()} ({step.action})"


def type_actions(
    qmp: QMP, steps: Sequence[Step], intervals: Intervals, cancel: CancelToken, log: logging.Logger
) -> None:
    """Type the actions into the VM behind `qmp`; Ctrl-C (the cancel token) stops between events."""
    for step in steps:
        cancel.check()
        if isinstance(step, Wait):
            log.debug("%s", describe(step))
            cancel.sleep(step.seconds)
            continue
        log.debug(
            "boot_command: %s (%s %s%s)", step.text, step.action, step.qcode, " shifted" if step.shift else ""
        )
        for batch in key_events(step):
            qmp.execute("input-send-event", events=batch)
            cancel.sleep(intervals.key)
        if intervals.group:
            cancel.sleep(intervals.group)
