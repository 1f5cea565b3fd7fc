"""The RPC front door: one endpoint answering the ECS, VPC and admin RPC APIs.

A request carries Action and Version (query, form body, or the V3 x-acs-* headers) and a V1 or V3
signature. The door verifies the caller, finds the action of that product, applies the latency
profile and injected faults, runs the handler (once per ClientToken) and answers JSON or XML with
the RequestId; every failure, a bug included, is an API error with a RequestId, as on the cloud.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator

from aiohttp import web

from kiln.localcloud import errors, incoming
from kiln.localcloud.api import requestlog
from kiln.localcloud.api.registry import PRODUCTS, Json, find
from kiln.localcloud.api.request import Call
from kiln.localcloud.auth import Authenticator, Caller
from kiln.localcloud.errors import ApiError
from kiln.localcloud.incoming import asked_format
from kiln.localcloud.model.cloud import Cloud
from kiln.localcloud.wire import render_json, render_xml, wants_xml

log = logging.getLogger("kiln.localcloud")

# Parameters that differ between two sends of the same request and so do not count for ClientToken.
_VOLATILE = {
    "Signature",
    "SignatureNonce",
    "Timestamp",
    "AccessKeyId",
    "SecurityToken",
    "Format",
    "SignatureMethod",
    "SignatureVersion",
    "ClientToken",
    "Version",
}


class TokenLocks:
    """One lock per client token while requests with it run; the last one to leave removes it,
    whether its request succeeded or failed."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class RpcFrontDoor:
    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.auth = Authenticator(cloud.store)
        self.token_locks = TokenLocks()

    async def handle(self, request: web.Request) -> web.Response:
        began = time.monotonic()
        request_id = str(uuid.uuid4()).upper()
        headers = {k.lower(): v for k, v in request.headers.items()}
        # What the request says it is, for the log and an early error; what runs is what was signed.
        action = headers.get("x-acs-action", "")
        version = headers.get("x-acs-version", "")
        raw_query, accept = request.rel_url.raw_query_string, headers.get("accept", "")
        xml = wants_xml(asked_format(raw_query), accept)  # until the parameters are read
        host = headers.get("host", "localcloud")
        caller: Caller | None = None
        status, code = 200, ""
        try:
            body = await incoming.read_body(request)
            xml = wants_xml(asked_format(raw_query, body), accept)
            query, params = incoming.parse(request, body)
            action = params.get("Action") or action
            version = params.get("Version") or version
            xml = wants_xml(params, accept)
            caller = self.auth.verify(request.method, request.path, query, params, headers, body)
            action, version = caller.action, caller.version
            data = await self.dispatch(caller, action, version, params, request_id)
            response = _respond(200, f"{action}Response", {"RequestId": request_id, **data}, xml)
        except ApiError as err:
            status, code = err.status, err.code
            response = error_response(err, request_id, host, version, xml)
        except Exception as err:  # a bug here must still look like the cloud's InternalError to clients
            log.exception("action %s failed", action)
            status, code = 500, "InternalError"
            response = error_response(
                errors.INTERNAL_ERROR(type(err).__name__), request_id, host, version, xml
            )
        requestlog.record(self.cloud, request_id, action, caller, status, code, began)
        return response

    async def dispatch(
        self, caller: Caller, action: str, version: str, params: dict[str, str], request_id: str
    ) -> Json:
        if not action:
            raise errors.missing("Action")
        product = PRODUCTS.get(version)
        if product is None:
            raise errors.INVALID_VERSION(version)
        found = find(product, action)
        call = Call(action, params, caller.key.access_key_id, request_id, product.name)
        if not product.emulated:
            return await found.handler(self.cloud, call)
        delay, fault = self.cloud.faults.match(action)
        delay += self.cloud.profile.call
        if delay:
            await asyncio.sleep(delay)
        if fault is not None:
            raise fault
        token = params.get("ClientToken")
        if not token:
            return await found.handler(self.cloud, call)
        token_key = f"{caller.key.access_key_id}|{action}|{token}"
        digest = hashlib.sha256(
            json.dumps(sorted((k, v) for k, v in params.items() if k not in _VOLATILE)).encode()
        ).hexdigest()
        async with self.token_locks.hold(token_key):
            saved = self.cloud.store.client_token(token_key)
            if saved is not None:
                if saved[0] != digest:
                    raise errors.IDEMPOTENT_PARAMETER_MISMATCH()
                return saved[1]
            result = await found.handler(self.cloud, call)
            self.cloud.store.save_client_token(token_key, digest, result)
            return result


def _respond(status: int, root: str, data: Json, xml: bool) -> web.Response:
    if xml:
        return web.Response(
            status=status, body=render_xml(root, data), content_type="text/xml", charset="utf-8"
        )
    return web.Response(
        status=status, body=render_json(data), content_type="application/json", charset="utf-8"
    )


def error_response(err: ApiError, request_id: str, host: str, version: str, xml: bool) -> web.Response:
    product = PRODUCTS[version].name if version in PRODUCTS else "Ecs"
    data = {
        "RequestId": request_id,
        "HostId": host,
        "Code": err.code,
        "Message": err.message,
        "Recommend": f"http://{host}/console#request-{request_id} (troubleshoot {product}: {err.code})",
    }
    return _respond(err.status, "Error", data, xml)
