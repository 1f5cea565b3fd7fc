"""An Alibaba Cloud ECS + VPC (+ RAM) client on the official SDK, with kiln's retries.

`AlicloudClient.call("CreateVpc", {"CidrBlock": ...})` builds the SDK's typed request model from the
API's own parameter names (those of the API reference and of ALIBABA.md), calls the typed SDK method
and returns the response body as a dict with the API's field names. A parameter the SDK model does
not know is a programming error, caught here instead of being silently dropped by the SDK.

Retries: throttling, service unavailability, and the "try again shortly" codes (IdempotentProcessing,
DependencyViolation*, IncorrectInstanceStatus.Initializing, TaskConflict, LastTokenProcessing...) are
retried with exponential backoff and full jitter. A create call given `token=True` carries one
ClientToken for all its attempts, so a retry after a lost response returns the resource the first
attempt made instead of making a second one.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kiln.alicloud.access import AccessConfig, Endpoint, credential_client
from kiln.core.cancel import CancelToken
from kiln.errors import CloudError

log = logging.getLogger("kiln.alicloud")

#: The CA bundle variable of Alibaba's SDKs (aliyunsdkcore reads it; kiln gives it to the Tea SDK).
CA_BUNDLE_ENV = "ALIBABA_CLOUD_CA_BUNDLE"

#: Actions of the VPC API (Version 2016-04-28); everything else goes to ECS (2014-05-26).
VPC_ACTIONS = frozenset(
    {
        "CreateVpc", "DeleteVpc", "DescribeVpcs", "CreateVSwitch", "DeleteVSwitch", "DescribeVSwitches",
        "AllocateEipAddress", "AssociateEipAddress", "UnassociateEipAddress", "ReleaseEipAddress",
        "DescribeEipAddresses", "TagResources", "ListTagResources",
    }
)  # fmt: skip

#: Actions of the RAM API (Version 2015-05-01), a global service (ram.aliyuncs.com).
RAM_ACTIONS = frozenset(
    {
        "GetRole", "CreateRole", "UpdateRole", "DeleteRole", "ListPoliciesForRole", "AttachPolicyToRole",
        "DetachPolicyFromRole", "GetPolicy",
    }
)  # fmt: skip

#: Codes that mean "the same request will succeed if sent again a little later".
RETRY_CODES = frozenset(
    {
        "ServiceUnavailable", "InternalError", "IdempotentProcessing", "IncorrectInstanceStatus.Initializing",
        "TaskConflict", "LastTokenProcessing", "TOKEN_PROCESSING", "OperationConflict", "UnknownError",
        "Throttling", "Throttling.User", "Throttling.Api", "ServiceUnavailable.Throttling",
    }
)  # fmt: skip
RETRY_PREFIXES = ("Throttling", "DependencyViolation")


class ApiError(CloudError):
    """An API call failed (after retries). `code` is Alibaba Cloud's error code."""

    def __init__(
        self,
        action: str,
        code: str,
        message: str,
        request_id: str | None = None,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        # One line: some messages (SignatureDoesNotMatch) carry a multi-line string to sign.
        message = " ".join(message.split())
        text = f"{action} failed: {code}: {message}"
        if request_id:
            text += f" (request id {request_id})"
        super().__init__(text, hint or _hint_for(code))
        self.action = action
        self.code = code
        self.api_message = message
        self.request_id = request_id
        self.status = status


def _hint_for(code: str) -> str | None:
    if code.startswith("InvalidAccessKeyId") or code in ("SignatureDoesNotMatch", "InvalidCredentials"):
        return (
            "check access_key / secret_key (or ALICLOUD_ACCESS_KEY / ALICLOUD_SECRET_KEY, "
            "ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET)"
        )
    if code == "ConnectionFailed":
        return "check the endpoint (custom_endpoint_ecs / KILN_ALICLOUD_ENDPOINT) and the network"
    if code.startswith("Forbidden"):
        return "the credentials lack a RAM permission for this action"
    return None


def is_retryable(code: str, extra: Iterable[str] = ()) -> bool:
    return code in RETRY_CODES or code.startswith(RETRY_PREFIXES) or code in set(extra)


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n))."""

    attempts: int = 10
    base: float = 0.3
    cap: float = 8.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * (2**attempt))
        return self.rng.uniform(0, ceiling)


def items(body: Mapping[str, Any], *path: str) -> list[Any]:
    """The list an answer holds under `path` (`items(body, "Images", "Image")`), [] where any part
    is missing or null: Alibaba's answers wrap each list in an object named after it."""
    node: Any = body
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
        if node is None:
            return []
    return list(node) if isinstance(node, list) else []


