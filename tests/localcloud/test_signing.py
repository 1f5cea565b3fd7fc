"""The signature algorithms against the documented worked example and against themselves."""

from __future__ import annotations

import hashlib

from kiln.localcloud import signing


def test_v1_documented_worked_example() -> None:
    params = {
        "Action": "DescribeRegions",
        "AccessKeyId": "testid",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
        "Timestamp": "2016-02-23T12:46:24Z",
        "Format": "XML",
        "Version": "2014-05-26",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
    }
    string_to_sign = signing.v1_string_to_sign("GET", params)
    assert string_to_sign.startswith("GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions")
    assert signing.v1_signature("testsecret", string_to_sign) == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_percent_encoding_is_rfc3986() -> None:
    assert signing.percent_encode("a b*c~d/é") == "a%20b%2Ac~d%2F%C3%A9"


def test_v3_sign_then_verify_and_tamper() -> None:
    headers = {
        "host": "127.0.0.1:1",
        "x-acs-action": "DescribeRegions",
        "x-acs-version": "2014-05-26",
        "x-acs-date": "2026-01-01T00:00:00Z",
        "x-acs-signature-nonce": "n1",
    }
    query = {"RegionId": "cn-beijing", "Tag.1.Key": "a b"}
    signing.sign_v3("AK", "secret", "POST", query, headers)
    parsed = signing.parse_v3_authorization(headers["authorization"])
    assert parsed is not None
    ak, names, signature = parsed
    assert ak == "AK" and "x-acs-date" in names
    payload = hashlib.sha256(b"").hexdigest()
    canonical = signing.v3_canonical_request("POST", "/", query, headers, names, payload)
    assert signing.v3_signature("secret", signing.v3_string_to_sign(canonical)) == signature
    tampered = signing.v3_canonical_request(
        "POST", "/", {**query, "RegionId": "cn-hangzhou"}, headers, names, payload
    )
    assert signing.v3_signature("secret", signing.v3_string_to_sign(tampered)) != signature
    assert signing.parse_v3_authorization("HMAC foo") is None
