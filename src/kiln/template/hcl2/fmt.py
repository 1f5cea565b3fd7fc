"""Packer's canonical HCL layout (`packer fmt`), which is hclwrite's: a token stream whose spacing is
rebuilt from scratch: 2-space indentation by bracket nesting, one space between most tokens, none
inside brackets or around dots, and the `=` of consecutive one-line attributes (and trailing
comments) aligned in a column. Only whitespace between tokens changes; string and heredoc contents,
comments and blank lines stay as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kiln.errors import KilnError

from ..source import MAX_NESTING

OPEN = {"OBrace", "OBrack", "OParen", "TemplateInterp", "TemplateControl"}
CLOSE = {"CBrace", "CBrack", "CParen", "TemplateSeqEnd"}
_OPERATORS = [
    ("==", "EqualOp"), ("!=", "NotEqual"), ("<=", "LessThanEq"), (">=", "GreaterThanEq"),
    ("&&", "And"), ("||", "Or"), ("...", "Ellipsis"), ("=>", "FatArrow"), ("::", "DoubleColon"),
    ("{", "OBrace"), ("}", "CBrace"), ("[", "OBrack"), ("]", "CBrack"), ("(", "OParen"),
    (")", "CParen"), ("=", "Equal"), ("<", "LessThan"), (">", "GreaterThan"), ("!", "Bang"),
    ("+", "Plus"), ("-", "Minus"), ("*", "Star"), ("/", "Slash"), ("%", "Percent"), (".", "Dot"),
    (",", "Comma"), ("?", "Question"), (":", "Colon"),
]  # fmt: skip
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_IDENT = re.compile(r"[^\W\d][\w-]*")
_HEREDOC = re.compile(r"<<(-?)([^\W\d][\w-]*)(\r?\n)")
#: The most characters of a source line a diagnostic quotes.
SOURCE_EXCERPT = 200


class HclSyntaxError(KilnError):
    """A file fmt cannot format, in Packer's diagnostic words."""

    def __init__(self, summary: str, detail: str, filename: str, line: int, source_line: str) -> None:
        super().__init__(f"{filename}:{line}: {summary}: {detail}")
        if len(source_line) > SOURCE_EXCERPT:
            source_line = source_line[:SOURCE_EXCERPT] + "..."
        self.summary, self.detail = summary, detail
        self.filename, self.line, self.source_line = filename, line, source_line

    def packer_text(self) -> str:
        return (
            f"Error: {self.summary}\n\n  on {self.filename} line {self.line}:\n"
            f"  {self.line:>3}: {self.source_line}\n\n{self.detail}\n"
        )


@dataclass
class Token:
    type: str
    text: str
    spaces: int = 0
    line: int = 1


