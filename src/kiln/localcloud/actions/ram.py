"""RAM (2015-05-01): the roles and system policies that the image import uses.

GetRole, CreateRole, UpdateRole, DeleteRole, ListPoliciesForRole, AttachPolicyToRole,
DetachPolicyFromRole, GetPolicy: the calls Packer's alicloud-import and kiln's make (GetRole; on
EntityNotExist.Role, CreateRole + AttachPolicyToRole; else ListPoliciesForRole, then UpdateRole or
AttachPolicyToRole), with RAM's parameters, response fields and error codes.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

from kiln.localcloud import errors
from kiln.localcloud.api.registry import RAM, Json, action
from kiln.localcloud.api.request import Call
from kiln.localcloud.model import ram
from kiln.localcloud.model.cloud import Cloud, Res

_ROLE_NAME = re.compile(r"^[A-Za-z0-9.\-]+$")
MAX_DOCUMENT = 2048


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _role(cloud: Cloud, name: str) -> Res:
    role = cloud.get("role", name)
    if role is None:
        raise errors.ROLE_NOT_FOUND(ram.role_arn(name))
    return role


def _role_name(call: Call) -> str:
    name = call.require("RoleName")
    if len(name) > 64:
        raise errors.ROLE_NAME_LENGTH(name)
    if not _ROLE_NAME.match(name):
        raise errors.ROLE_NAME_INVALID_CHARS(name)
    return name


def _document(call: Call, name: str) -> str:
    text = call.require(name)
    if len(text) > MAX_DOCUMENT:
        raise errors.invalid(name, f"is longer than {MAX_DOCUMENT} characters")
    problem = ram.policy_problem(text)
    if problem is not None:
        raise errors.POLICY_DOCUMENT_MALFORMED(why=problem)
    return text


def _view(role: Mapping[str, Any], *extra: str) -> Json:
    out = {
        name: role[name]
        for name in ("RoleId", "RoleName", "Arn", "Description", "AssumeRolePolicyDocument", "CreateDate")
    }
    out["MaxSessionDuration"] = role["MaxSessionDuration"]
    for name in extra:
        out[name] = role[name]
    return out


@action("CreateRole", RAM)
async def create_role(cloud: Cloud, call: Call) -> Json:
    name = _role_name(call)
    if cloud.get("role", name) is not None:
        raise errors.ROLE_EXISTS(ram.role_arn(name))
    document = _document(call, "AssumeRolePolicyDocument")
    now = _now()
    role = cloud.new(
        "role",
        name,
        "",
        RoleName=name,
        RoleId=str(secrets.randbelow(9 * 10**16) + 10**16),
        Arn=ram.role_arn(name),
        Description=call.text("Description"),
        AssumeRolePolicyDocument=document,
        MaxSessionDuration=call.integer("MaxSessionDuration", 3600, 3600, 43200),
        CreateDate=now,
        UpdateDate=now,
        _policies=[],
    )
    cloud.put(role)
    return {"Role": _view(role)}


@action("GetRole", RAM)
async def get_role(cloud: Cloud, call: Call) -> Json:
    role = _role(cloud, call.require("RoleName"))
    view = _view(role, "UpdateDate")
    view["RolePrincipalName"] = f"{role['RoleName']}@role.{ram.ACCOUNT_ID}.onaliyunservice.com"
    view["IsServiceLinkedRole"] = False
    return {"Role": view}


@action("UpdateRole", RAM)
async def update_role(cloud: Cloud, call: Call) -> Json:
    role = _role(cloud, call.require("RoleName"))
    if call.get("NewAssumeRolePolicyDocument") is not None:
        role["AssumeRolePolicyDocument"] = _document(call, "NewAssumeRolePolicyDocument")
    if call.get("NewDescription") is not None:
        role["Description"] = call.text("NewDescription")
    role["MaxSessionDuration"] = call.integer(
        "NewMaxSessionDuration", role["MaxSessionDuration"], 3600, 43200
    )
    role["UpdateDate"] = _now()
    cloud.put(role)
    return {"Role": _view(role, "UpdateDate")}


@action("DeleteRole", RAM)
async def delete_role(cloud: Cloud, call: Call) -> Json:
    role = _role(cloud, call.require("RoleName"))
    if role["_policies"]:
        raise errors.DELETE_CONFLICT_ROLE_POLICY(role["RoleName"])
    cloud.delete(role)
    return {}


def _policy(call: Call) -> ram.SystemPolicy:
    kind = call.require("PolicyType")
    if kind not in ("System", "Custom"):
        raise errors.POLICY_TYPE_INVALID(kind)
    name = call.require("PolicyName")
    policy = ram.SYSTEM_POLICIES.get(name) if kind == "System" else None
    if policy is None:  # custom policies are not emulated: none exists
        raise errors.POLICY_NOT_FOUND(name=name)
    return policy


@action("AttachPolicyToRole", RAM)
async def attach_policy_to_role(cloud: Cloud, call: Call) -> Json:
    policy = _policy(call)
    role = _role(cloud, call.require("RoleName"))
    if any(p["PolicyName"] == policy.name for p in role["_policies"]):
        raise errors.POLICY_ALREADY_ATTACHED(name=policy.name, role=role["RoleName"])
    role["_policies"] = [
        *role["_policies"],
        {"PolicyName": policy.name, "PolicyType": "System", "AttachDate": _now()},
    ]
    cloud.put(role)
    return {}


@action("DetachPolicyFromRole", RAM)
async def detach_policy_from_role(cloud: Cloud, call: Call) -> Json:
    policy = _policy(call)
    role = _role(cloud, call.require("RoleName"))
    kept = [p for p in role["_policies"] if p["PolicyName"] != policy.name]
    if len(kept) == len(role["_policies"]):
        raise errors.POLICY_NOT_ATTACHED(name=policy.name, role=role["RoleName"])
    role["_policies"] = kept
    cloud.put(role)
    return {}


@action("ListPoliciesForRole", RAM)
async def list_policies_for_role(cloud: Cloud, call: Call) -> Json:
    role = _role(cloud, call.require("RoleName"))
    listed = []
    for attached in role["_policies"]:
        policy = ram.SYSTEM_POLICIES[attached["PolicyName"]]
        listed.append(
            {
                "PolicyName": policy.name,
                "PolicyType": attached["PolicyType"],
                "Description": policy.description,
                "DefaultVersion": "v1",
                "AttachDate": attached["AttachDate"],
            }
        )
    return {"Policies": {"Policy": listed}}


@action("GetPolicy", RAM)
async def get_policy(cloud: Cloud, call: Call) -> Json:
    policy = _policy(call)
    attached = sum(
        1 for role in cloud.items("role") for p in role["_policies"] if p["PolicyName"] == policy.name
    )
    return {
        "Policy": {
            "PolicyName": policy.name,
            "PolicyType": "System",
            "Description": policy.description,
            "DefaultVersion": "v1",
            "CreateDate": ram.SYSTEM_POLICY_DATE,
            "UpdateDate": ram.SYSTEM_POLICY_DATE,
            "AttachmentCount": attached,
        },
        "DefaultPolicyVersion": {
            "VersionId": "v1",
            "IsDefaultVersion": True,
            "CreateDate": ram.SYSTEM_POLICY_DATE,
            "PolicyDocument": json.dumps(policy.document, indent=2),
        },
    }
