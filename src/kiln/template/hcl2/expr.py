"""HCL expressions, as python-hcl2 hands them over (`"${var.x + 1}"`, `"\\"pre-${local.y}\\""`):
parsed by a small recursive-descent parser and evaluated against a scope.

Covered: literals, template strings with `${}` (and `%{if}`/`%{for}` directives), heredocs, tuples,
objects, traversals (`var.a[0].b`, splat `[*]`), function calls, unary/binary operators, conditionals
and `for` expressions. Values are plain Python values; a value known only during the build
(`build.ID`, `build.name`) is a `Deferred` carrying the equivalent `{{ }}` expression, which the
build renders later.
"""

from __future__ import annotations

import re
from typing import Any

from .limits import TEXT, text_error, weigh
from .runtime import (
    Deferred,
    HclDiagnostic,
    HCLError,
    Node,
    Scope,
    attr_node,
    binop_node,
    call_function,
    concat_node,
    const_node,
    eval_cond,
    eval_for,
    index_node,
    items_of,
    lookup_name,
    namespace,
    num_text,
    splat_node,
    to_bool,
    to_num,
    to_str,
)

__all__ = [
    "Deferred",
    "HCLError",
    "HclDiagnostic",
    "Node",
    "Scope",
    "compile_expression",
    "compile_template",
    "compile_value",
    "evaluate",
    "namespace",
    "num_text",
    "to_num",
    "to_str",
]  # fmt: skip


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_NUMBER = re.compile(r"\d+(\.\d+)?([eE][+-]?\d+)?")
#: characters quoted on each side of a syntax error in a long expression
_EXCERPT = 40
_ESC = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    # -- helpers
    def error(self, message: str) -> HCLError:
        text = self.s
        if len(text) > 2 * _EXCERPT:  # quote the part around the error only
            start = max(0, self.i - _EXCERPT)
            text = ("..." if start else "") + text[start : self.i + _EXCERPT] + "..."
        return HCLError(f"{message} in expression {text!r} at character {self.i + 1}")

    def ws(self) -> None:
        s, n = self.s, len(self.s)
        while self.i < n:
            c = s[self.i]
            if c in " \t\r\n":
                self.i += 1
            elif s.startswith("#", self.i) or s.startswith("//", self.i):
                end = s.find("\n", self.i)
                self.i = n if end < 0 else end + 1
            elif s.startswith("/*", self.i):
                end = s.find("*/", self.i + 2)
                self.i = n if end < 0 else end + 2
            else:
                break

    def peek(self, token: str) -> bool:
        self.ws()
        return self.s.startswith(token, self.i)

    def eat(self, token: str) -> bool:
        if self.peek(token):
            self.i += len(token)
            return True
        return False

    def expect(self, token: str) -> None:
        if not self.eat(token):
            raise self.error(f"expected {token!r}")

    def ident(self) -> str:
        self.ws()
        m = _IDENT.match(self.s, self.i)
        if not m:
            raise self.error("expected a name")
        self.i = m.end()
        return m.group(0)

    # -- grammar
    def expression(self) -> Node:
        cond = self.binary(0)
        if self.peek("?") and not self.peek("??"):
            self.i += 1
            yes = self.expression()
            self.expect(":")
            no = self.expression()
            return lambda sc: eval_cond(cond, yes, no, sc)
        return cond

    _LEVELS = (("||",), ("&&",), ("==", "!="), (">=", "<=", ">", "<"), ("+", "-"), ("*", "/", "%"))

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while True:
            self.ws()
            op = next((o for o in self._LEVELS[level] if self.s.startswith(o, self.i)), None)
            if op is None or (op in ("<", ">") and self.s.startswith(op + op, self.i)):
                return left
            if op == "-" and self.s.startswith("->", self.i):
                return left
            self.i += len(op)
            right = self.binary(level + 1)
            left = binop_node(op, left, right)

    def unary(self) -> Node:
        if self.eat("!"):
            inner = self.unary()
            return lambda sc: not to_bool(inner(sc))
        if self.peek("-") and not self.s[self.i + 1 : self.i + 2].isdigit():
            self.i += 1
            inner = self.unary()
            return lambda sc: -to_num(inner(sc))
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while True:
            if self.peek("[*]") or self.peek(".*"):
                self.i += 3 if self.s.startswith("[*]", self.i) else 2
                rest = self.splat_rest()
                node = splat_node(node, rest)
            elif self.peek("["):
                self.i += 1
                key = self.expression()
                self.expect("]")
                node = index_node(node, key)
            elif self.peek(".") and not self.s[self.i + 1 : self.i + 2].isdigit():
                self.i += 1
                name = self.ident()
                node = attr_node(node, name)
            elif self.peek(".") and self.s[self.i + 1 : self.i + 2].isdigit():
                self.i += 1
                m = re.compile(r"\d+").match(self.s, self.i)
                assert m is not None
                self.i = m.end()
                node = index_node(node, const_node(int(m.group(0))))
            else:
                return node

    def splat_rest(self) -> list[tuple[str, Any]]:
        steps: list[tuple[str, Any]] = []
        while True:
            if self.peek(".") and not self.peek(".*"):
                self.i += 1
                steps.append(("attr", self.ident()))
            elif self.peek("[") and not self.peek("[*]"):
                self.i += 1
                steps.append(("index", self.expression()))
                self.expect("]")
            else:
                return steps

    def primary(self) -> Node:
        self.ws()
        s, i = self.s, self.i
        if i >= len(s):
            raise self.error("unexpected end of expression")
        c = s[i]
        if c == '"':
            self.i += 1
            return self.template('"')
        if s.startswith("<<", i):
            return self.heredoc()
        if c == "(":
            self.i += 1
            inner = self.expression()
            self.expect(")")
            return inner
        if c == "[":
            self.i += 1
            return self.tuple_or_for()
        if c == "{":
            self.i += 1
            return self.object_or_for()
        m = _NUMBER.match(s, i) if (c.isdigit() or c == "-") else None
        if c == "-" and s[i + 1 : i + 2].isdigit():
            m = re.compile(r"-\d+(\.\d+)?([eE][+-]?\d+)?").match(s, i)
        if m:
            self.i = m.end()
            text = m.group(0)
            value: int | float = float(text) if any(ch in text for ch in ".eE") else int(text)
            return const_node(value)
        name = self.ident()
        if name in ("true", "false"):
            return const_node(name == "true")
        if name == "null":
            return const_node(None)
        if self.peek("("):
            self.i += 1
            return self.call(name)
        return lambda sc: lookup_name(sc, name)

    def call(self, name: str) -> Node:
        args: list[Node] = []
        expand = False
        while not self.eat(")"):
            args.append(self.expression())
            if self.eat("..."):
                expand = True
            if not self.eat(","):
                self.expect(")")
                break
        return lambda sc: call_function(sc, name, args, expand)

    def tuple_or_for(self) -> Node:
        m = _IDENT.match(self.s, self.i) if self.peek("for") else None
        if m and m.group(0) == "for":
            return self.for_expr("]")
        items: list[Node] = []
        while not self.eat("]"):
            items.append(self.expression())
            if not self.eat(","):
                self.expect("]")
                break
        return lambda sc: [n(sc) for n in items]

    def object_or_for(self) -> Node:
        m = _IDENT.match(self.s, self.i) if self.peek("for") else None
        if m and m.group(0) == "for":
            return self.for_expr("}")
        pairs: list[tuple[Node, Node]] = []
        while not self.eat("}"):
            self.ws()
            m = _IDENT.match(self.s, self.i)
            if m and re.compile(r"\s*(=(?!=)|:)").match(self.s, m.end()):
                key: Node = const_node(m.group(0))
                self.i = m.end()
            else:
                key = self.expression()
            if not (self.eat("=") or self.eat(":")):
                raise self.error("expected '=' or ':' after an object key")
            pairs.append((key, self.expression()))
            self.eat(",")
        return lambda sc: {to_str(k(sc)): v(sc) for k, v in pairs}

    def for_expr(self, close: str) -> Node:
        self.ident()  # "for"
        first = self.ident()
        second = self.ident() if self.eat(",") else None
        if self.ident() != "in":
            raise self.error("expected 'in'")
        collection = self.expression()
        self.expect(":")
        key_node = self.expression()
        value_node: Node | None = None
        if close == "}":
            self.expect("=>")
            value_node = self.expression()
            self.eat("...")
        cond: Node | None = None
        m = _IDENT.match(self.s, self.i) if self.peek("if") else None
        if m and m.group(0) == "if":
            self.i = m.end()
            cond = self.expression()
        self.expect(close)
        return lambda sc: eval_for(sc, first, second, collection, key_node, value_node, cond)

    def heredoc(self) -> Node:
        m = re.compile(r"<<(-?)([A-Za-z_][A-Za-z0-9_]*)\n").match(self.s, self.i)
        if not m:
            raise self.error("bad heredoc")
        end = re.compile(r"^[ \t]*" + m.group(2) + r"[ \t]*$", re.M).search(self.s, m.end())
        if not end:
            raise self.error("unterminated heredoc")
        body = self.s[m.end() : end.start()]
        self.i = end.end()
        if m.group(1):
            lines = body.split("\n")
            indent = min((len(ln) - len(ln.lstrip()) for ln in lines if ln.strip()), default=0)
            body = "\n".join(ln[indent:] for ln in lines)
        return _Parser(body).template_body(heredoc=True)

    def template(self, close: str) -> Node:
        """A quoted template; the opening quote has been read."""
        node = self.template_until(close, quoted=True)
        return node

    def template_body(self, heredoc: bool = False) -> Node:
        return self.template_until(None, quoted=False)

    def template_until(self, close: str | None, quoted: bool) -> Node:
        parts, _ = self._template_parts(close, quoted, stop_directives=())
        return concat_node(parts)

    def _template_parts(
        self, close: str | None, quoted: bool, stop_directives: tuple[str, ...]
    ) -> tuple[list[Node], str]:
        parts: list[Node] = []
        buf: list[str] = []
        s, n = self.s, len(self.s)

        def flush() -> None:
            if buf:
                parts.append(const_node("".join(buf)))
                buf.clear()

        while True:
            if self.i >= n:
                if close is not None:
                    raise self.error("unterminated string")
                flush()
                return parts, ""
            c = s[self.i]
            if close is not None and c == close:
                self.i += 1
                flush()
                return parts, ""
            if quoted and c == "\\":
                esc = s[self.i + 1 : self.i + 2]
                if esc in _ESC:
                    buf.append(_ESC[esc])
                    self.i += 2
                elif esc == "u":
                    buf.append(chr(int(s[self.i + 2 : self.i + 6], 16)))
                    self.i += 6
                elif esc == "U":
                    buf.append(chr(int(s[self.i + 2 : self.i + 10], 16)))
                    self.i += 10
                else:
                    raise self.error(f"invalid escape \\{esc}")
                continue
            if s.startswith("$${", self.i) or s.startswith("%%{", self.i):
                buf.append(c + "{")
                self.i += 3
                continue
            if s.startswith("${", self.i):
                flush()
                self.i += 2
                self.eat("~")
                parts.append(self.expression())
                self.eat("~")
                self.expect("}")
                continue
            if s.startswith("%{", self.i):
                self.i += 2
                self.eat("~")
                word = self.ident()
                if word in stop_directives:
                    self.eat("~")
                    self.expect("}")
                    flush()
                    return parts, word
                flush()
                if word == "if":
                    parts.append(self._if_directive(close, quoted))
                elif word == "for":
                    parts.append(self._for_directive(close, quoted))
                else:
                    raise self.error(f"unexpected %{{{word}}}")
                continue
            buf.append(c)
            self.i += 1

    def _if_directive(self, close: str | None, quoted: bool) -> Node:
        cond = self.expression()
        self.eat("~")
        self.expect("}")
        yes, stop = self._template_parts(close, quoted, ("else", "endif"))
        no: list[Node] = []
        if stop == "else":
            no, stop = self._template_parts(close, quoted, ("endif",))
        if stop != "endif":
            raise self.error("missing %{endif}")
        yes_node, no_node = concat_node(yes), concat_node(no)
        return lambda sc: yes_node(sc) if to_bool(cond(sc)) else no_node(sc)

    def _for_directive(self, close: str | None, quoted: bool) -> Node:
        first = self.ident()
        second = self.ident() if self.eat(",") else None
        if self.ident() != "in":
            raise self.error("expected 'in'")
        collection = self.expression()
        self.eat("~")
        self.expect("}")
        body, stop = self._template_parts(close, quoted, ("endfor",))
        if stop != "endfor":
            raise self.error("missing %{endfor}")
        body_node = concat_node(body)

        def run(sc: Scope) -> str:
            out, size = [], 0
            for k, v in items_of(collection(sc)):
                sc.budget.spend()
                names = {first: v} if second is None else {first: k, second: v}
                out.append(to_str(body_node(sc.child(**names))))
                size += len(out[-1])
                if size > TEXT:
                    raise text_error("a %{for} directive")
            return "".join(out)

        return run


