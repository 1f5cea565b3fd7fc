"""Reading a request within bounds, before anything is parsed.

The query string, the body and the number of parameters are each bounded, and checked on the raw
bytes first (a count of separators), so that a huge form never reaches the parser nor holds the
event loop. The bounds leave room for the largest request the real API accepts (UserData may be
32 KB of base64, which the Tea SDKs send in the query string). What goes past a bound is answered as
an API error like any other, in the format the request asked for.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from aiohttp import web

from kiln.localcloud import errors
from kiln.localcloud.errors import ApiError

# 32 KB of UserData is 43,692 bytes of base64, up to 131,076 bytes percent-encoded (`+` and `/`
# take three bytes each), beside the other parameters.
MAX_QUERY = 192 * 1024
MAX_BODY = 1024 * 1024
MAX_PARAMS = 2000
# aiohttp's own bound on the request line, past which it answers by itself (plain text): well above
# MAX_QUERY, so that a query too long for the API still gets the API's error.
REQUEST_LINE = 4 * MAX_QUERY
# aiohttp's handler arguments: the request line, each header line (V3 signs headers, an STS token is
# long) bounded well above what any SDK sends.
HANDLER_LIMITS = {"max_line_size": REQUEST_LINE, "max_field_size": 64 * 1024}

_FORMAT = re.compile(r"(?:^|&)Format=([A-Za-z]{3,4})(?=&|$)")
FORM = "application/x-www-form-urlencoded"


def asked_format(raw_query: str, body: bytes = b"") -> dict[str, str]:
    """The `Format` a request asks for, found without parsing it (for an error answered early)."""
    for text in (raw_query, body.decode("latin-1")):
        found = _FORMAT.search(text)
        if found:
            return {"Format": found.group(1)}
    return {}


async def read_body(request: web.Request) -> bytes:
    """The body, refused (413) past MAX_BODY without reading it when its length is declared."""
    declared = request.content_length
    if declared is not None and declared > MAX_BODY:
        raise body_too_large(declared)
    try:
        return await request.read()  # the app's client_max_size is MAX_BODY: a chunked body stops there
    except web.HTTPRequestEntityTooLarge:
        raise body_too_large(None) from None


def body_too_large(size: int | None) -> ApiError:
    said = f"{size} bytes, more" if size is not None else "more"
    return errors.BODY_TOO_LARGE(said=said, limit=MAX_BODY)


def parse(request: web.Request, body: bytes) -> tuple[dict[str, str], dict[str, str]]:
    """(query, params): params are the query and the form body together."""
    raw_query = request.rel_url.raw_query_string
    if len(raw_query) > MAX_QUERY:
        raise errors.QUERY_TOO_LARGE(size=len(raw_query), limit=MAX_QUERY)
    form = body if body and request.content_type == FORM else b""
    count = (raw_query.count("&") + 1 if raw_query else 0) + (form.count(b"&") + 1 if form else 0)
    if count > MAX_PARAMS:
        raise errors.TOO_MANY_PARAMETERS(count=count, limit=MAX_PARAMS)
    query = {k: v for k, v in request.query.items()}
    params = dict(query)
    if form:
        params.update(parse_qsl(form.decode("utf-8", "replace"), keep_blank_values=True))
    return query, params
