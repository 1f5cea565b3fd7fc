"""Access options shared by everything that calls Alibaba Cloud (the alicloud-ecs builder, the
alicloud-import post-processor), and how they become credentials, a region and an endpoint.

Credentials, in Packer's order of precedence:
1. `access_key` / `secret_key` (or ALICLOUD_ACCESS_KEY / ALICLOUD_SECRET_KEY), with `security_token`
   (or SECURITY_TOKEN / ALICLOUD_SECURITY_TOKEN) making them STS credentials, and `ram_role_arn`
   making kiln assume that role with them;
2. `ram_role_name`: the RAM role of the ECS instance kiln runs on (instance metadata);
3. `profile` (or ALICLOUD_PROFILE) of `shared_credentials_file` (ALICLOUD_SHARED_CREDENTIALS_FILE,
   default ~/.aliyun/config.json), in any mode the aliyun CLI writes (AK, StsToken, RamRoleArn,
   EcsRamRole...);
4. otherwise the official default chain: ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET / _SECURITY_TOKEN,
   OIDC, the default profile of ~/.aliyun/config.json, ~/.alibabacloud/credentials.ini, ECS metadata.

The endpoint is Alibaba Cloud's regional one unless `custom_endpoint_ecs` or KILN_ALICLOUD_ENDPOINT
(e.g. `http://127.0.0.1:8080`, localcloud) says otherwise; both the ECS and VPC APIs then go there.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.config import DecodeContext, Options, option
from kiln.core.secrets import REDACTOR
from kiln.errors import KilnError

ENDPOINT_ENV = "KILN_ALICLOUD_ENDPOINT"


@dataclass
class AccessConfig(Options):
    access_key: str = option("", secret=True, cache=False, doc="Access key ID; also ALICLOUD_ACCESS_KEY")
    secret_key: str = option("", secret=True, cache=False, doc="Access key secret; also ALICLOUD_SECRET_KEY")
    region: str = option("", cache=False, doc="Region, e.g. cn-beijing; also ALICLOUD_REGION")
    profile: str = option("", cache=False, doc="Profile of the aliyun CLI config; also ALICLOUD_PROFILE")
    shared_credentials_file: str = option(
        "", cache=False, doc="aliyun CLI config file (default ~/.aliyun/config.json)"
    )
    security_token: str = option("", secret=True, cache=False, doc="STS token; also SECURITY_TOKEN")
    ram_role_name: str = option(
        "", cache=False, doc="ECS RAM role for credentials, also given to the instance"
    )
    ram_role_arn: str = option("", cache=False, doc="RAM role to assume with the access key")
    ram_session_name: str = option("", cache=False, doc="Session name when assuming ram_role_arn")
    skip_region_validation: bool = option(False, cache=False, doc="do not check that the regions exist")
    skip_image_validation: bool = option(False, cache=False, doc="do not check that source_image exists")
    custom_endpoint_ecs: str = option(
        "", cache=False, doc="ECS (and VPC) API endpoint; also KILN_ALICLOUD_ENDPOINT"
    )

    def apply_environment(self) -> None:
        """Fill unset options from Packer's environment variables (as Packer's Prepare does)."""
        env = os.environ
        self.access_key = self.access_key or env.get("ALICLOUD_ACCESS_KEY", "")
        self.secret_key = self.secret_key or env.get("ALICLOUD_SECRET_KEY", "")
        self.region = self.region or env.get("ALICLOUD_REGION", "")
        self.profile = self.profile or env.get("ALICLOUD_PROFILE", "")
        self.shared_credentials_file = self.shared_credentials_file or env.get(
            "ALICLOUD_SHARED_CREDENTIALS_FILE", ""
        )
        self.security_token = (
            self.security_token or env.get("SECURITY_TOKEN", "") or env.get("ALICLOUD_SECURITY_TOKEN", "")
        )
        if not self.region and self.profile:
            self.region = str(profile_settings(self).get("region_id") or "")
        self.region = self.region or env.get("ALIBABA_CLOUD_REGION_ID", "")
        # Values taken from the environment are as secret as those written in the template.
        REDACTOR.add(*(v for v in (self.access_key, self.secret_key, self.security_token) if v))

    def validate_access(self, dctx: DecodeContext, path: str) -> None:
        self.apply_environment()
        if not self.region:
            dctx.error(
                path,
                "region option or ALICLOUD_REGION must be provided in template file or environment variables",
            )
        if bool(self.access_key) != bool(self.secret_key):
            dctx.error(path, "access_key and secret_key must be given together")
        if self.custom_endpoint_ecs:
            try:
                parse_endpoint(self.custom_endpoint_ecs)
            except KilnError as exc:
                dctx.error(f"{path}.custom_endpoint_ecs" if path else "custom_endpoint_ecs", exc.message)

    def endpoint(self) -> Endpoint | None:
        text = self.custom_endpoint_ecs or os.environ.get(ENDPOINT_ENV, "")
        if not text and self.profile:
            text = str(profile_settings(self).get("endpoint") or "")
        return parse_endpoint(text) if text else None


@dataclass(frozen=True)
class Endpoint:
    protocol: str  #: "http" or "https"
    host: str  #: host[:port]

    def url(self) -> str:
        return f"{self.protocol}://{self.host}"


def parse_endpoint(text: str) -> Endpoint:
    """`http://127.0.0.1:8080`, `https://ecs.example.com` or a bare `host[:port]` (https)."""
    written, text = text, text.strip().rstrip("/")
    if "://" not in text:
        return Endpoint("https", text)
    from urllib.parse import urlsplit  # only for templates that set an endpoint

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise KilnError(
            f'invalid endpoint "{written}"',
            "use http://HOST:PORT or https://HOST (no path), e.g. http://127.0.0.1:8080",
        )
    return Endpoint(parts.scheme, parts.netloc)


def profile_file(access: AccessConfig) -> Path:
    if access.shared_credentials_file:
        return Path(access.shared_credentials_file).expanduser()
    return Path.home() / ".aliyun" / "config.json"


def profile_settings(access: AccessConfig) -> dict[str, Any]:
    """The named profile's entry of the aliyun CLI config, {} when there is none."""
    path = profile_file(access)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    for entry in data.get("profiles", []) if isinstance(data, dict) else []:
        if isinstance(entry, dict) and entry.get("name") == access.profile:
            return entry
    return {}


