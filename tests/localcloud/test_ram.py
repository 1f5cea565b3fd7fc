"""RAM (2015-05-01) through the official alibabacloud_ram20150501 SDK: the calls the image import makes,
in the order Packer's alicloud-import makes them, with RAM's fields and error codes."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from alibabacloud_ram20150501 import models as ram
from alibabacloud_ram20150501.client import Client as RamClient

from kiln.localcloud import LocalCloudProcess

from .conftest import config, error_of

TRUST_ECS = json.dumps(
    {
        "Statement": [
            {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": ["ecs.aliyuncs.com"]}}
        ],
        "Version": "1",
    }
)
TRUST_ACCOUNT = json.dumps(
    {
        "Statement": [
            {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"RAM": ["acs:ram::1:root"]}}
        ],
        "Version": "1",
    }
)


@pytest.fixture(params=["v3", "v1"])
def client(request: pytest.FixtureRequest, cloud: LocalCloudProcess) -> RamClient:
    return RamClient(config(cloud, v1=request.param == "v1"))


def test_role_lifecycle_as_packer_calls_it(client: RamClient, name: Callable[[str], str]) -> None:
    role = name("ImportRole")
    err = error_of(lambda: client.get_role(ram.GetRoleRequest(role_name=role)))
    assert (err.code, err.status_code) == ("EntityNotExist.Role", 404)

    made = client.create_role(
        ram.CreateRoleRequest(role_name=role, assume_role_policy_document=TRUST_ECS, description="import")
    ).body.role
    assert made.role_name == role and made.arn.endswith(f":role/{role.lower()}")
    assert made.assume_role_policy_document == TRUST_ECS and made.max_session_duration == 3600
    err = error_of(
        lambda: client.create_role(
            ram.CreateRoleRequest(role_name=role, assume_role_policy_document=TRUST_ECS)
        )
    )
    assert (err.code, err.status_code) == ("EntityAlreadyExists.Role", 409)

    client.attach_policy_to_role(
        ram.AttachPolicyToRoleRequest(
            policy_name="AliyunECSImageImportRolePolicy", policy_type="System", role_name=role
        )
    )
    err = error_of(
        lambda: client.attach_policy_to_role(
            ram.AttachPolicyToRoleRequest(
                policy_name="AliyunECSImageImportRolePolicy", policy_type="System", role_name=role
            )
        )
    )
    assert err.code == "EntityAlreadyExists.Role.Policy"
    listed = client.list_policies_for_role(ram.ListPoliciesForRoleRequest(role_name=role)).body
    assert [(p.policy_name, p.policy_type) for p in listed.policies.policy] == [
        ("AliyunECSImageImportRolePolicy", "System")
    ]

    got = client.get_role(ram.GetRoleRequest(role_name=role)).body.role
    assert got.role_id == made.role_id and got.assume_role_policy_document == TRUST_ECS

    updated = client.update_role(
        ram.UpdateRoleRequest(role_name=role, new_assume_role_policy_document=TRUST_ACCOUNT)
    ).body.role
    assert updated.assume_role_policy_document == TRUST_ACCOUNT
    assert client.get_role(ram.GetRoleRequest(role_name=role)).body.role.assume_role_policy_document == (
        TRUST_ACCOUNT
    )

    err = error_of(lambda: client.delete_role(ram.DeleteRoleRequest(role_name=role)))
    assert err.code == "DeleteConflict.Role.Policy"
    client.detach_policy_from_role(
        ram.DetachPolicyFromRoleRequest(
            policy_name="AliyunECSImageImportRolePolicy", policy_type="System", role_name=role
        )
    )
    client.delete_role(ram.DeleteRoleRequest(role_name=role))
    assert error_of(lambda: client.get_role(ram.GetRoleRequest(role_name=role))).code == "EntityNotExist.Role"


def test_bad_input(client: RamClient, name: Callable[[str], str]) -> None:
    err = error_of(
        lambda: client.create_role(
            ram.CreateRoleRequest(role_name="bad name!", assume_role_policy_document=TRUST_ECS)
        )
    )
    assert err.code == "InvalidParameter.RoleName.InvalidChars"
    err = error_of(
        lambda: client.create_role(
            ram.CreateRoleRequest(role_name=name("r"), assume_role_policy_document="{not json")
        )
    )
    assert (err.code, err.status_code) == ("MalformedPolicyDocument", 400)
    role = name("r")
    client.create_role(ram.CreateRoleRequest(role_name=role, assume_role_policy_document=TRUST_ECS))
    err = error_of(
        lambda: client.attach_policy_to_role(
            ram.AttachPolicyToRoleRequest(policy_name="NoSuchPolicy", policy_type="System", role_name=role)
        )
    )
    assert (err.code, err.status_code) == ("EntityNotExist.Policy", 404)


def test_system_policy(client: RamClient) -> None:
    body = client.get_policy(
        ram.GetPolicyRequest(policy_name="AliyunECSImageImportRolePolicy", policy_type="System")
    ).body
    assert body.policy.policy_type == "System" and body.default_policy_version.is_default_version
    document = json.loads(body.default_policy_version.policy_document)
    assert "oss:GetObject" in document["Statement"][0]["Action"]
    err = error_of(lambda: client.get_policy(ram.GetPolicyRequest(policy_name="Nope", policy_type="System")))
    assert err.code == "EntityNotExist.Policy"
