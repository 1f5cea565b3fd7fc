"""Key pairs: create (the private key is returned once, never stored), import, attach, detach, delete."""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import hashlib
import re
from typing import Any

from kiln.localcloud.actions_network import match_tags, page, public, tags_view
from kiln.localcloud.cloud import Call, Cloud, action
from kiln.localcloud.store import new_id
from kiln.localcloud.wire import ApiError

_KEY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._:-]{1,127}$")


# key pairs --------------------------------------------------------------------------------------
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
        raise ApiError(
            400, "InvalidKeyPairName.Malformed", f"The specified KeyPairName is not valid. ({name})"
        )
    if cloud.store.get("keypair", f"{region}/{name}") is not None:
        raise ApiError(400, "KeyPair.AlreadyExist", f"The key pair already exist. ({name})")


def _save_pair(cloud: Cloud, call: Call, region: str, name: str, public_key: str) -> dict[str, Any]:
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


@action("CreateKeyPair")
async def create_key_pair(cloud: Cloud, call: Call) -> dict[str, Any]:
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


@action("ImportKeyPair")
async def import_key_pair(cloud: Cloud, call: Call) -> dict[str, Any]:
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    region = call.require_region()
    name = call.require("KeyPairName")
    body = call.require("PublicKeyBody").strip()
    _check_name(cloud, region, name)
    try:
        load_ssh_public_key(body.encode())
    except (ValueError, TypeError, IndexError):
        raise ApiError(
            400, "InvalidPublicKeyBody.Malformed", "The specified PublicKeyBody is not a valid public key."
        ) from None
    pair = _save_pair(cloud, call, region, name, " ".join(body.split()[:2]))
    return {
        "KeyPairName": name,
        "KeyPairFingerPrint": pair["KeyPairFingerPrint"],
        "KeyPairId": pair["KeyPairId"],
    }


async def _attach(cloud: Cloud, call: Call, attach: bool) -> dict[str, Any]:
    region = call.require_region()
    name = call.require("KeyPairName")
    if cloud.store.get("keypair", f"{region}/{name}") is None:
        raise ApiError(
            404, "InvalidKeyPairName.NotFound", f"The specified KeyPairName does not exist. ({name})"
        )
    ids = call.values("InstanceIds")
    if not ids:
        raise ApiError(
            400,
            "MissingParameter",
            'The input parameter "InstanceIds" that is mandatory for processing this request is not supplied.',
        )
    results, failed = [], 0
    for iid in ids:
        inst = cloud.store.get("instance", iid)
        if inst is None or inst["RegionId"] != region:
            results.append(
                {
                    "InstanceId": iid,
                    "Success": "false",
                    "Code": "InvalidInstanceId.NotFound",
                    "Message": "The specified instance does not exist.",
                }
            )
            failed += 1
            continue
        status = cloud.settle(inst)["Status"]
        if status not in ("Running", "Stopped"):
            results.append(
                {
                    "InstanceId": iid,
                    "Success": "false",
                    "Code": "IncorrectInstanceStatus",
                    "Message": f"The instance is {status}.",
                }
            )
            failed += 1
            continue
        if attach:
            inst["KeyPairName"] = name  # applied at the next start, like the real cloud
        elif inst.get("KeyPairName") == name:
            inst["KeyPairName"] = ""
        cloud.put(inst)
        results.append({"InstanceId": iid, "Success": "true", "Code": "200", "Message": "successful"})
    return {
        "KeyPairName": name,
        "TotalCount": str(len(ids)),
        "FailCount": str(failed),
        "Results": {"Result": results},
    }


@action("AttachKeyPair")
async def attach_key_pair(cloud: Cloud, call: Call) -> dict[str, Any]:
    return await _attach(cloud, call, True)


@action("DetachKeyPair")
async def detach_key_pair(cloud: Cloud, call: Call) -> dict[str, Any]:
    return await _attach(cloud, call, False)


@action("DeleteKeyPairs")
async def delete_key_pairs(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    names = call.values("KeyPairNames")
    if not names:
        raise ApiError(
            400,
            "MissingParameter",
            'The input parameter "KeyPairNames" that is mandatory for processing this request is not supplied.',
        )
    for name in names:
        cloud.store.delete("keypair", f"{region}/{name}")
    return {}


@action("DescribeKeyPairs")
async def describe_key_pairs(cloud: Cloud, call: Call) -> dict[str, Any]:
    region = call.require_region()
    name, fp = call.get("KeyPairName"), call.get("KeyPairFingerPrint")
    found = [
        p
        for p in cloud.items("keypair", region)
        if (name is None or fnmatch.fnmatchcase(p["KeyPairName"], name))
        and (fp is None or p["KeyPairFingerPrint"] == fp)
        and match_tags(call, p)
    ]
    chunk, paging = page(call, found, high=50)
    return {"KeyPairs": {"KeyPair": [{**public(p), "Tags": tags_view(p)} for p in chunk]}, **paging}
