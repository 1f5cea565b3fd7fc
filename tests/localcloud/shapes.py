"""The response check's tools: official SDK clients that keep every answer as it came over the wire
(JSON, and the same answer asked again as XML), and the comparison of an answer with the shape the
SDK's model declares (kiln.localcloud.sdkmodels).

`Recording(EcsClient)` overrides the one method every typed call goes through (`call_api`): it sends
the call as the SDK built it, with a ClientToken, then sends it again with `Format=XML` and the same
token, so localcloud answers the XML from the same result (a mutating call is not done twice).
"""

from __future__ import annotations

import copy
import re
import uuid
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from alibabacloud_oss_v2.transport.requests_client import RequestsHttpClient
from alibabacloud_tea_openapi.utils_models import OpenApiRequest, Params
from darabonba.runtime import RuntimeOptions

from kiln.localcloud.sdkmodels import DATETIME, MINUTES, SECONDS, ListOf, Scalar, Shape, Struct

TIME_PATTERNS = {
    MINUTES: re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\dZ"),
    SECONDS: re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"),
}


@dataclass
class Answer:
    json: dict[str, Any]
    xml: str


@dataclass
class Recorder:
    answers: dict[tuple[str, str], list[Answer]] = field(default_factory=lambda: defaultdict(list))


def recording(client_class: type, product: str, recorder: Recorder) -> type:
    """A subclass of an SDK client that records each answer under (product, action)."""

    class Recording(client_class):  # type: ignore[misc, valid-type]
        def call_api(
            self, params: Params, request: OpenApiRequest, runtime: RuntimeOptions
        ) -> dict[str, Any]:
            request.query = {"ClientToken": uuid.uuid4().hex, **(request.query or {})}
            as_xml = copy.deepcopy(request)
            result: dict[str, Any] = super().call_api(params, request, runtime)
            as_xml.query["Format"] = "XML"
            xml_params = copy.copy(params)
            xml_params.body_type = "string"
            xml = super().call_api(xml_params, as_xml, runtime)["body"]
            recorder.answers[product, params.action].append(Answer(result["body"], xml))
            return result

    return Recording


def call(client: Any, models: Any, action: str, **fields: Any) -> dict[str, Any]:
    """`action` through the SDK's typed method, its request built from the API's field names
    (`RegionId=..., Tag=[{"Key": ...}]`); the answer as the SDK read it, back as the API names it."""
    request = getattr(models, f"{action}Request")().from_map(fields)
    method = sdk_methods(type(client))[action.lower()]
    answer: dict[str, Any] = getattr(client, method)(request).body.to_map()
    return answer


def sdk_methods(client_class: type) -> dict[str, str]:
    """An SDK client's methods by the API's name of their action, lower case (`describevswitches`)."""
    return {
        name.replace("_", ""): name
        for name in dir(client_class)
        if not name.startswith("_") and not name.endswith(("_async", "_with_options"))
    }


def mismatches(shape: Shape, value: Any, path: str) -> Iterator[str]:
    """What in `value` (a JSON answer, or part of it at `path`) the model does not declare as it is."""
    if isinstance(shape, Struct):
        if not isinstance(value, dict):
            yield f"{path}: {_kind(value)} where the model has an object ({shape.model})"
            return
        for key, item in value.items():
            inner = shape.fields.get(key)
            where = f"{path}.{key}" if path else key
            if inner is None:
                yield f"{where}: not in the model ({shape.model})"
            else:
                yield from mismatches(inner, item, where)
    elif isinstance(shape, ListOf):
        if not isinstance(value, list):
            yield f"{path}: {_kind(value)} where the model has a list"
            return
        for item in value:
            yield from mismatches(shape.item, item, f"{path}[]")
    else:
        yield from _scalar(shape, value, path)