def compile_expression(text: str) -> Node:
    parser = _Parser(text)
    node = parser.expression()
    parser.ws()
    if parser.i != len(text):
        raise parser.error("unexpected text after the expression")
    return node


def compile_template(text: str) -> Node:
    return _Parser(text).template_body()


def compile_value(raw: Any) -> Node:
    """A node for a value as python-hcl2 returns it: `"${expr}"`, `"\\"template\\""`, a bare word
    (`string`), a number, a bool, None, or lists/dicts of those."""
    if isinstance(raw, str):
        if raw.startswith("${") and raw.endswith("}") and _balanced(raw[2:-1]):
            return compile_expression(raw[2:-1])
        if len(raw) >= 2 and raw.startswith('"') and raw.endswith('"'):
            inner = raw[1:-1]
            if inner.startswith("<<"):
                return _Parser(inner).heredoc()
            return _Parser(raw[1:]).template('"')
        return compile_expression(raw)
    if isinstance(raw, list):
        items = [compile_value(v) for v in raw]
        return lambda sc: [n(sc) for n in items]
    if isinstance(raw, dict):
        pairs = [(_unquote(k), compile_value(v)) for k, v in raw.items() if not k.startswith("__")]
        return lambda sc: {k: n(sc) for k, n in pairs}
    return const_node(raw)


def _balanced(text: str) -> bool:
    """Whether `text` is one whole expression (not `a} x ${b`)."""
    depth, in_str, i = 0, False, 0
    while i < len(text):
        c = text[i]
        if in_str:
            if c == "\\":
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth < 0:
                return False
        i += 1
    return depth == 0


def _unquote(key: str) -> str:
    if len(key) >= 2 and key[0] == key[-1] == '"':
        return key[1:-1]
    return key


def evaluate(raw: Any, scope: Scope) -> Any:
    value = compile_value(raw)(scope)
    weigh(value, "this expression")
    return value
