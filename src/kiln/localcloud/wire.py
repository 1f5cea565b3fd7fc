"""What goes over the wire: responses (and the catalogue's errors) rendered as JSON or XML.

XML mirrors the JSON the way the real API does: the root element is `<Action>Response`, a list under
key K becomes repeated `<K>` elements (`{"Regions": {"Region": [a, b]}}` ->
`<Regions><Region>a</Region><Region>b</Region></Regions>`), errors are `<Error>...</Error>`.
"""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape


def render_json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _xml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return escape(str(value))


def _xml_children(data: dict[str, Any], out: list[str]) -> None:
    for key, value in data.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            out.append(f"<{key}>")
            if isinstance(item, dict):
                _xml_children(item, out)
            else:
                out.append(_xml_value(item))
            out.append(f"</{key}>")


def render_xml(root: str, data: dict[str, Any]) -> bytes:
    out = ['<?xml version="1.0" encoding="UTF-8"?>', f"<{root}>"]
    _xml_children(data, out)
    out.append(f"</{root}>")
    return "".join(out).encode()


def wants_xml(params: dict[str, str], accept: str) -> bool:
    """`Format` wins; then the Accept header (the Tea SDKs' V3 requests say application/json); XML is the default."""
    fmt = params.get("Format", "").lower()
    if fmt in ("json", "xml"):
        return fmt == "xml"
    return "json" not in accept.lower()