def _scalar(shape: Scalar, value: Any, path: str) -> Iterator[str]:
    wanted = shape.type
    ok = (
        isinstance(value, (int, float)) and not isinstance(value, bool)
        if wanted is float
        else isinstance(value, wanted) and (wanted is bool or not isinstance(value, bool))
    )
    if not ok:
        yield f"{path}: {_kind(value)} {value!r} where the model has {wanted.__name__}"
    elif shape.time and value and not TIME_PATTERNS[shape.time].fullmatch(value):
        yield f"{path}: {value!r} is not {shape.time} as documented"
    elif _undocumented_time(shape, value, path) and not any(
        p.fullmatch(value) for p in TIME_PATTERNS.values()
    ):
        yield f"{path}: {value!r} is neither {MINUTES} nor {SECONDS}"


def _undocumented_time(shape: Scalar, value: Any, path: str) -> bool:
    """A time the model does not document the format of: the API writes each in UTC, one of the two ways."""
    return shape.type is str and bool(value) and not shape.time and path.rsplit(".", 1)[-1].endswith("Time")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", type(None): "null"}.get(type(value), type(value).__name__)


def leaves(data: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """A JSON answer as XML would say it: (element path, text) for each leaf, lists as repeated
    elements, a container with nothing in it as an empty element."""
    out: list[tuple[tuple[str, ...], str]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            for item in value if isinstance(value, list) else [value]:
                out.extend(leaves(item, (*path, key)))
        return out or [(path, "")]
    if isinstance(data, bool):
        return [(path, "true" if data else "false")]
    return [(path, "" if data is None else str(data))]


def xml_leaves(text: str) -> list[tuple[tuple[str, ...], str]]:
    """The same for an XML answer (the root element, `<Action>Response`, left out)."""
    out: list[tuple[tuple[str, ...], str]] = []

    def walk(element: ET.Element, path: tuple[str, ...]) -> None:
        children = list(element)
        if not children:
            out.append((path, element.text or ""))
        for child in children:
            walk(child, (*path, child.tag))

    walk(ET.fromstring(text), ())
    return out


def has_items(data: Any) -> bool:
    """Some list in `data` has something in it."""
    if isinstance(data, list):
        return bool(data)
    if isinstance(data, dict):
        return any(has_items(value) for value in data.values())
    return False


_XML_TEXT = {
    int: re.compile(r"-?\d+"),
    float: re.compile(r"-?\d+(\.\d+)?"),
    bool: re.compile(r"true|false"),
}
_OSS_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def xml_mismatches(shape: Shape, element: ET.Element, path: str) -> Iterator[str]:
    """What in an XML `element` (an OSS answer, at `path`) its model does not declare as it is."""
    if isinstance(shape, Scalar):
        if shape.type is object:
            return
        if len(element):
            yield f"{path}: an element with children where the model has {shape.type.__name__}"
            return
        text = element.text or ""
        pattern = _OSS_TIME if shape.time == DATETIME else _XML_TEXT.get(shape.type)
        if text and pattern is not None and not pattern.fullmatch(text):
            yield f"{path}: {text!r} is not {shape.time or shape.type.__name__}"
        return
    if isinstance(shape, ListOf):
        yield from xml_mismatches(shape.item, element, f"{path}[]")
        return
    if "." in shape.fields:  # the element's own text (GetBucketLocation's LocationConstraint)
        yield from xml_mismatches(shape.fields["."], element, path)
        return
    children: dict[str, list[ET.Element]] = defaultdict(list)
    for child in element:
        children[child.tag].append(child)
    for tag, found in children.items():
        inner = shape.fields.get(tag)
        where = f"{path}.{tag}" if path else tag
        if inner is None:
            yield f"{where}: not in the model ({shape.model})"
            continue
        if len(found) > 1 and not isinstance(inner, ListOf):
            yield f"{where}: repeated where the model has one"
        for child in found:
            yield from xml_mismatches(inner, child, where)


class RecordingHttp(RequestsHttpClient):  # type: ignore[misc]
    """The OSS SDK's own HTTP client, keeping each answer's body (streamed downloads left out)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bodies: list[bytes] = []

    def send(self, request: Any, **kwargs: Any) -> Any:
        streamed = bool(kwargs.get("stream"))
        response = super().send(request, **kwargs)
        if not streamed:
            self.bodies.append(response.content)
        return response
