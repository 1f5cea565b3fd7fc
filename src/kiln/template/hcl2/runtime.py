"""Evaluating HCL expressions: values, operators, traversals, calls and the namespaces
(`var`, `local`, `source`, `build`...) that expressions read. The parser (expr.py) builds its nodes
from these pieces."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kiln.errors import TemplateError

from .limits import Budget, check_text, weigh


class HCLError(TemplateError):
    pass


class HclDiagnostic(TemplateError):
    """An error about a place in an HCL file, which Packer prints as
    `Error: SUMMARY\n\n  on FILE line N:\n  (source code not available)\n\nDETAIL\n\n`."""

    def __init__(self, summary: str, file: str, line: int, detail: str = "") -> None:
        where = f" (on {file} line {line})" if file and line else ""
        super().__init__(f"{summary}{where}" + (f": {detail}" if detail else ""))
        self.summary, self.file, self.line, self.detail = summary, file, line, detail

    def __str__(self) -> str:
        return self.message

    def packer_text(self) -> str:
        text = self.summary + "\n\n"
        if self.file and self.line:
            text += f"  on {self.file} line {self.line}:\n  (source code not available)\n\n"
        if self.detail:
            text += self.detail + "\n\n"
        return text


@dataclass(frozen=True)
class Deferred:
    """A value known only while building: `go` is the `{{ }}` pipeline that yields it."""

    go: str

    def __str__(self) -> str:
        return "{{ " + self.go + " }}"


#: functions that exist in both languages, so that `upper(build.ID)` can be deferred too
_DEFERRABLE = {"upper": "upper", "lower": "lower"}


class Scope:
    def __init__(
        self,
        variables: Mapping[str, Any],
        functions: Mapping[str, Callable[..., Any]],
        budget: Budget | None = None,
    ) -> None:
        self.variables = dict(variables)
        self.functions = functions
        self.budget = budget or Budget()

    def child(self, **names: Any) -> Scope:
        scope = Scope(self.variables, self.functions, self.budget)
        scope.variables.update(names)
        return scope


# A node is a closure: scope -> value. Parsing builds closures once; evaluation just calls them.
Node = Callable[[Scope], Any]


def const_node(value: Any) -> Node:
    return lambda sc: value


def concat_node(parts: list[Node]) -> Node:
    if not parts:
        return const_node("")
    if len(parts) == 1:
        only = parts[0]
        return lambda sc: only(sc) if isinstance(only(sc), Deferred) else to_str(only(sc))
    return lambda sc: check_text("".join(to_str(p(sc)) for p in parts), "a template string")


def to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return num_text(value)
    if isinstance(value, Deferred):
        return str(value)
    if value is None:
        raise HCLError("cannot use a null value in a string")
    raise HCLError(f"cannot use a {_type(value)} value in a string")


def num_text(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "tuple"
    if isinstance(value, dict):
        return "object"
    return "null" if value is None else type(value).__name__


def to_num(value: Any) -> float:
    if isinstance(value, bool):
        raise HCLError("a number is required, got bool")
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return int(value) if re.fullmatch(r"-?\d+", value) else float(value)
        except ValueError:
            raise HCLError(f"a number is required, got string {value!r}") from None
    raise HCLError(f"a number is required, got {_type(value)}")


def to_bool(value: Any) -> bool:
    if value is True or value is False:
        return bool(value)
    if value in ("true", "false"):
        return bool(value == "true")
    raise HCLError(f"a bool is required, got {_type(value)}")


def eval_cond(cond: Node, yes: Node, no: Node, sc: Scope) -> Any:
    return yes(sc) if to_bool(cond(sc)) else no(sc)


def binop_node(op: str, left: Node, right: Node) -> Node:
    def run(sc: Scope) -> Any:
        if op == "||":
            return to_bool(left(sc)) or to_bool(right(sc))
        if op == "&&":
            return to_bool(left(sc)) and to_bool(right(sc))
        a, b = left(sc), right(sc)
        if op == "==":
            return a == b
        if op == "!=":
            return a != b
        x, y = to_num(a), to_num(b)
        match op:
            case "+":
                return _bounded(x + y)
            case "-":
                return _bounded(x - y)
            case "*":
                return _bounded(x * y)
            case "/":
                if y == 0:
                    raise HCLError("divide by zero")
                result = x / y
                return int(result) if result.is_integer() else result
            case "%":
                if y == 0:
                    raise HCLError("divide by zero")
                return x % y
            case ">":
                return x > y
            case "<":
                return x < y
            case ">=":
                return x >= y
        return x <= y

    return run


def _bounded(number: float) -> float:
    """cty's numbers have 512 bits of precision: a larger integer becomes a float (or infinity)
    instead of growing without end (`x * x` in a chain of locals)."""
    if isinstance(number, int) and number.bit_length() > 512:
        return float("inf") if number > 0 else float("-inf")
    return number


def lookup_name(sc: Scope, name: str) -> Any:
    if name in sc.variables:
        return sc.variables[name]
    raise HCLError(f'unknown name "{name}"')


def _get(value: Any, key: Any) -> Any:
    if isinstance(value, Deferred):
        raise HCLError("cannot index a value known only during the build")
    if isinstance(value, dict):
        k = to_str(key)
        if k not in value:
            raise HCLError(f'this object does not have an attribute named "{k}"')
        return value[k]
    if isinstance(value, list):
        idx = int(to_num(key))
        if not 0 <= idx < len(value):
            raise HCLError(f"the given index {idx} is out of range (length {len(value)})")
        return value[idx]
    raise HCLError(f"cannot index a {_type(value)} value")


def attr_node(node: Node, name: str) -> Node:
    def run(sc: Scope) -> Any:
        value = node(sc)
        if isinstance(value, _Namespace):
            return value.get(name)
        return _get(value, name)

    return run


def index_node(node: Node, key: Node) -> Node:
    def run(sc: Scope) -> Any:
        value = node(sc)
        if isinstance(value, _Namespace):
            return value.get(to_str(key(sc)))
        return _get(value, key(sc))

    return run


def splat_node(node: Node, steps: list[tuple[str, Any]]) -> Node:
    def run(sc: Scope) -> Any:
        value = node(sc)
        items = value if isinstance(value, list) else ([] if value is None else [value])
        out = []
        for item in items:
            for kind, arg in steps:
                item = _get(item, arg if kind == "attr" else arg(sc))
            out.append(item)
        return out

    return run


def items_of(value: Any) -> list[tuple[Any, Any]]:
    if isinstance(value, dict):
        return sorted(value.items())
    if isinstance(value, list):
        return list(enumerate(value))
    raise HCLError(f"cannot iterate over a {_type(value)} value")


def eval_for(
    sc: Scope, first: str, second: str | None, coll: Node, key: Node, value: Node | None, cond: Node | None
) -> Any:
    out_list: list[Any] = []
    out_map: dict[str, Any] = {}
    for k, v in items_of(coll(sc)):
        sc.budget.spend()
        inner = sc.child(**({first: v} if second is None else {first: k, second: v}))
        if cond is not None and not to_bool(cond(inner)):
            continue
        if value is None:
            out_list.append(key(inner))
        else:
            out_map[to_str(key(inner))] = value(inner)
    return out_list if value is None else out_map


def call_function(sc: Scope, name: str, args: list[Node], expand: bool) -> Any:
    if name in ("can", "try"):
        return _can_try(sc, name, args)
    fn = sc.functions.get(name)
    if fn is None:
        raise HCLError(f'there is no function named "{name}"')
    values = [a(sc) for a in args]
    if expand and values:
        values = values[:-1] + list(values[-1])
    if any(isinstance(v, Deferred) for v in values):
        if name in _DEFERRABLE and len(values) == 1:
            return Deferred(f"{_DEFERRABLE[name]} ({values[0].go})")
        raise HCLError(f"{name}(): a value known only during the build (build.*) cannot be used here")
    what = f"{name}()"
    for value in values:
        weigh(value, what)
    try:
        result = fn(*values)
    except TemplateError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
        raise HCLError(f"error calling {name}(): {exc}") from None
    if isinstance(result, str):
        check_text(result, what)
    elif isinstance(result, list | dict):
        weigh(result, what)
    return result


def _can_try(sc: Scope, name: str, args: list[Node]) -> Any:
    for arg in args:
        try:
            value = arg(sc)
        except TemplateError:
            if name == "can":
                return False
            continue
        return True if name == "can" else value
    if name == "can":
        return False
    raise HCLError("try(): no expression succeeded")


class _Namespace:
    """`var`, `local`, `source`, `build`, `path`...: attribute access with a clear error."""

    def __init__(self, kind: str, values: Mapping[str, Any], deferred: Callable[[str], Any] | None = None):
        self.kind = kind
        self.values = values
        self.deferred = deferred

    def get(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        if self.deferred is not None:
            return self.deferred(name)
        raise HCLError(f'unsupported attribute: "{self.kind}.{name}" is not declared')


def namespace(kind: str, values: Mapping[str, Any], deferred: Callable[[str], Any] | None = None) -> Any:
    return _Namespace(kind, values, deferred)
