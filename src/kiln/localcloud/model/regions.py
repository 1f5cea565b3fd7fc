"""The regions and zones localcloud offers (the names are the real cloud's)."""

from __future__ import annotations

REGIONS: dict[str, str] = {
    "cn-beijing": "华北2（北京）",
    "cn-hangzhou": "华东1（杭州）",
    "cn-shanghai": "华东2（上海）",
    "cn-shenzhen": "华南1（深圳）",
    "cn-hongkong": "中国香港",
    "ap-southeast-1": "新加坡",
    "us-west-1": "美国（硅谷）",
    "eu-central-1": "德国（法兰克福）",
}
ZONE_LETTERS = ("a", "b", "c")
DEFAULT_REGION = "cn-beijing"


def zones_of(region: str) -> list[str]:
    return [f"{region}-{letter}" for letter in ZONE_LETTERS]
