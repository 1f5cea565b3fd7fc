"""What the last build of one build of a template had: its keys, the digests they came from, where it
failed, and the artifact it made. The causes `kiln plan` and the build print ("scripts/x.sh changed",
"provisioner 2 changed") compare against it, and `kiln build -if-changed` skips a build whose final
key is the recorded one. One small JSON file per (template, build) in the cache folder, written
whole or not at all; deleting it only makes the next causes less precise."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kiln import paths
from kiln.cache.keys import Chain, cache_root


@dataclass
class StepRecord:
    key: str | None
    options: str
    files: dict[str, str] = field(default_factory=dict)


@dataclass
class Record:
    key0: str
    source: str  #: the source's token
    source_description: str
    builder: str
    steps: list[StepRecord] = field(default_factory=list)
    final: str | None = None  #: the final key of the last build that succeeded with these inputs
    artifact: str = ""  #: what that build made (a disk path, an image id)
    failed_at: int = 0  #: the provisioner the last build failed in (0: none)
    time: float = 0.0

    @classmethod
    def of(cls, chain: Chain) -> Record:
        steps = [StepRecord(s.key, s.options, dict(s.files)) for s in chain.steps]
        return cls(
            chain.key0, chain.source.token, chain.source.description, chain.builder, steps, time=time.time()
        )


def record_path(template: str, build: str) -> Path:
    name = hashlib.sha256(f"{template}\0{build}".encode()).hexdigest()[:32]
    return cache_root() / "records" / f"{name}.json"


def load(template: str, build: str) -> Record | None:
    try:
        data: Any = json.loads(record_path(template, build).read_text())
        steps = [StepRecord(**s) for s in data.pop("steps")]
        return Record(**data, steps=steps)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def save(template: str, build: str, record: Record) -> None:
    path = record_path(template, build)
    try:
        paths.private_dir(path.parent)
        with paths.atomic_file(path, 0o600) as handle:
            handle.write(json.dumps(asdict(record), sort_keys=True, indent=1).encode())
    except OSError:
        pass  # the record only makes causes precise; a build never fails for it