class _Lexer:
    def __init__(self, src: str) -> None:
        self.src = src
        self.pos = 0
        self.line = 1
        self.tokens: list[Token] = []
        self.gap = 0
        # each entry: ("interp", brace depth) | ("quoted", 0) | ("heredoc", marker)
        self.modes: list[list[object]] = []
        self.line_start = True  # heredoc: at the start of a content line

    def emit(self, kind: str, text: str) -> None:
        self.tokens.append(Token(kind, text, self.gap, self.line))
        self.gap = 0
        self.pos += len(text)
        self.line += text.count("\n")

    def run(self) -> list[Token]:
        while self.pos < len(self.src):
            mode = self.modes[-1][0] if self.modes else "normal"
            if mode == "quoted":
                self.quoted()
            elif mode == "heredoc":
                self.heredoc()
            else:
                self.normal()
        self.tokens.append(Token("EOF", "", self.gap, self.line))
        return self.tokens

    def normal(self) -> None:
        src, i = self.src, self.pos
        c = src[i]
        if c in " \t":
            j = i
            while j < len(src) and src[j] in " \t":
                j += 1
            self.gap += j - i
            self.pos = j
            return
        if c == "\n" or src.startswith("\r\n", i):
            self.emit("Newline", "\n" if c == "\n" else "\r\n")
            return
        if c == "#" or src.startswith("//", i):
            end = src.find("\n", i)
            self.emit("Comment", src[i:] if end < 0 else src[i : end + 1])
            return
        if src.startswith("/*", i):
            end = src.find("*/", i + 2)
            self.emit("Comment", src[i:] if end < 0 else src[i : end + 2])
            return
        if c == '"':
            self.emit("OQuote", '"')
            self.modes.append(["quoted", 0])
            return
        heredoc = _HEREDOC.match(src, i)
        if heredoc:
            self.emit("OHeredoc", heredoc.group(0))
            self.modes.append(["heredoc", heredoc.group(2)])
            self.line_start = True
            return
        interp = self.modes[-1] if self.modes and self.modes[-1][0] == "interp" else None
        if interp is not None and (c == "}" or src.startswith("~}", i)) and interp[1] == 0:
            self.emit("TemplateSeqEnd", "}" if c == "}" else "~}")
            self.modes.pop()
            return
        for pattern, kind in ((_NUMBER, "NumberLit"), (_IDENT, "Ident")):
            m = pattern.match(src, i)
            if m:
                self.emit(kind, m.group(0))
                return
        for text, kind in _OPERATORS:
            if src.startswith(text, i):
                if interp is not None and kind == "OBrace":
                    interp[1] = int(str(interp[1])) + 1
                elif interp is not None and kind == "CBrace":
                    interp[1] = int(str(interp[1])) - 1
                self.emit(kind, text)
                return
        self.emit("Invalid", c)

    def template_start(self) -> bool:
        src, i = self.src, self.pos
        for opener, kind in (("${", "TemplateInterp"), ("%{", "TemplateControl")):
            if src.startswith(opener, i):
                self.emit(kind, opener + ("~" if src.startswith("~", i + 2) else ""))
                self.modes.append(["interp", 0])
                return True
        return False

    def literal_end(self, i: int, stops: str) -> int:
        src = self.src
        while i < len(src):
            c = src[i]
            if c in stops:
                return i
            if c == "\\" and self.modes[-1][0] == "quoted":
                i += 2
                continue
            if c in "$%" and src.startswith("{", i + 1):
                return i
            if c in "$%" and src.startswith(c + "{", i + 1):
                i += 3  # $${ and %%{ are escapes, not template sequences
                continue
            i += 1
        return len(src)

    def quoted(self) -> None:
        src, i = self.src, self.pos
        if src[i] == '"':
            self.emit("CQuote", '"')
            self.modes.pop()
            return
        if src[i] == "\n" or src.startswith("\r\n", i):
            self.modes.pop()  # unterminated string: the parser reports it
            self.emit("Newline", "\n" if src[i] == "\n" else "\r\n")
            return
        if self.template_start():
            return
        self.emit("QuotedLit", src[i : self.literal_end(i, '"\r\n')])

    def heredoc(self) -> None:
        src, i = self.src, self.pos
        marker = str(self.modes[-1][1])
        if self.line_start:
            end = src.find("\n", i)
            line = src[i:] if end < 0 else src[i:end]
            if line.strip() == marker:
                self.emit("CHeredoc", line.rstrip("\r"))
                self.modes.pop()
                self.line_start = False
                return
        if self.template_start():
            self.line_start = False
            return
        j = self.literal_end(i, "\n")
        j = min(j + 1, len(src)) if j < len(src) and src[j] == "\n" else j
        text = src[i:j]
        self.line_start = text.endswith("\n")
        self.emit("StringLit", text)


def lex(src: str) -> list[Token]:
    return _Lexer(src).run()


def _bracket_change(tok: Token) -> int:
    return 1 if tok.type in OPEN else -1 if tok.type in CLOSE else 0


def _is_newline(tok: Token) -> bool:
    return tok.type == "Newline" or (tok.type == "Comment" and tok.text.endswith("\n"))


_NIL = Token("Nil", "")
_NEGATION_BEFORE = {
    "Nil", "OParen", "OBrace", "OBrack", "Equal", "Colon", "Comma", "Question", "Plus", "Star",
    "Slash", "Percent", "Minus", "EqualOp", "NotEqual", "GreaterThan", "GreaterThanEq", "LessThan",
    "LessThanEq", "And", "Or", "Bang",
}  # fmt: skip
_TEMPLATE_TEXT = {"QuotedLit", "StringLit", "OQuote", "OHeredoc"}


