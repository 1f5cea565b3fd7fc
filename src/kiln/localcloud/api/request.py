"""One API request as the actions read it: its parameters, with the cloud's ways of parsing them.

Every parameter rule that more than one action shares is here (lists as `Name.N`, a JSON array or
a comma list; structs as `Name.N.Field`; tags; the region; UserData), each refusing bad input with
the catalogue's error for it.
"""

from __future__ import annotations

import base64
import binascii
import json

from kiln.localcloud import errors
from kiln.localcloud.model.regions import REGIONS

MAX_TAGS = 20
MAX_USER_DATA = 32768  # bytes before Base64 encoding, as RunInstances documents it


class Call:
    def __init__(
        self, action: str, params: dict[str, str], access_key_id: str, request_id: str, product: str = "Ecs"
    ) -> None:
        self.action = action
        self.product = (
            product  # the API called (the registry's product name): actions both have answer each its way
        )
        self.params = params
        self.access_key_id = access_key_id
        self.request_id = request_id
        self._tags: list[dict[str, str]] | None = None

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self.params.get(name)
        return default if value is None or value == "" else value

    def text(self, name: str, default: str = "") -> str:
        """An optional parameter, `default` when absent or empty."""
        value = self.get(name)
        return default if value is None else value

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise errors.missing(name)
        return value

    def integer(self, name: str, default: int, low: int | None = None, high: int | None = None) -> int:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise errors.invalid(name, "must be an integer") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise errors.invalid(name, f"must be between {low} and {high}")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        raw = self.get(name)
        return default if raw is None else raw.lower() == "true"

    def values(self, name: str) -> list[str]:
        """`Name.1`, `Name.2`... or a JSON array in `Name` (`InstanceIds`), or one value in `Name`."""
        numbered = self._numbered(name)
        if numbered:
            return [v for _, v in sorted(numbered.items())]
        raw = self.get(name)
        if raw is None:
            return []
        if raw.startswith("["):
            try:
                values = json.loads(raw)
            except ValueError:
                raise errors.invalid(name, "is not a JSON array") from None
            if not isinstance(values, list):
                raise errors.invalid(name, "is not a JSON array")
            return [str(v) for v in values]
        return [raw]

    def id_set(self, name: str) -> set[str]:
        """Ids in any of the list forms, or comma-separated (`VpcId=vpc-a,vpc-b`)."""
        return {part for value in self.values(name) for part in value.split(",") if part}

    def _numbered(self, name: str) -> dict[int, str]:
        out: dict[int, str] = {}
        prefix = name + "."
        for key, value in self.params.items():
            if key.startswith(prefix) and key[len(prefix) :].isdigit():
                out[int(key[len(prefix) :])] = value
        return out

    def structs(self, name: str) -> list[dict[str, str]]:
        """`Name.N.Field=value` -> one dict per N, in order."""
        found: dict[int, dict[str, str]] = {}
        prefix = name + "."
        for key, value in self.params.items():
            if not key.startswith(prefix):
                continue
            index, dot, field = key[len(prefix) :].partition(".")
            if dot and index.isdigit():
                found.setdefault(int(index), {})[field] = value
        return [found[i] for i in sorted(found)]

    def tags(self) -> list[dict[str, str]]:
        """`Tag.N.Key` / `Tag.N.Value` as [{"TagKey", "TagValue"}]."""
        if self._tags is None:
            tags = [
                {"TagKey": item["Key"], "TagValue": item.get("Value", "")}
                for item in self.structs("Tag")
                if item.get("Key")
            ]
            if len(tags) > MAX_TAGS:
                raise errors.invalid("Tag.N", f"allows at most {MAX_TAGS} tags")
            self._tags = tags
        return self._tags

    @property
    def region(self) -> str | None:
        region = self.get("RegionId")
        if region is not None and region not in REGIONS:
            raise errors.REGION_NOT_FOUND(region)
        return region

    def require_region(self) -> str:
        region = self.region
        if region is None:
            raise errors.missing("RegionId")
        return region

    def user_data(self) -> str | None:
        raw = self.get("UserData")
        if raw is None:
            return None
        if len(raw) > 4 * (MAX_USER_DATA + 2) // 3 + 4:
            raise errors.USER_DATA_TOO_LARGE(f"{len(raw)} bytes of Base64")  # too large even to decode
        try:
            decoded = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise errors.USER_DATA_NOT_BASE64() from None
        if len(decoded) > MAX_USER_DATA:
            raise errors.USER_DATA_TOO_LARGE(f"{len(decoded)} bytes before Base64 encoding")
        return raw
