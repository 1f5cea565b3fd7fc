"""The HTTP side: one endpoint answering ECS and VPC RPC calls, the console, fault injection, the request log."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from typing import Any

from aiohttp import web

from kiln.localcloud import (
    actions_images,
    actions_instances,
    actions_keypairs,
    actions_network,
    actions_tags,
    incoming,
)
from kiln.localcloud.auth import Authenticator, Caller
from kiln.localcloud.cloud import ACTIONS, Call, Cloud
from kiln.localcloud.faults import Faults
from kiln.localcloud.incoming import asked_format
from kiln.localcloud.profile import LatencyProfile
from kiln.localcloud.store import LogEntry
from kiln.localcloud.wire import ApiError, render_json, render_xml, wants_xml

log = logging.getLogger("kiln.localcloud")

# Importing these modules registers their actions in ACTIONS.
ACTION_MODULES = (actions_images, actions_instances, actions_keypairs, actions_network, actions_tags)
VERSIONS = {"2014-05-26": "Ecs", "2016-04-28": "Vpc"}
ADMIN_VERSION = "kiln-localcloud"
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


class Server:
    def __init__(self, cloud: Cloud, listen: str = "127.0.0.1") -> None:
        self.cloud = cloud
        self.listen = listen  # the address served on: the console answers to it (and to loopback)
        self.auth = Authenticator(cloud.store)
        self.faults = Faults()
        self._token_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self.app = web.Application(client_max_size=incoming.MAX_BODY)
        from kiln.localcloud import console

        console.add_routes(self.app, self.cloud, self.listen)
        self.app.router.add_route("*", "/{tail:.*}", self.api)

    # ---------------------------------------------------------------------------------------------
    async def api(self, request: web.Request) -> web.Response:
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
            data = await self._dispatch(caller, action, version, params, request_id)
            data = {"RequestId": request_id, **data}
            response = self._respond(200, action, data, xml)
        except ApiError as err:
            status, code = err.status, err.code
            response = self._error(err, request_id, host, action, version, xml)
        except Exception as err:  # a bug here must still look like the cloud's InternalError to clients
            log.exception("action %s failed", action)
            status, code = 500, "InternalError"
            response = self._error(
                ApiError(
                    500,
                    "InternalError",
                    f"The request processing has failed due to some unknown error. ({type(err).__name__})",
                ),
                request_id,
                host,
                action,
                version,
                xml,
            )
        self.cloud.store.log(
            LogEntry(
                time=time.time(),
                request_id=request_id,
                action=action[:64] or "-",
                access_key_id=caller.key.access_key_id if caller else "-",
                signature=caller.signature if caller else "none",
                status=status,
                code=code,
                millis=(time.monotonic() - began) * 1000,
            )
        )
        return response

    async def _dispatch(
        self, caller: Caller, action: str, version: str, params: dict[str, str], request_id: str
    ) -> dict[str, Any]:
        if version == ADMIN_VERSION or action.startswith("Kiln"):
            return await self._admin(action, params)
        if not action:
            raise ApiError(
                400,
                "MissingParameter",
                'The input parameter "Action" that is mandatory for processing this request is not supplied.',
            )
        if version not in VERSIONS:
            raise ApiError(400, "InvalidVersion", f"Specified parameter Version is not valid. ({version})")
        handler = ACTIONS.get(action)
        if handler is None:
            raise ApiError(
                404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."
            )
        delay, fault = self.faults.match(action)
        delay += self.cloud.profile.call
        if delay:
            await asyncio.sleep(delay)
        if fault is not None:
            raise fault
        call = Call(action, params, caller.key.access_key_id, request_id)
        token = params.get("ClientToken")
        if not token:
            return await handler(self.cloud, call)
        token_key = f"{caller.key.access_key_id}|{action}|{token}"
        digest = hashlib.sha256(
            json.dumps(sorted((k, v) for k, v in params.items() if k not in _VOLATILE)).encode()
        ).hexdigest()
        # One lock per token while requests with it run; the last one to leave removes it, failed or not.
        lock, users = self._token_locks.get(token_key, (asyncio.Lock(), 0))
        self._token_locks[token_key] = (lock, users + 1)
        try:
            async with lock:
                saved = self.cloud.store.client_token(token_key)
                if saved is not None:
                    if saved[0] != digest:
                        raise ApiError(
                            400,
                            "IdempotentParameterMismatch",
                            "The request uses the same client token as a previous, but non-identical request.",
                        )
                    return saved[1]
                result = await handler(self.cloud, call)
                self.cloud.store.save_client_token(token_key, digest, result)
        finally:
            lock, users = self._token_locks[token_key]
            if users == 1:
                del self._token_locks[token_key]
            else:
                self._token_locks[token_key] = (lock, users - 1)
        return result

    async def _admin(self, action: str, params: dict[str, str]) -> dict[str, Any]:
        if action == "KilnInjectFault":
            return {"Fault": self.faults.add(params).view()}
        if action == "KilnClearFaults":
            raw = params.get("FaultId")
            self.faults.clear(int(raw) if raw and raw.isdigit() else None)
            return {}
        if action == "KilnDescribeFaults":
            return {"Faults": {"Fault": [f.view() for f in self.faults.all()]}}
        if action == "KilnDescribeRequestLog":
            limit = int(params.get("Limit", "100") or 100)
            entries = self.cloud.store.recent_requests(min(max(limit, 1), 1000))
            return {"Requests": {"Request": [entry_view(e) for e in entries]}}
        if action == "KilnSetLatencyProfile":
            self.cloud.profile = (
                LatencyProfile.parse(params.get("Profile", "fast"))
                if params.get("Profile") is not None
                else LatencyProfile()
            )
            return {"Profile": self.cloud.profile.render()}
        raise ApiError(
            404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."
        )

    @staticmethod
    def _respond(status: int, action: str, data: dict[str, Any], xml: bool) -> web.Response:
        if xml:
            return web.Response(
                status=status,
                body=render_xml(f"{action or 'Error'}Response", data),
                content_type="text/xml",
                charset="utf-8",
            )
        return web.Response(
            status=status, body=render_json(data), content_type="application/json", charset="utf-8"
        )

    def _error(
        self, err: ApiError, request_id: str, host: str, action: str, version: str, xml: bool
    ) -> web.Response:
        product = VERSIONS.get(version, "Ecs")
        data = {
            "RequestId": request_id,
            "HostId": host,
            "Code": err.code,
            "Message": err.message,
            "Recommend": f"http://{host}/console#request-{request_id} (troubleshoot {product}: {err.code})",
        }
        if xml:
            return web.Response(
                status=err.status, body=render_xml("Error", data), content_type="text/xml", charset="utf-8"
            )
        return web.Response(
            status=err.status, body=render_json(data), content_type="application/json", charset="utf-8"
        )


def entry_view(entry: LogEntry) -> dict[str, Any]:
    return {
        "Time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.time)),
        "RequestId": entry.request_id,
        "Action": entry.action,
        "AccessKeyId": entry.access_key_id,
        "Signature": entry.signature,
        "HttpStatus": entry.status,
        "Code": entry.code,
        "Millis": round(entry.millis, 2),
    }