def _space_after(subject: Token, before: Token, after: Token) -> bool:
    s, a = subject.type, after.type
    if a in ("Newline", "Nil"):
        return False
    if s == "Ident" and a == "OParen":
        return False
    if (s == "Ident" and a == "DoubleColon") or (s == "DoubleColon" and a == "Ident"):
        return False
    if s == "Dot" or a == "Dot":
        return False
    if a in ("Comma", "Ellipsis"):
        return False
    if s == "Comma":
        return True
    if s in _TEMPLATE_TEXT or a in ("QuotedLit", "StringLit", "CQuote", "CHeredoc"):
        return False
    if s == "Ident" and subject.text == "in" and before.type == "Ident":
        return True
    if a == "OBrack" and (s in ("Ident", "NumberLit") or _bracket_change(subject) < 0):
        return False
    if s == "Minus":
        return before.type not in _NEGATION_BEFORE
    if s == "OBrace" or a == "CBrace":
        return not (s == "OBrace" and a == "CBrace")
    if s in ("TemplateInterp", "TemplateControl") and a == "OBrace":
        return True
    if s == "CBrace" and a == "TemplateSeqEnd":
        return True
    if s == "TemplateSeqEnd" and a in ("TemplateInterp", "TemplateControl"):
        return False
    if _bracket_change(subject) > 0:
        return False
    return not _bracket_change(after) < 0


@dataclass
class _Line:
    lead: list[Token]
    assign: list[Token] | None = None
    comment: list[Token] | None = None


def _graphemes(text: str) -> int:
    """Columns as hclwrite counts them (grapheme clusters), closely enough: combining marks,
    variation selectors and characters joined by a zero-width joiner add nothing."""
    if text.isascii():
        return len(text)
    import unicodedata

    count, joined = 0, False
    for ch in text:
        if ch == "\u200d":
            joined = True
            continue
        if not joined and not unicodedata.combining(ch) and not "\ufe00" <= ch <= "\ufe0f":
            count += 1
        joined = False
    return count


def _columns(tokens: list[Token] | None) -> int:
    return sum(t.spaces + _graphemes(t.text) for t in tokens or [])


def _lines(tokens: list[Token]) -> list[_Line]:
    lines: list[_Line] = []
    current: list[Token] = []
    for tok in tokens:
        if tok.type == "EOF":
            break
        current.append(tok)
        if _is_newline(tok):
            lines.append(_Line(current))
            current = []
    lines.append(_Line(current))
    for line in lines:
        lead = line.lead
        if len(lead) > 1 and lead[-1].type == "Comment":
            line.comment, lead = lead[-1:], lead[:-1]
            line.lead = lead
        for i, tok in enumerate(lead):
            if i > 0 and tok.type == "Equal":
                net = 0
                for t in lead[i:]:
                    net += _bracket_change(t)
                    if t.type == "OHeredoc":
                        break
                if net == 0:
                    line.assign, line.lead = lead[i:], lead[:i]
                break
    return lines


def _indent(lines: list[_Line]) -> None:
    indents: list[int] = []
    for line in lines:
        if not line.lead:
            continue
        if line.lead[0].type == "Newline":
            line.lead[0].spaces = 0
            continue
        net = 0
        for t in line.lead + (line.assign or []):
            net += _bracket_change(t)
            if t.type == "OHeredoc":
                break
        if net > 0:
            line.lead[0].spaces = 2 * len(indents)
            indents.append(net)
            continue
        closed = -net
        while closed > 0 and indents:
            if closed > indents[-1]:
                closed -= indents.pop()
            elif closed < indents[-1]:
                indents[-1] -= closed
                closed = 0
            else:
                indents.pop()
                closed = 0
        line.lead[0].spaces = 2 * len(indents)


def _space(cell: list[Token], first_gets_one: bool) -> None:
    for i, tok in enumerate(cell):
        if i == 0 and first_gets_one:
            tok.spaces = 1
        before = cell[i - 1] if i > 0 else _NIL
        after = cell[i + 1] if i + 1 < len(cell) else _NIL
        after.spaces = 1 if _space_after(tok, before, after) else 0


def _align(lines: list[_Line], cell: str) -> None:
    chain: list[_Line] = []

    def close() -> None:
        width = max(_width(line, cell) for line in chain)
        for line in chain:
            getattr(line, cell)[0].spaces = width - _width(line, cell) + 1
        chain.clear()

    for line in lines:
        if getattr(line, cell) is None:
            if chain:
                close()
        else:
            chain.append(line)
    if chain:
        close()


def _width(line: _Line, cell: str) -> int:
    return _columns(line.lead) + (_columns(line.assign) if cell == "comment" else 0)