@dataclass
class CallRecord:
    """One HTTP request, for tests and benchmarks (`AlicloudClient.on_call`)."""

    action: str
    code: str | None  #: None when it succeeded
    seconds: float


def _snake_key(name: str) -> str:
    return name.replace("_", "").lower()


class _Sdk:
    """Maps action names to the SDK's typed methods and request models of one product."""

    def __init__(self, client_module: Any, models: Any) -> None:
        self.client_cls = client_module.Client
        self.models = models
        self._methods = {
            _snake_key(name[: -len("_with_options")]): name
            for name in dir(self.client_cls)
            if name.endswith("_with_options") and not name.endswith("_async")
        }

    def method_and_model(self, action: str) -> tuple[str, Any]:
        method = self._methods.get(action.lower())
        # Models are imported one by one on first use; listing them all would import ~1000 modules.
        model = getattr(self.models, f"{action}Request", None)
        if method is None or model is None:
            raise CloudError(f"the Alibaba Cloud SDK has no action {action}")
        return method, model


class AlicloudClient:
    """ECS + VPC API of one region. Thread-safe: each thread gets its own SDK client objects."""

    def __init__(
        self,
        access: AccessConfig,
        region: str,
        *,
        policy: RetryPolicy | None = None,
        on_call: Callable[[CallRecord], None] | None = None,
    ) -> None:
        self.access = access
        self.region = region
        self.endpoint: Endpoint | None = access.endpoint()
        self.policy = policy or RetryPolicy()
        self.on_call = on_call
        self._local = threading.local()
        self._lock = threading.Lock()
        self._credential: Any = None
        self._sdks: dict[str, _Sdk] = {}

    def for_region(self, region: str) -> AlicloudClient:
        if region == self.region:
            return self
        other = AlicloudClient(self.access, region, policy=self.policy, on_call=self.on_call)
        other._credential = self._credential
        return other

    def warm_up(self, *services: str) -> None:
        """Import these SDKs in the background (each costs a second or more), so that the first
        call to them does not wait for it."""

        def load() -> None:
            for service in services:
                try:
                    self._sdk(service)
                except Exception:  # the first real call reports it
                    return

        threading.Thread(target=load, name="kiln-sdk-import", daemon=True).start()

    # -- SDK plumbing ------------------------------------------------------------------------------

    def _sdk(self, service: str) -> _Sdk:
        with self._lock:
            sdk = self._sdks.get(service)
            if sdk is None:
                if service == "vpc":
                    from alibabacloud_vpc20160428 import client as vpc_client
                    from alibabacloud_vpc20160428 import models as vpc_models

                    sdk = _Sdk(vpc_client, vpc_models)
                elif service == "ram":
                    from alibabacloud_ram20150501 import client as ram_client
                    from alibabacloud_ram20150501 import models as ram_models

                    sdk = _Sdk(ram_client, ram_models)
                else:
                    from alibabacloud_ecs20140526 import client as ecs_client
                    from alibabacloud_ecs20140526 import models as ecs_models

                    sdk = _Sdk(ecs_client, ecs_models)
                self._sdks[service] = sdk
                _quiet_sdk_loggers()
            if self._credential is None:
                self._credential = credential_client(self.access)
            return sdk

    def _client(self, service: str, sdk: _Sdk) -> Any:
        clients: dict[str, Any] | None = getattr(self._local, "clients", None)
        if clients is None:
            clients = self._local.clients = {}
        client = clients.get(service)
        if client is None:
            from alibabacloud_tea_openapi.utils_models import Config

            config = Config(credential=self._credential, region_id=self.region, user_agent="kiln")
            if self.endpoint is not None:
                config.endpoint = self.endpoint.host
                config.protocol = self.endpoint.protocol
            elif service == "vpc":
                config.endpoint = f"vpc.{self.region}.aliyuncs.com"
            elif service == "ram":
                config.endpoint = "ram.aliyuncs.com"
            # Through an HTTPS proxy the Tea SDK trusts certifi's CAs only, whatever SSL_CERT_FILE
            # says: a CA bundle named by the Alibaba SDKs' variable (`kiln localcloud env` sets it) is
            # given to it.
            config.ca = os.environ.get(CA_BUNDLE_ENV) or None
            client = clients[service] = sdk.client_cls(config)
        return client

    def _request(
        self, action: str, params: Mapping[str, Any], service: str | None = None
    ) -> tuple[Any, str, Any]:
        service = service or ("vpc" if action in VPC_ACTIONS else "ram" if action in RAM_ACTIONS else "ecs")
        sdk = self._sdk(service)
        method, model_cls = sdk.method_and_model(action)
        data = dict(params)
        model = model_cls()
        if "RegionId" not in data and hasattr(model, "region_id"):
            data["RegionId"] = self.region
        model = model.from_map(data)
        known = model.to_map()
        unknown = [key for key, value in data.items() if value is not None and key not in known]
        if unknown:
            raise CloudError(f"{action}: the SDK does not know parameter(s) {', '.join(sorted(unknown))}")
        return self._client(service, sdk), method, model

    # -- calls -------------------------------------------------------------------------------------

    def call(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        *,
        token: bool = False,
        retry: Iterable[str] = (),
        attempts: int | None = None,
        cancel: CancelToken | None = None,
        service: str | None = None,
    ) -> dict[str, Any]:
        """Call `action` and return the response body. Raises ApiError once retries are exhausted.
        `retry` adds codes to retry for this call; `cancel` makes the backoff sleeps interruptible
        (cleanup passes None: it must finish even after a cancel); `service` ("ecs" or "vpc") names
        the product for an action both have (TagResources), by default VPC's for VPC_ACTIONS."""
        from darabonba.runtime import RuntimeOptions  # type: ignore[import-untyped]

        data = {k: v for k, v in (params or {}).items() if v is not None}
        if token and "ClientToken" not in data:
            data["ClientToken"] = str(uuid.uuid4())
        client, method, request = self._request(action, data, service)
        runtime = RuntimeOptions(autoretry=False, max_attempts=0, connect_timeout=5000, read_timeout=20000)
        extra = tuple(retry)
        limit = attempts or self.policy.attempts
        for attempt in range(limit):
            started = time.monotonic()
            try:
                response = getattr(client, method)(request, runtime)
            except Exception as exc:
                error = _api_error(action, exc)
                self._record(action, error.code, started)
                retryable = is_retryable(error.code, extra) or error.code == "ConnectionFailed"
                log.debug("%s: %s (attempt %d/%d)", action, error.code, attempt + 1, limit)
                if not retryable or attempt + 1 >= limit:
                    raise error from None
                delay = self.policy.delay(attempt)
                if cancel is not None:
                    cancel.sleep(delay)
                else:
                    time.sleep(delay)
                continue
            self._record(action, None, started)
            body = response.body.to_map() if response.body is not None else {}
            return dict(body)
        raise AssertionError("unreachable")

    def _record(self, action: str, code: str | None, started: float) -> None:
        if self.on_call is not None:
            self.on_call(CallRecord(action, code, time.monotonic() - started))