def credential_client(access: AccessConfig) -> Any:
    """An `alibabacloud_credentials` client for these options (imports the library)."""
    from alibabacloud_credentials.client import Client as CredClient
    from alibabacloud_credentials.models import Config as CredConfig

    if access.access_key and access.secret_key:
        if access.ram_role_arn:
            return CredClient(
                CredConfig(
                    type="ram_role_arn",
                    access_key_id=access.access_key,
                    access_key_secret=access.secret_key,
                    security_token=access.security_token or None,
                    role_arn=access.ram_role_arn,
                    role_session_name=access.ram_session_name or "kiln",
                )
            )
        if access.security_token:
            return CredClient(
                CredConfig(
                    type="sts",
                    access_key_id=access.access_key,
                    access_key_secret=access.secret_key,
                    security_token=access.security_token,
                )
            )
        return CredClient(
            CredConfig(
                type="access_key", access_key_id=access.access_key, access_key_secret=access.secret_key
            )
        )
    if access.ram_role_name:
        return CredClient(CredConfig(type="ecs_ram_role", role_name=access.ram_role_name))
    if access.profile:
        path = profile_file(access)
        if not profile_settings(access):
            raise KilnError(
                f"profile {access.profile!r} not found in {path}",
                "check the profile name, or set shared_credentials_file / ALICLOUD_SHARED_CREDENTIALS_FILE",
            )
        from alibabacloud_credentials.provider import CLIProfileCredentialsProvider

        return CredClient(
            provider=CLIProfileCredentialsProvider(profile_name=access.profile, profile_file=str(path))
        )
    return CredClient()


def credential_source(access: AccessConfig) -> str:
    """Where the credentials come from, for logs (never the values)."""
    if access.access_key and access.secret_key:
        kind = "access key" + (" + STS token" if access.security_token else "")
        return kind + (f", assuming {access.ram_role_arn}" if access.ram_role_arn else "")
    if access.ram_role_name:
        return f"ECS RAM role {access.ram_role_name}"
    if access.profile:
        return f"profile {access.profile} of {profile_file(access)}"
    return "default credential chain (ALIBABA_CLOUD_* variables, ~/.aliyun/config.json, ...)"
