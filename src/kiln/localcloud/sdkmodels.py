"""The official SDKs' models, read as data: the actions each product's SDK has and the shape of what
each answers, derived from the Tea model classes themselves (never from a list written by hand).

A Tea SDK declares one `<Action>ResponseBody` class per action; each attribute has a type hint
(`str`, `int`, `bool`, `float`, `List[...]` or another model class) and `to_map` writes it under its
wire name. `response_shape` walks that class and the classes of its attributes: the wire names come
from calling `to_map` with a marker in one attribute at a time, the types from the hints, and the
documented time format (`yyyy-MM-ddTHH:mmZ` or with seconds) from the comment the SDK generates
above the attribute, where it has one. The response check (tests/localcloud/test_shapes.py) and the
coverage page (`kiln.localcloud.coverage`) read them.

`SDKS` names the SDK package of each product localcloud answers (by its name in the registry); a
product added to the registry needs its SDK here, and the response check fails until it has one.
OSS (REST, its own front door) has a models package of another make: only its action list is read.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import typing
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

#: the registry's product name -> the official SDK package whose models document it
SDKS = {
    "Ecs": "alibabacloud_ecs20140526",
    "Vpc": "alibabacloud_vpc20160428",
    "Ram": "alibabacloud_ram20150501",
    "Oss": "alibabacloud_oss_v2",
}

MINUTES = "yyyy-MM-ddTHH:mmZ"
SECONDS = "yyyy-MM-ddTHH:mm:ssZ"
_DOCUMENTED_TIME = re.compile(r"y{4}-M{2}-d{2}T[Hh]{2}:mm(:ss)?Z", re.IGNORECASE)
_ASSIGNED = re.compile(r"^\s*self\.(\w+) = \w+\s*$")


@dataclass(frozen=True)
class Scalar:
    type: type  # str, int, bool or float
    time: str = ""  # MINUTES or SECONDS when the SDK's comment documents the field as a time


@dataclass(frozen=True)
class ListOf:
    item: Shape


@dataclass(frozen=True)
class Struct:
    model: str  # the SDK class, to name it in a finding
    fields: dict[str, Shape] = field(default_factory=dict)  # wire name -> shape
    times: dict[str, str] = field(default_factory=dict)  # wire name -> MINUTES / SECONDS (documented)


Shape = Scalar | ListOf | Struct


def models(product: str) -> ModuleType:
    """The models module of `product`'s SDK (ImportError when it is not installed)."""
    return importlib.import_module(f"{SDKS[product]}.models")


def installed(product: str) -> bool:
    try:
        models(product)
    except ImportError:
        return False
    return True


def actions(product: str) -> list[str]:
    """Every action `product`'s SDK has: one `<Action>ResponseBody` model each in a Tea SDK; one
    `<Operation>Request` and `<Operation>Result` pair each in OSS's (a REST API)."""
    names = dir(models(product))
    bodies = [name.removesuffix("ResponseBody") for name in names if name.endswith("ResponseBody")]
    if bodies:
        return sorted(bodies)
    results = {name.removesuffix("Result") for name in names if name.endswith("Result")}
    return sorted(results & {name.removesuffix("Request") for name in names if name.endswith("Request")})


def response_shape(product: str, action: str) -> Struct:
    """What `action` of `product` answers, as its SDK's model declares it."""
    return _struct(getattr(models(product), f"{action}ResponseBody"))


class _Marker:
    """Put into one attribute to see where `to_map` writes it (a model's to_map calls ours)."""

    def __init__(self, attr: str) -> None:
        self.attr = attr

    def to_map(self) -> _Marker:
        return self


def _wire_names(cls: type) -> dict[str, str]:
    """attribute -> the key `cls.to_map` writes it under."""
    names: dict[str, str] = {}
    for attr in inspect.signature(vars(cls)["__init__"]).parameters:
        if attr == "self":
            continue
        marker = _Marker(attr)
        for probe in (marker, [marker]):  # a scalar or a model; else a list of models
            model = cls()
            setattr(model, attr, probe)
            try:
                written = model.to_map()
            except TypeError:  # a list's to_map iterating over the marker
                continue
            for key, value in written.items():
                if value is marker or value == [marker]:
                    names[attr] = key
            if attr in names:
                break
        if attr not in names:
            raise ValueError(f"{cls.__name__}.to_map does not write {attr}")
    return names


def _documented_times(cls: type) -> dict[str, str]:
    """attribute -> the time format the comment above its assignment in __init__ documents."""
    found: dict[str, str] = {}
    comment: list[str] = []
    for line in inspect.getsource(vars(cls)["__init__"]).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped)
            continue
        assigned = _ASSIGNED.match(line)
        if assigned:
            match = _DOCUMENTED_TIME.search(" ".join(comment))
            if match:
                found[assigned.group(1)] = SECONDS if match.group(1) else MINUTES
        comment = []
    return found


def _shape(hint: Any) -> Shape:
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return ListOf(_shape(item))
    if hint in (str, int, bool, float):
        return Scalar(hint)
    if isinstance(hint, type):
        return _struct(hint)
    raise ValueError(f"no shape for the type hint {hint!r}")


@functools.cache
def _struct(cls: type) -> Struct:
    module = importlib.import_module(cls.__module__)
    hints = typing.get_type_hints(vars(cls)["__init__"], vars(module))
    times = _documented_times(cls)
    struct = Struct(cls.__name__)
    for attr, key in _wire_names(cls).items():
        shape = _shape(hints[attr])
        if isinstance(shape, Scalar) and attr in times:
            shape = Scalar(shape.type, times[attr])
            struct.times[key] = times[attr]
        struct.fields[key] = shape
    return struct


#: a field whose content the model keeps as raw XML, or as a map: any content is what it declares
ANY = Scalar(object)
DATETIME = "ISO 8601 UTC"  # OSS's times in XML bodies: 2012-02-24T08:42:32.000Z


def oss_result_shape(operation: str) -> Struct:
    """The XML body `operation` of OSS answers (its root element's children), as the OSS SDK's
    `<Operation>Result` model declares it: its `_attribute_map` entries tagged `xml` (a `rename`
    may be a path, `Buckets/Bucket`; a type `[X]` repeats the element; other types are the model
    classes its `_dependency_map` makes)."""
    return _oss_struct(getattr(models("Oss"), f"{operation}Result"))


@functools.cache
def _oss_struct(cls: type) -> Struct:
    struct = Struct(cls.__name__)
    for spec in vars(cls).get("_attribute_map", getattr(cls, "_attribute_map", {})).values():
        if spec.get("tag") != "xml":
            continue
        *outer, last = str(spec.get("rename")).split("/")
        target = struct
        for name in outer:
            inner = target.fields.setdefault(name, Struct(f"{cls.__name__}.{name}"))
            assert isinstance(inner, Struct)
            target = inner
        target.fields[last] = _oss_shape(cls, str(spec.get("type", "str")).split(",")[0])
    return struct


def _oss_shape(cls: type, kind: str) -> Shape:
    if kind.startswith("[") and kind.endswith("]"):
        return ListOf(_oss_shape(cls, kind[1:-1]))
    scalars: dict[str, Shape] = {
        "": Scalar(str),
        "str": Scalar(str),
        "int": Scalar(int),
        "bool": Scalar(bool),
        "float": Scalar(float),
        "datetime": Scalar(str, DATETIME),
        "xml": ANY,
        "dict": ANY,
    }
    if kind in scalars:
        return scalars[kind]
    made = getattr(cls, "_dependency_map", {}).get(kind, {}).get("new")
    model: type = type(made()) if made else getattr(models("Oss"), kind)
    return _oss_struct(model)