def _api_error(action: str, exc: Exception) -> ApiError:
    if type(exc).__name__ == "CredentialException" or "unable to load credentials" in str(exc):
        return ApiError(
            action,
            "InvalidCredentials",
            "no Alibaba Cloud credentials found: " + str(exc).split(":")[0],
            hint="set access_key / secret_key (or ALICLOUD_ACCESS_KEY / ALICLOUD_SECRET_KEY), "
            "ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET, or a profile (ALICLOUD_PROFILE)",
        )
    code = getattr(exc, "code", None)
    data = getattr(exc, "data", None)
    if code:
        message = ""
        request_id = getattr(exc, "request_id", None)
        if isinstance(data, dict):
            message = str(data.get("Message") or data.get("message") or "")
            request_id = data.get("RequestId") or request_id
        if not message:
            message = re.sub(r"^code: \d+, ", "", str(getattr(exc, "message", "") or ""))
            message = re.sub(r" request id: \S+$", "", message)
        return ApiError(
            action, str(code), message or "no message", request_id, getattr(exc, "status_code", None)
        )
    # Transport failures: the SDK wraps them (RetryError inside UnretryableException).
    text = str(getattr(exc, "inner_exception", None) or exc)
    reason = re.search(r"\[Errno \d+\] ([^\"')]+)", text)
    detail = reason.group(1) if reason else ("timed out" if "timed out" in text.lower() else text[:200])
    return ApiError(action, "ConnectionFailed", f"cannot reach the API endpoint: {detail}")


def _quiet_sdk_loggers() -> None:
    """The SDK's own loggers print request headers (STS token included) to stderr when DEBUG is set
    in the environment; kiln's output must never carry secrets, so they are silenced."""
    for name in ("darabonba-core", "tea", "alibabacloud_credentials", "credentials"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = False
        logger.disabled = True
