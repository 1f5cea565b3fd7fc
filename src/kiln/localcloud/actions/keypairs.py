"""Key pairs: create (the private key is returned once, never stored), import, attach, detach, delete."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re

from kiln.localcloud import errors
from kiln.localcloud.api import views
from kiln.localcloud.api.describe import Describe, Equals, Glob, Tags
from kiln.localcloud.api.registry import ECS, Json, action
from kiln.localcloud.api.request import Call
from kiln.localcloud.model.cloud import Cloud, Res
from kiln.localcloud.store import new_id

_KEY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._:-]{1,127}$")


def fingerprint(public_key: str) -> str:
    blob = base64.b64decode(public_key.split()[1])
    digest = hashlib.md5(blob).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))


def _generate_rsa() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public_key = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return private, public_key


def _check_name(cloud: Cloud, region: str, name: str) -> None:
    if not _KEY_NAME.match(name) or name.startswith(("http://", "https://")):
        raise errors.KEY_PAIR_NAME_MALFORMED(name)
    if cloud.store.get("keypair", f"{region}/{name}") is not None:
        raise errors.KEY_PAIR_EXISTS(name)


def _save_pair(cloud: Cloud, call: Call, region: str, name: str, public_key: str) -> Res:
    pair = cloud.new(
        "keypair",
        f"{region}/{name}",
        region,
        KeyPairName=name,
        KeyPairFingerPrint=fingerprint(public_key),
        KeyPairId=new_id("kp-"),
        Tags=call.tags(),
        ResourceGroupId="",
        _public_key=public_key,
    )
    cloud.put(pair)
    return pair


@action("CreateKeyPair", ECS)
async def create_key_pair(cloud: Cloud, call: Call) -> Json:
    region = call.require_region()
    name = call.require("KeyPairName")
    _check_name(cloud, region, name)
    private, public_key = await asyncio.to_thread(_generate_rsa)
    pair = _save_pair(cloud, call, region, name, public_key)
    # The private key is returned once and never stored, as on the real cloud.
    return {
        "KeyPairName": name,
        "KeyPairFingerPrint": pair["KeyPairFingerPrint"],
        "PrivateKeyBody": private,
        "KeyPairId": pair["KeyPairId"],
    }


@action("ImportKeyPair", ECS)
async def import_key_pair(cloud: Cloud, call: Call) -> Json:
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    region = call.require_region()
    name = call.require("KeyPairName")
    body = call.require("PublicKeyBody").strip()
    _check_name(cloud, region, name)
    try:
        load_ssh_public_key(body.encode())
    except (ValueError, TypeError, IndexError):
        raise errors.PUBLIC_KEY_MALFORMED() from None
    pair = _save_pair(cloud, call, region, name, " ".join(body.split()[:2]))
    return {
        "KeyPairName": name,
        "KeyPairFingerPrint": pair["KeyPairFingerPrint"],
    }  # no KeyPairId: ImportKeyPair does not answer it (CreateKeyPair does)


def _failed(instance_id: str, err: errors.ApiError) -> dict[str, str]:
    return {"InstanceId": instance_id, "Success": "false", "Code": err.code, "Message": err.message}


async def _attach(cloud: Cloud, call: Call, attach: bool) -> Json:
    region = call.require_region()
    name = call.require("KeyPairName")
    cloud.find("keypair", name, region)
    ids = call.values("InstanceIds")
    if not ids:
        raise errors.missing("InstanceIds")
    results = []
    for iid in ids:
        try:
            inst = cloud.find("instance", iid, region)
        except errors.ApiError as err:
            results.append(_failed(iid, err))
            continue
        if inst["Status"] not in ("Running", "Stopped"):
            results.append(_failed(iid, errors.INCORRECT_INSTANCE_STATUS(f"{iid} is {inst['Status']}")))
            continue
        if attach:
            inst["KeyPairName"] = name  # applied at the next start, like the real cloud
        elif inst["KeyPairName"] == name:
            inst["KeyPairName"] = ""
        cloud.put(inst)
        results.append({"InstanceId": iid, "Success": "true", "Code": "200", "Message": "successful"})
    failed = sum(r["Success"] == "false" for r in results)
    return {
        "KeyPairName": name,
        "TotalCount": str(len(ids)),
        "FailCount": str(failed),
        "Results": {"Result": results},
    }


@action("AttachKeyPair", ECS)
async def attach_key_pair(cloud: Cloud, call: Call) -> Json:
    return await _attach(cloud, call, True)


@action("DetachKeyPair", ECS)
async def detach_key_pair(cloud: Cloud, call: Call) -> Json:
    return await _attach(cloud, call, False)


@action("DeleteKeyPairs", ECS)
async def delete_key_pairs(cloud: Cloud, call: Call) -> Json:
    region = call.require_region()
    names = call.values("KeyPairNames")
    if not names:
        raise errors.missing("KeyPairNames")
    for name in names:
        cloud.store.delete("keypair", f"{region}/{name}")
    return {}


action("DescribeKeyPairs", ECS)(
    Describe(
        "KeyPairs.KeyPair",
        kind="keypair",
        filters=(Glob("KeyPairName"), Equals("KeyPairFingerPrint"), Tags()),
        view=views.key_pair,
        max_page_size=50,
    )
)
