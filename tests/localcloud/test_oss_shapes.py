"""Every OSS operation localcloud answers, its XML body checked against the OSS SDK's model of it.

A workflow through the official alibabacloud-oss-v2 client (its own HTTP client, keeping each body)
makes a bucket, objects and multipart uploads exist and calls every operation localcloud has; the
expected shape is read from the SDK's `<Operation>Result` model (kiln.localcloud.sdkmodels
.oss_result_shape): an element the model does not have, one repeated where it has one, a number,
boolean or time not written as the model reads it, each is a failure unless ALLOWED lists it with
its reason. Response headers are not compared. A new OSS operation: add its call to `workflow`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss
import pytest

import kiln.localcloud.server  # noqa: F401 - registers the OSS operations
from kiln.localcloud import sdkmodels, start
from kiln.localcloud.api.oss.wire import OPERATIONS

from .oss_fixtures import bucket_name
from .ossutil import REGION
from .shapes import RecordingHttp, sdk_methods, xml_mismatches

#: "Operation element" -> why localcloud answers that element otherwise than the model says.
ALLOWED: dict[str, str] = {}

Call = Callable[..., Any]


def workflow(op: Call) -> None:
    bucket = bucket_name()
    op("PutBucket", bucket=bucket)
    op("ListBuckets")
    op("GetBucketInfo", bucket=bucket)
    op("GetBucketLocation", bucket=bucket)
    op("GetBucketAcl", bucket=bucket)
    for key in ("a/one.txt", "a/two.txt", "b.txt"):
        op("PutObject", bucket=bucket, key=key, body=b"some bytes")
    op("HeadObject", bucket=bucket, key="b.txt")
    op("GetObject", bucket=bucket, key="b.txt").body.read()
    op("CopyObject", bucket=bucket, key="c.txt", source_key="b.txt")
    op("ListObjects", bucket=bucket, delimiter="/")
    op("ListObjectsV2", bucket=bucket, delimiter="/")
    upload = op("InitiateMultipartUpload", bucket=bucket, key="big.bin").upload_id
    first = op(
        "UploadPart", bucket=bucket, key="big.bin", upload_id=upload, part_number=1, body=b"x" * 102400
    )
    second = op(
        "UploadPartCopy", bucket=bucket, key="big.bin", upload_id=upload, part_number=2, source_key="b.txt"
    )
    op("ListParts", bucket=bucket, key="big.bin", upload_id=upload)
    dropped = op("InitiateMultipartUpload", bucket=bucket, key="dropped.bin").upload_id
    op("ListMultipartUploads", bucket=bucket)
    op("AbortMultipartUpload", bucket=bucket, key="dropped.bin", upload_id=dropped)
    parts = [oss.UploadPart(part_number=1, etag=first.etag), oss.UploadPart(part_number=2, etag=second.etag)]
    op(
        "CompleteMultipartUpload",
        bucket=bucket,
        key="big.bin",
        upload_id=upload,
        complete_multipart_upload=oss.CompleteMultipartUpload(parts=parts),
    )
    op("DeleteObject", bucket=bucket, key="c.txt")
    keys = ("a/one.txt", "a/two.txt", "b.txt", "big.bin")
    op("DeleteMultipleObjects", bucket=bucket, objects=[oss.DeleteObject(key=k) for k in keys])
    op("DeleteBucket", bucket=bucket)


@pytest.fixture(scope="module")
def bodies(state_root: Path) -> Iterator[dict[str, list[bytes]]]:
    """Each operation's answer bodies, from a record-only localcloud of its own."""
    kept: dict[str, list[bytes]] = defaultdict(list)
    with start(state_root / "oss-shapes", runner="none") as process:
        http = RecordingHttp()
        cfg = oss.config.load_default()
        cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
            process.access_key_id, process.secret
        )
        cfg.region, cfg.endpoint, cfg.http_client = REGION, process.url, http
        client = oss.Client(cfg)
        methods = sdk_methods(oss.Client)

        def op(name: str, **fields: Any) -> Any:
            before = len(http.bodies)
            result = getattr(client, methods[name.lower()])(getattr(oss, f"{name}Request")(**fields))
            kept[name].extend(http.bodies[before:])
            return result

        workflow(op)
        yield kept
    log = (state_root / "oss-shapes" / "server.log").read_text()
    assert "Traceback" not in log, log[-3000:]


def findings(bodies: dict[str, list[bytes]], operation: str) -> list[str]:
    shape = sdkmodels.oss_result_shape(operation)
    found: set[str] = set()
    for body in bodies[operation]:
        if body.strip():
            found.update(xml_mismatches(shape, ET.fromstring(body), ""))
    return sorted(f"{operation} {finding}" for finding in found)


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_the_answer_has_the_models_shape(bodies: dict[str, list[bytes]], operation: str) -> None:
    assert operation in bodies, f"the workflow in {__file__} does not call {operation}: add it"
    bad = [f for f in findings(bodies, operation) if f.partition(": ")[0] not in ALLOWED]
    assert not bad, "\n".join(bad)


def test_every_allowed_finding_is_still_found(bodies: dict[str, list[bytes]]) -> None:
    found = {f.partition(": ")[0] for op in sorted(OPERATIONS) for f in findings(bodies, op)}
    stale = sorted(ALLOWED.keys() - found)
    assert not stale, f"these no longer happen: take them off ALLOWED: {stale}"
