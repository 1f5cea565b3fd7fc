"""RAM as the image import needs it: the account, its system policies, and whom a role trusts.

One account per server (`ACCOUNT_ID`). The system policies are Alibaba's own, read-only, attached
by name with PolicyType System; custom policies are not emulated. A role's trust policy
(AssumeRolePolicyDocument) is kept as given and read by `trusts_service`, which is what ImportImage
asks of the role it is told to use: that the ECS service may assume it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ACCOUNT_ID = "1386520000000000"
IMPORT_ROLE = "AliyunECSImageImportDefaultRole"
IMPORT_POLICY = "AliyunECSImageImportRolePolicy"
ECS_SERVICE = "ecs.aliyuncs.com"


@dataclass(frozen=True)
class SystemPolicy:
    name: str
    description: str
    document: Mapping[str, Any]


def _allow(*actions: str) -> Mapping[str, Any]:
    return {"Version": "1", "Statement": [{"Action": list(actions), "Resource": "*", "Effect": "Allow"}]}


SYSTEM_POLICIES = {
    p.name: p
    for p in (
        SystemPolicy(
            IMPORT_POLICY,
            "ECS uses this policy to read the image files it imports from OSS.",
            _allow("oss:GetObject", "oss:GetBucketLocation", "oss:GetBucketInfo"),
        ),
        SystemPolicy(
            "AliyunECSImageExportRolePolicy",
            "ECS uses this policy to write the images it exports to OSS.",
            _allow(
                "oss:GetObject",
                "oss:PutObject",
                "oss:DeleteObject",
                "oss:GetBucketLocation",
                "oss:GetBucketInfo",
                "oss:AbortMultipartUpload",
                "oss:ListMultipartUploads",
                "oss:ListParts",
            ),
        ),
        SystemPolicy("AliyunOSSFullAccess", "Full access to OSS.", _allow("oss:*")),
        SystemPolicy("AliyunECSFullAccess", "Full access to ECS.", _allow("ecs:*")),
        SystemPolicy("AdministratorAccess", "Full access to every resource.", _allow("*")),
    )
}

# The date the system policies show (they are older than any account).
SYSTEM_POLICY_DATE = "2016-03-01T00:00:00Z"


def role_arn(name: str) -> str:
    return f"acs:ram::{ACCOUNT_ID}:role/{name.lower()}"


def policy_problem(text: str) -> str | None:
    """Why `text` is not a trust policy RAM accepts (None: it is one)."""
    try:
        doc = json.loads(text)
    except ValueError as err:
        return f"the policy document is not JSON: {err}"
    if not isinstance(doc, dict) or not isinstance(doc.get("Statement"), list) or not doc["Statement"]:
        return "the policy document needs a Statement list"
    if str(doc.get("Version", "")) != "1":
        return 'the policy document needs "Version": "1"'
    for statement in doc["Statement"]:
        if not isinstance(statement, dict) or statement.get("Effect") not in ("Allow", "Deny"):
            return "each Statement needs an Effect of Allow or Deny"
        if "Action" not in statement or "Principal" not in statement:
            return "each Statement of a trust policy needs an Action and a Principal"
    return None


def _listed(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def trusts_service(document: str, service: str) -> bool:
    """Whether the trust policy lets `service` assume the role (Allow sts:AssumeRole, no Deny)."""
    try:
        doc = json.loads(document)
    except ValueError:
        return False
    allowed = False
    for statement in doc.get("Statement", []) if isinstance(doc, dict) else []:
        if not isinstance(statement, dict):
            continue
        principal = statement.get("Principal")
        services = _listed(principal.get("Service", [])) if isinstance(principal, dict) else []
        actions = _listed(statement.get("Action", []))
        if service in services and ("sts:AssumeRole" in actions or "sts:*" in actions):
            if statement.get("Effect") == "Deny":
                return False
            allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def role_authorises_import(role: Mapping[str, Any]) -> bool:
    """ImportImage may read OSS through `role`: ECS is trusted and the import policy is attached."""
    attached = {(p["PolicyName"], p["PolicyType"]) for p in role["_policies"]}
    return trusts_service(role["AssumeRolePolicyDocument"], ECS_SERVICE) and (
        (IMPORT_POLICY, "System") in attached
        or ("AliyunOSSFullAccess", "System") in attached
        or ("AdministratorAccess", "System") in attached
    )