def format_tokens(tokens: list[Token]) -> str:
    lines = _lines(tokens)
    _indent(lines)
    for line in lines:
        _space(line.lead, False)
        if line.assign:
            _space(line.assign, True)
    _NIL.spaces = 0
    _align(lines, "assign")
    _align(lines, "comment")
    return "".join(" " * t.spaces + t.text for t in tokens if t.type != "EOF")


def format_hcl(src: str) -> str:
    """The canonical layout of HCL text (no syntax check: see `check_syntax`)."""
    return format_tokens(lex(src))


def _source_line(src: str, line: int) -> str:
    start = 0
    for _ in range(line - 1):
        start = src.find("\n", start) + 1
        if start == 0:
            return ""
    end = src.find("\n", start, start + SOURCE_EXCERPT + 1)
    return src[start : end if end >= 0 else start + SOURCE_EXCERPT + 1].rstrip("\r")


def _nesting_error(tokens: list[Token], src: str, filename: str) -> None:
    depth = 0
    for tok in tokens:
        depth += _bracket_change(tok)
        if depth > MAX_NESTING:
            raise HclSyntaxError(
                "Too deeply nested",
                f"Blocks, brackets and interpolations nest more than {MAX_NESTING} levels deep here.",
                filename,
                tok.line,
                _source_line(src, tok.line),
            )


def check_nesting(src: str, filename: str) -> None:
    """Raise HclSyntaxError at the first place nested more than MAX_NESTING levels deep."""
    depth = deepest = 0
    for m in re.finditer(r"[][{}()]", src):  # quick bound, brackets inside strings included
        depth += 1 if m.group(0) in "[{(" else -1
        deepest = max(deepest, depth)
    if deepest > MAX_NESTING:
        _nesting_error(lex(src), src, filename)


def check_syntax(src: str, filename: str) -> None:
    """Raise HclSyntaxError where a body holds something that is neither an argument nor a block,
    brackets do not match, a string is not closed, or blocks and brackets nest too deeply."""
    tokens = [t for t in lex(src) if t.type != "Comment"]
    _nesting_error(tokens, src, filename)

    def fail(tok: Token, summary: str, detail: str) -> None:
        raise HclSyntaxError(summary, detail, filename, tok.line, _source_line(src, tok.line))

    pos = 0

    def skip_expression() -> None:
        nonlocal pos
        depth = 0
        while True:
            tok = tokens[pos]
            if tok.type == "EOF" and depth > 0:
                fail(
                    tok, "Missing closing bracket", "An expression was not closed before the end of the file."
                )
            if tok.type == "EOF" or (tok.type == "Newline" and depth == 0):
                return
            if tok.type == "CBrace" and depth == 0:
                return  # the end of a one-line block
            if tok.type == "Invalid":
                fail(tok, "Invalid character", "This character is not used within the language.")
            depth += _bracket_change(tok) + (1 if tok.type == "OHeredoc" else 0)
            depth -= 1 if tok.type == "CHeredoc" else 0
            if depth < 0:
                fail(tok, "Unbalanced brackets", "This closing bracket has no opening bracket.")
            pos += 1

    def body(nested: bool) -> None:
        nonlocal pos
        while True:
            tok = tokens[pos]
            if tok.type == "Newline":
                pos += 1
                continue
            if tok.type == "EOF":
                if nested:
                    fail(tok, "Unclosed configuration block", "There is no closing brace for this block.")
                return
            if tok.type == "CBrace" and nested:
                pos += 1
                return
            if tok.type != "Ident":
                fail(
                    tok,
                    "Argument or block definition required",
                    "An argument or block definition is required here.",
                )
            pos += 1
            if tokens[pos].type == "Equal":
                pos += 1
                skip_expression()
                continue
            while tokens[pos].type in ("Ident", "OQuote"):
                if tokens[pos].type == "OQuote":
                    pos += 1
                    while tokens[pos].type == "QuotedLit":
                        pos += 1
                    if tokens[pos].type != "CQuote":
                        fail(
                            tokens[pos], "Invalid block label", "Block labels must be quoted literal strings."
                        )
                pos += 1
            if tokens[pos].type != "OBrace":
                fail(
                    tok,
                    "Argument or block definition required",
                    "An argument or block definition is required here. To set an argument, use the "
                    'equals sign "=" to introduce the argument value.',
                )
            pos += 1
            body(True)

    body(False)
