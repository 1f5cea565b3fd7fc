"""The alicloud-import post-processor through `kiln build`, against localcloud's OSS, RAM and ImportImage
(record-only instances): a disk from the file builder becomes an Available image whose disk is the
converted upload; what it made in between (object, upload, bucket) is gone; faults leave nothing."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss_sdk
import pytest

from kiln.alicloud.access import AccessConfig
from kiln.alicloud.oss import client as oss_client
from kiln.localcloud import LocalCloudProcess

from .conftest import REGION, admin, api, inventory, kiln, leaks

MIB = 1 << 20


@pytest.fixture
def import_env(
    cloud: LocalCloudProcess, cloud_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    env = {**cloud_env, "KILN_OSS_ENDPOINT": cloud.url, "ALICLOUD_REGION": REGION}
    monkeypatch.setenv("KILN_OSS_ENDPOINT", cloud.url)
    return env


def make_disk(path: Path, mib: int) -> Path:
    """A qcow2 disk whose first `mib` MiB hold a pattern (so that each part differs)."""
    raw = path.with_suffix(".raw")
    with raw.open("wb") as handle:
        for i in range(mib):
            handle.write(i.to_bytes(4, "little") * (MIB // 4))
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True)
    raw.unlink()
    return path


def template(tmp_path: Path, disk: Path, bucket: str, image: str, **extra: Any) -> Path:
    data = {
        "builders": [{"type": "file", "source": str(disk), "target": str(tmp_path / "disk.qcow2")}],
        "post-processors": [
            [
                {
                    "type": "alicloud-import",
                    "oss_bucket_name": bucket,
                    "oss_key_name": "imports/{{build `PackerRunUUID`}}.raw",
                    "image_name": image,
                    "image_os_type": "linux",
                    "image_platform": "Debian",
                    "image_architecture": "x86_64",
                    "format": "raw",
                    **extra,
                },
                {"type": "manifest", "output": str(tmp_path / "manifest.json")},
            ]
        ],
    }
    path = tmp_path / "import.json"
    path.write_text(json.dumps(data))
    return path


def oss_api(cloud: LocalCloudProcess) -> Any:
    access = AccessConfig(access_key=cloud.access_key_id, secret_key=cloud.secret, region=REGION)
    return oss_client(access, REGION)


def bucket_exists(cloud: LocalCloudProcess, bucket: str) -> bool:
    return bool(oss_api(cloud).is_bucket_exist(bucket))


def uploads(cloud: LocalCloudProcess, bucket: str) -> list[Any]:
    if not bucket_exists(cloud, bucket):
        return []
    found = oss_api(cloud).list_multipart_uploads(oss_sdk.ListMultipartUploadsRequest(bucket=bucket))
    return list(found.uploads or [])


def objects(cloud: LocalCloudProcess, bucket: str) -> list[str]:
    if not bucket_exists(cloud, bucket):
        return []
    found = oss_api(cloud).list_objects_v2(oss_sdk.ListObjectsV2Request(bucket=bucket))
    return [o.key for o in found.contents or []]


def request_log(cloud: LocalCloudProcess) -> list[dict[str, Any]]:
    body = admin(cloud, "KilnDescribeRequestLog", Limit="1000")
    entries = body.get("Requests") or body.get("Entries") or body.get("RequestLog") or []
    if isinstance(entries, dict):
        entries = next(iter(entries.values()))
    return list(entries)


def names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:10]
    return f"kiln-import-{tag}", f"imported-{tag}"


def test_import_end_to_end(cloud: LocalCloudProcess, import_env: dict[str, str], tmp_path: Path) -> None:
    before = inventory(cloud)
    bucket, image = names()
    disk = make_disk(tmp_path / "source.qcow2", 40)
    done = kiln("build", str(template(tmp_path, disk, bucket, image)), env=import_env, cwd=tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "Creating OSS bucket" in out and "initialize ram role for importing image" in out, out
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    artifact_id = manifest["builds"][-1]["artifact_id"]
    region, image_id = artifact_id.split(":")
    assert region == REGION and image_id.startswith("m-")
    found = api(cloud).call("DescribeImages", {"ImageId": image_id, "ImageOwnerAlias": "self"})
    listed = found["Images"]["Image"]
    assert [i["Status"] for i in listed] == ["Available"] and listed[0]["ImageName"] == image
    mapping = listed[0]["DiskDeviceMappings"]["DiskDeviceMapping"][0]
    assert (mapping["Format"], mapping["ImportOSSBucket"]) == ("RAW", bucket)
    # the object, the upload and the bucket it made are gone; the image is what it left
    assert not bucket_exists(cloud, bucket)
    assert leaks(cloud, before, {image_id}) == {}
    # the image's disk is the upload, converted: its first MiB is the pattern's
    image_file = next(Path(cloud.state_dir, "images").glob(f"{image_id}.*"))
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(image_file)], capture_output=True, text=True, check=True
        ).stdout
    )
    assert info["virtual-size"] == 40 * MIB
    # and it is used by RunInstances like any other image
    run = api(cloud).call("DescribeImages", {"ImageName": image, "ImageOwnerAlias": "self"})
    assert run["Images"]["Image"][0]["ImageId"] == image_id


def test_a_failing_import_leaves_nothing(
    cloud: LocalCloudProcess, import_env: dict[str, str], faults: Any, tmp_path: Path
) -> None:
    before = inventory(cloud)
    bucket, image = names()
    faults(TargetAction="ImportImage", Code="InvalidOSSObject.NotFound", HttpStatus="400", Count="5")
    disk = make_disk(tmp_path / "source.qcow2", 20)
    done = kiln("build", str(template(tmp_path, disk, bucket, image)), env=import_env, cwd=tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "InvalidOSSObject.NotFound" in out, out
    assert not bucket_exists(cloud, bucket), out
    assert leaks(cloud, before) == {}, out
    journal = json.loads(next((tmp_path / "state" / "journal").glob("*.json")).read_text())
    assert {r["kind"] for r in journal["resources"]} >= {"oss_bucket", "oss_object", "oss_multipart"}
    assert all(r["state"] == "deleted" for r in journal["resources"]), journal


def test_image_import_errors(cloud: LocalCloudProcess, import_env: dict[str, str], tmp_path: Path) -> None:
    """ImportImage's own checks: a missing object, a format that is not the file's, a size too small."""
    bucket, image = names()
    oss = oss_api(cloud)
    oss.put_bucket(oss_sdk.PutBucketRequest(bucket=bucket))
    disk = make_disk(tmp_path / "d.qcow2", 2)
    oss.put_object_from_file(oss_sdk.PutObjectRequest(bucket=bucket, key="d.qcow2"), str(disk))
    c = api(cloud)
    from kiln.postprocessors.alicloud_import.steps import prepare_import_role

    prepare_import_role(c)

    def code(role: str | None = None, **mapping: str) -> str:
        from kiln.alicloud.client import ApiError

        params = {
            "ImageName": image,
            "RoleName": role,
            "DiskDeviceMapping": [{"OSSBucket": bucket, **mapping}],
        }
        try:
            c.call("ImportImage", params)
        except ApiError as exc:
            return exc.code
        raise AssertionError("ImportImage succeeded")

    # a role that trusts an account, not ECS, does not let ECS read OSS, even with the policy
    untrusted = f"untrusted-{uuid.uuid4().hex[:8]}"
    principal = {"RAM": ["acs:ram::1386520000000000:root"]}
    statement = {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": principal}
    document = json.dumps({"Statement": [statement], "Version": "1"})
    c.call("CreateRole", {"RoleName": untrusted, "AssumeRolePolicyDocument": document})
    policy = {"PolicyName": "AliyunECSImageImportRolePolicy", "PolicyType": "System"}
    c.call("AttachPolicyToRole", {"RoleName": untrusted, **policy})
    try:
        assert code(untrusted, OSSObject="d.qcow2") == "NoSetRoletoECSServiceAcount"
        assert code("NoSuchRole", OSSObject="d.qcow2") == "NoSetRoletoECSServiceAcount"
        assert code(OSSObject="missing.raw") == "InvalidOSSObject.NotFound"
        assert code(OSSObject="d.qcow2", Format="RAW") == "InvalidImageFormat.Malformed"
        assert code(OSSObject="d.qcow2", Format="VMDK") == "InvalidImageFormat.Malformed"
        assert code(OSSObject="d.qcow2", DiskImageSize="4096") == "InvalidImageSize"
    finally:
        oss.delete_object(oss_sdk.DeleteObjectRequest(bucket=bucket, key="d.qcow2"))
        oss.delete_bucket(oss_sdk.DeleteBucketRequest(bucket=bucket))


def _logged(cloud: LocalCloudProcess) -> dict[str, dict[str, Any]]:
    return {e["RequestId"]: e for e in request_log(cloud)}


def _since(cloud: LocalCloudProcess, before: dict[str, dict[str, Any]], action: str) -> list[int]:
    """The HTTP statuses of the `action` requests logged since `before`."""
    return [
        e["HttpStatus"] for rid, e in _logged(cloud).items() if rid not in before and e["Action"] == action
    ]


def test_a_failed_part_is_retried(
    cloud: LocalCloudProcess, import_env: dict[str, str], faults: Any, tmp_path: Path
) -> None:
    bucket, image = names()
    disk = make_disk(tmp_path / "source.qcow2", 40)  # 40 MiB raw: three parts
    faults(TargetAction="UploadPart", Code="InternalError", HttpStatus="500", Count="1")
    logged = _logged(cloud)
    done = kiln("build", str(template(tmp_path, disk, bucket, image)), env=import_env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(_since(cloud, logged, "UploadPart")) == [200, 200, 200, 500]
    assert not bucket_exists(cloud, bucket)


def test_an_interrupted_upload_resumes_without_sending_its_parts_again(
    cloud: LocalCloudProcess, import_env: dict[str, str], faults: Any, tmp_path: Path
) -> None:
    before = inventory(cloud)
    bucket, image = names()
    disk = make_disk(tmp_path / "source.qcow2", 40)
    path = template(tmp_path, disk, bucket, image, oss_key_name="resumed.raw")
    faults(TargetAction="CompleteMultipartUpload", Code="InternalError", HttpStatus="500", Count="1")
    logged = _logged(cloud)
    first = kiln("build", str(path), env=import_env, cwd=tmp_path)
    assert first.returncode != 0 and "cannot complete the upload" in first.stdout + first.stderr
    assert sorted(_since(cloud, logged, "UploadPart")) == [200, 200, 200]
    assert [u.key for u in uploads(cloud, bucket)] == ["resumed.raw"]  # kept for the next run
    logged = _logged(cloud)
    second = kiln("build", str(path), env=import_env, cwd=tmp_path)
    out = second.stdout + second.stderr
    assert second.returncode == 0, out
    assert "Resuming the upload: 3 of 3 parts are in OSS already" in out, out
    assert _since(cloud, logged, "UploadPart") == []  # not one part sent again
    assert _since(cloud, logged, "ListParts") == [200]
    assert not bucket_exists(cloud, bucket)
    image_id = json.loads((tmp_path / "manifest.json").read_text())["builds"][-1]["artifact_id"].split(":")[1]
    assert leaks(cloud, before, {image_id}) == {}
    # the first run's journal gave the upload away: a cleanup now has nothing of it to delete
    swept = kiln("cleanup", "--stale", env=import_env, cwd=tmp_path)
    assert "oss multipart" not in swept.stdout, swept.stdout


def test_kill_9_during_the_upload_then_cleanup_leaves_nothing(
    cloud: LocalCloudProcess, import_env: dict[str, str], faults: Any, tmp_path: Path
) -> None:
    import os
    import signal

    from .conftest import popen_kiln
    from .test_signals import Reader

    before = inventory(cloud)
    bucket, image = names()
    disk = make_disk(tmp_path / "source.qcow2", 40)
    faults(TargetAction="UploadPart", LatencyMs="3000")
    reader = Reader(
        popen_kiln("build", str(template(tmp_path, disk, bucket, image)), env=import_env, cwd=tmp_path)
    )
    try:
        reader.wait_for("Waiting for uploading file")
        deadline = time.monotonic() + 30
        while not uploads(cloud, bucket) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert uploads(cloud, bucket), "\n".join(reader.lines)
        os.kill(reader.proc.pid, signal.SIGKILL)
        reader.finish()
    finally:
        if reader.proc.poll() is None:
            reader.proc.kill()
    assert bucket_exists(cloud, bucket) and uploads(cloud, bucket)
    done = kiln("cleanup", "--stale", env=import_env, cwd=tmp_path)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "Deleting oss multipart" in said and "Deleting oss bucket" in said, said
    assert not bucket_exists(cloud, bucket), said
    assert leaks(cloud, before) == {}, said
