"""OSS's model: the buckets, objects and multipart uploads of localcloud's one account.

Bytes live in files under `state/oss/` (`oss_files`): `data/` holds every object's and every part's bytes under
a name of its own, `tmp/` what is being received. Metadata lives in the state's SQLite file beside
every other resource. A write streams into `tmp/` (MD5 and CRC-64 computed on the way, memory
bounded by one buffer), is renamed into `data/` (atomic), and only then recorded in SQLite. So after
a kill -9 a finished write is there whole, and a half one is only a file in `tmp/`: the next start
removes it, with any `data/` file that no record names. Replaced and deleted bytes are unlinked
after the record that dropped them, so a reader holding the file open reads on undisturbed.

Other products read objects through this class (ImportImage: `bucket`, `object_file`, `object_size`).
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.localcloud import oss_errors as E
from kiln.localcloud.model import crc64
from kiln.localcloud.model.oss_files import Blob, ObjectFiles

#: localcloud serves one account; its buckets are its own, owned by this id.
ACCOUNT_ID = "1000000000000001"
MAX_OBJECT = 5 * 1024**3  # PutObject, and one part
MIN_PART = 100 * 1024  # every part but the last
MAX_PARTS = 10000
MAX_BUCKETS = 100

SCHEMA = """
CREATE TABLE IF NOT EXISTS oss_buckets (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, region TEXT NOT NULL, created REAL NOT NULL,
    storage_class TEXT NOT NULL, acl TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS oss_objects (
    bucket TEXT NOT NULL, key TEXT NOT NULL, file TEXT NOT NULL, size INTEGER NOT NULL,
    etag TEXT NOT NULL, crc64 TEXT NOT NULL, modified REAL NOT NULL, content_type TEXT NOT NULL,
    meta TEXT NOT NULL, type TEXT NOT NULL, PRIMARY KEY (bucket, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS oss_uploads (
    upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL, initiated REAL NOT NULL,
    content_type TEXT NOT NULL, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS oss_parts (
    upload_id TEXT NOT NULL, number INTEGER NOT NULL, file TEXT NOT NULL, size INTEGER NOT NULL,
    etag TEXT NOT NULL, crc64 TEXT NOT NULL, modified REAL NOT NULL,
    PRIMARY KEY (upload_id, number)) WITHOUT ROWID;
"""

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
STORAGE_CLASSES = ("Standard", "IA", "Archive", "ColdArchive", "DeepColdArchive")
ACLS = ("private", "public-read", "public-read-write")


@dataclass(frozen=True)
class Bucket:
    name: str
    owner: str
    region: str
    created: float
    storage_class: str
    acl: str


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    file: Path
    size: int
    etag: str  # upper-case hex, without quotes; "<hex>-N" for a multipart object
    crc64: int
    modified: float
    content_type: str
    meta: dict[str, str] = field(default_factory=dict)  # x-oss-meta-* names (lower case) -> values
    type: str = "Normal"  # or "Multipart"


@dataclass(frozen=True)
class Upload:
    upload_id: str
    bucket: str
    key: str
    initiated: float
    content_type: str
    meta: dict[str, str]


@dataclass(frozen=True)
class Part:
    number: int
    file: Path
    size: int
    etag: str
    crc64: int
    modified: float


def check_bucket_name(name: str) -> None:
    if not _BUCKET_NAME.match(name):
        raise E.INVALID_BUCKET_NAME(BucketName=name)


def check_key(key: str) -> None:
    if not key or len(key.encode()) > 1023 or key.startswith("/") or key.startswith("\\"):
        raise E.INVALID_OBJECT_NAME(ObjectName=key)


class OssStore:
    def __init__(self, folder: Path, db: sqlite3.Connection) -> None:
        self.files = ObjectFiles(folder)
        self.db = db
        db.executescript(SCHEMA)
        # what a kill -9 left: files being received, and bytes no record names
        named = self.db.execute("SELECT file FROM oss_objects UNION SELECT file FROM oss_parts")
        self.files.sweep({row[0] for row in named})

    def _transaction(self, statements: Sequence[tuple[str, Sequence[object]]]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for sql, args in statements:
                self.db.execute(sql, args)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _drop(self, names: Sequence[str]) -> None:
        self.files.drop(names)

    async def copy_range(self, source: ObjectInfo, start: int, length: int) -> Blob:
        """Bytes [start, start+length) of an object as a new blob (CopyObject, UploadPartCopy)."""
        whole = start == 0 and length == source.size and source.type == "Normal"
        known = (bytes.fromhex(source.etag), source.crc64) if whole else None
        return await self.files.copy(source.file, start, length, known)

    # buckets ------------------------------------------------------------------------------------
    def create_bucket(
        self, name: str, region: str, storage_class: str = "Standard", acl: str = "private"
    ) -> Bucket:
        check_bucket_name(name)
        if self.db.execute("SELECT 1 FROM oss_buckets WHERE name = ?", (name,)).fetchone():
            raise E.BUCKET_EXISTS(BucketName=name)
        if self.db.execute("SELECT COUNT(*) FROM oss_buckets").fetchone()[0] >= MAX_BUCKETS:
            raise E.TOO_MANY_BUCKETS(BucketName=name)
        bucket = Bucket(name, ACCOUNT_ID, region, time.time(), storage_class, acl)
        self.db.execute(
            "INSERT INTO oss_buckets VALUES (?, ?, ?, ?, ?, ?)",
            (name, bucket.owner, region, bucket.created, storage_class, acl),
        )
        return bucket

    def bucket(self, name: str, owner: str = ACCOUNT_ID) -> Bucket:
        """The bucket `name` of `owner`; NoSuchBucket when there is none (or it is someone else's)."""
        row = self.db.execute("SELECT * FROM oss_buckets WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise E.NO_SUCH_BUCKET(BucketName=name)
        bucket = Bucket(*row)
        if bucket.owner != owner:
            raise E.ACCESS_DENIED("The bucket you access does not belong to you.", BucketName=name)
        return bucket

    def buckets(self, prefix: str = "", marker: str = "", limit: int = 100) -> tuple[list[Bucket], bool]:
        rows = self.db.execute(
            "SELECT * FROM oss_buckets WHERE name > ? AND name >= ? ORDER BY name", (marker, prefix)
        )
        found = [Bucket(*row) for row in rows if row[0].startswith(prefix)]
        return found[:limit], len(found) > limit

    def usage(self) -> list[dict[str, object]]:
        """Each bucket with its object count, bytes and uploads in progress (for the console)."""
        rows = self.db.execute(
            "SELECT b.name, b.region, b.storage_class,"
            " (SELECT COUNT(*) FROM oss_objects o WHERE o.bucket = b.name),"
            " (SELECT COALESCE(SUM(size), 0) FROM oss_objects o WHERE o.bucket = b.name),"
            " (SELECT COUNT(*) FROM oss_uploads u WHERE u.bucket = b.name)"
            " FROM oss_buckets b ORDER BY b.name"
        )
        names = ("BucketName", "RegionId", "StorageClass", "Objects", "Bytes", "Uploads")
        return [dict(zip(names, row, strict=True)) for row in rows]

    def delete_bucket(self, name: str) -> None:
        self.bucket(name)
        objects = self.db.execute("SELECT 1 FROM oss_objects WHERE bucket = ? LIMIT 1", (name,)).fetchone()
        uploads = self.db.execute("SELECT 1 FROM oss_uploads WHERE bucket = ? LIMIT 1", (name,)).fetchone()
        if objects or uploads:
            raise E.BUCKET_NOT_EMPTY(BucketName=name)
        self.db.execute("DELETE FROM oss_buckets WHERE name = ?", (name,))

    # objects ------------------------------------------------------------------------------------
    def put_object(
        self,
        bucket: str,
        key: str,
        blob: Blob,
        content_type: str = "application/octet-stream",
        meta: Mapping[str, str] | None = None,
        etag: str | None = None,
        type: str = "Normal",
    ) -> ObjectInfo:
        check_key(key)
        self.bucket(bucket)
        name = self.files.keep(blob)
        info = ObjectInfo(
            bucket,
            key,
            self.files.path(name),
            blob.size,
            etag or blob.md5.hex().upper(),
            blob.crc64,
            time.time(),
            content_type,
            dict(meta or {}),
            type,
        )
        old = self.db.execute(
            "SELECT file FROM oss_objects WHERE bucket = ? AND key = ?", (bucket, key)
        ).fetchone()
        try:
            self._transaction([(_INSERT_OBJECT, _object_row(info, name))])
        except BaseException:
            self._drop([name])
            raise
        if old and old[0] != name:
            self._drop([old[0]])
        return info

    def object(self, bucket: str, key: str) -> ObjectInfo:
        """The object `key` of `bucket`; NoSuchBucket or NoSuchKey when missing."""
        self.bucket(bucket)
        row = self.db.execute(
            "SELECT * FROM oss_objects WHERE bucket = ? AND key = ?", (bucket, key)
        ).fetchone()
        if row is None:
            raise E.NO_SUCH_KEY(Key=key)
        return self._object(row)

    def object_file(self, bucket: str, key: str) -> Path:
        """The file holding the object's bytes (read it, never change it)."""
        return self.object(bucket, key).file

    def object_size(self, bucket: str, key: str) -> int:
        return self.object(bucket, key).size

    def _object(self, row: Sequence[Any]) -> ObjectInfo:
        bucket, key, name, size, etag, crc, modified, content_type, meta, type_ = row
        return ObjectInfo(
            bucket,
            key,
            self.files.path(name),
            size,
            etag,
            int(crc),
            modified,
            content_type,
            json.loads(meta),
            type_,
        )

    def delete_object(self, bucket: str, key: str) -> bool:
        """Remove the object (True) or find none (False): OSS answers both the same."""
        self.bucket(bucket)
        row = self.db.execute(
            "SELECT file FROM oss_objects WHERE bucket = ? AND key = ?", (bucket, key)
        ).fetchone()
        if row is None:
            return False
        self.db.execute("DELETE FROM oss_objects WHERE bucket = ? AND key = ?", (bucket, key))
        self._drop([row[0]])
        return True

    def list_objects(
        self, bucket: str, prefix: str = "", after: str = "", delimiter: str = "", limit: int = 100
    ) -> tuple[list[ObjectInfo], list[str], str | None]:
        """(objects, common prefixes, next marker or None when nothing is left), keys in byte order."""
        self.bucket(bucket)
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        skip = after if delimiter and after.endswith(delimiter) and after.startswith(prefix) else None
        rows = self.db.execute(
            "SELECT * FROM oss_objects WHERE bucket = ? AND key > ? AND key >= ? ORDER BY key",
            (bucket, after, prefix),
        )
        last = ""
        for row in rows:
            key: str = row[1]
            if not key.startswith(prefix):
                break
            if skip is not None and key.startswith(skip):
                continue
            if len(objects) + len(prefixes) == limit:
                return objects, prefixes, last
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                skip = key[: cut + len(delimiter)]
                prefixes.append(skip)
                last = skip
                continue
            objects.append(self._object(row))
            last = key
        return objects, prefixes, None

    # multipart uploads --------------------------------------------------------------------------
    def initiate(
        self,
        bucket: str,
        key: str,
        content_type: str = "application/octet-stream",
        meta: Mapping[str, str] | None = None,
    ) -> Upload:
        check_key(key)
        self.bucket(bucket)
        upload = Upload(uuid.uuid4().hex.upper(), bucket, key, time.time(), content_type, dict(meta or {}))
        self.db.execute(
            "INSERT INTO oss_uploads VALUES (?, ?, ?, ?, ?, ?)",
            (upload.upload_id, bucket, key, upload.initiated, content_type, json.dumps(upload.meta)),
        )
        return upload

    def upload(self, bucket: str, key: str, upload_id: str) -> Upload:
        self.bucket(bucket)
        row = self.db.execute(
            "SELECT * FROM oss_uploads WHERE upload_id = ? AND bucket = ? AND key = ?",
            (upload_id, bucket, key),
        ).fetchone()
        if row is None:
            raise E.NO_SUCH_UPLOAD(UploadId=upload_id)
        upload_id, bucket, key, initiated, content_type, meta = row
        return Upload(upload_id, bucket, key, initiated, content_type, json.loads(meta))

    def uploads(
        self, bucket: str, prefix: str = "", key_marker: str = "", id_marker: str = "", limit: int = 1000
    ) -> tuple[list[Upload], bool]:
        """Uploads in progress by key then initiation, after (key_marker, id_marker); (page, truncated)."""
        self.bucket(bucket)
        rows = self.db.execute(
            "SELECT * FROM oss_uploads WHERE bucket = ? AND key >= ? ORDER BY key, initiated, upload_id",
            (bucket, max(prefix, key_marker)),
        )
        found: list[Upload] = []
        for upload_id, _, key, initiated, content_type, meta in rows:
            if not key.startswith(prefix):
                if key > prefix:
                    break
                continue
            if key_marker and (
                key < key_marker or (key == key_marker and (not id_marker or upload_id <= id_marker))
            ):
                continue
            if len(found) == limit:
                return found, True
            found.append(Upload(upload_id, bucket, key, initiated, content_type, json.loads(meta)))
        return found, False

    def put_part(self, upload: Upload, number: int, blob: Blob) -> Part:
        name = self.files.keep(blob)
        part = Part(number, self.files.path(name), blob.size, blob.md5.hex().upper(), blob.crc64, time.time())
        old = self.db.execute(
            "SELECT file FROM oss_parts WHERE upload_id = ? AND number = ?", (upload.upload_id, number)
        ).fetchone()
        try:
            if (
                self.db.execute(
                    "SELECT 1 FROM oss_uploads WHERE upload_id = ?", (upload.upload_id,)
                ).fetchone()
                is None
            ):
                raise E.NO_SUCH_UPLOAD(UploadId=upload.upload_id)  # aborted or completed meanwhile
            self.db.execute(
                "INSERT OR REPLACE INTO oss_parts VALUES (?, ?, ?, ?, ?, ?, ?)",
                (upload.upload_id, number, name, part.size, part.etag, str(part.crc64), part.modified),
            )
        except BaseException:
            self._drop([name])
            raise
        if old:
            self._drop([old[0]])
        return part

    def parts(self, upload: Upload) -> list[Part]:
        rows = self.db.execute(
            "SELECT number, file, size, etag, crc64, modified FROM oss_parts WHERE upload_id = ? ORDER BY number",
            (upload.upload_id,),
        )
        return [Part(n, self.files.path(f), s, e, int(c), m) for n, f, s, e, c, m in rows]

    async def complete(self, upload: Upload, chosen: Sequence[tuple[int, str]]) -> ObjectInfo:
        """Join the chosen (part number, ETag) parts, in order, into the upload's object."""
        if not chosen:
            raise E.MALFORMED_XML()
        numbers = [n for n, _ in chosen]
        if numbers != sorted(set(numbers)):
            raise E.INVALID_PART_ORDER(UploadId=upload.upload_id)
        have = {p.number: p for p in self.parts(upload)}
        parts: list[Part] = []
        for number, etag in chosen:
            part = have.get(number)
            if part is None or etag.strip('"').upper() != part.etag:
                raise E.INVALID_PART(UploadId=upload.upload_id, PartNumber=number, ETag=etag)
            parts.append(part)
        for part in parts[:-1]:
            if part.size < MIN_PART:
                raise E.ENTITY_TOO_SMALL(
                    MinSizeAllowed=MIN_PART,
                    ProposedSize=part.size,
                    PartNumber=part.number,
                    PartEtag=part.etag,
                )

        crc = parts[0].crc64
        for part in parts[1:]:
            crc = crc64.combine(crc, part.crc64, part.size)
        etag = (
            hashlib.md5(b"".join(bytes.fromhex(p.etag) for p in parts)).hexdigest().upper() + f"-{len(parts)}"
        )
        joined = await self.files.join([(p.file, p.size) for p in parts], b"", crc)
        name = self.files.keep(joined)
        info = ObjectInfo(
            upload.bucket,
            upload.key,
            self.files.path(name),
            sum(p.size for p in parts),
            etag,
            crc,
            time.time(),
            upload.content_type,
            upload.meta,
            "Multipart",
        )
        old = self.db.execute(
            "SELECT file FROM oss_objects WHERE bucket = ? AND key = ?", (upload.bucket, upload.key)
        ).fetchone()
        every = [
            row[0]
            for row in self.db.execute("SELECT file FROM oss_parts WHERE upload_id = ?", (upload.upload_id,))
        ]
        try:
            if (
                self.db.execute(
                    "SELECT 1 FROM oss_uploads WHERE upload_id = ?", (upload.upload_id,)
                ).fetchone()
                is None
            ):
                raise E.NO_SUCH_UPLOAD(UploadId=upload.upload_id)
            self._transaction(
                [
                    (_INSERT_OBJECT, _object_row(info, name)),
                    ("DELETE FROM oss_parts WHERE upload_id = ?", (upload.upload_id,)),
                    ("DELETE FROM oss_uploads WHERE upload_id = ?", (upload.upload_id,)),
                ]
            )
        except BaseException:
            self._drop([name])
            raise
        self._drop([*every, *([old[0]] if old else [])])
        return info

    def abort(self, upload: Upload) -> None:
        every = [
            row[0]
            for row in self.db.execute("SELECT file FROM oss_parts WHERE upload_id = ?", (upload.upload_id,))
        ]
        self._transaction(
            [
                ("DELETE FROM oss_parts WHERE upload_id = ?", (upload.upload_id,)),
                ("DELETE FROM oss_uploads WHERE upload_id = ?", (upload.upload_id,)),
            ]
        )
        self._drop(every)


_INSERT_OBJECT = "INSERT OR REPLACE INTO oss_objects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _object_row(info: ObjectInfo, name: str) -> tuple[object, ...]:
    return (
        info.bucket,
        info.key,
        name,
        info.size,
        info.etag,
        str(info.crc64),
        info.modified,
        info.content_type,
        json.dumps(info.meta),
        info.type,
    )
