"""How long the emulated cloud takes: per-call latency and the time status transitions need.

The default is fast (tests want seconds, not minutes). A benchmark that replays builds against
localcloud sets something closer to the real cloud, e.g. `call=0.1,instance_start=10,image_create=20`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from kiln.errors import KilnError


@dataclass(frozen=True)
class LatencyProfile:
    """Seconds. A transition never finishes before its time, and never before the machine is ready."""

    call: float = 0.0
    instance_create: float = 0.05
    instance_start: float = 0.2
    instance_stop: float = 0.2
    image_create: float = 0.5
    image_copy: float = 0.5
    image_import: float = 0.5
    snapshot_create: float = 0.3
    network_create: float = 0.05
    eip_associate: float = 0.05

    @classmethod
    def parse(cls, text: str) -> LatencyProfile:
        """`name=seconds[,name=seconds...]`; names are the fields above, `fast` / `cloud` are presets."""
        text = text.strip()
        if text in ("", "fast"):
            return cls()
        if text == "cloud":
            return cls.cloud_like()
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, float] = {}
        for item in text.split(","):
            name, sep, raw = item.partition("=")
            name = name.strip()
            if not sep or name not in names:
                raise KilnError(
                    f"latency profile: unknown setting {item.strip()!r}",
                    f"use name=seconds with names from {', '.join(sorted(names))}, or 'fast' / 'cloud'",
                )
            try:
                value = float(raw)
            except ValueError:
                raise KilnError(
                    f"latency profile: {name}={raw!r} is not a number of seconds", "e.g. instance_start=10"
                ) from None
            if value < 0:
                raise KilnError(f"latency profile: {name} must not be negative", "use 0 for instant")
            values[name] = value
        return cls(**values)

    @classmethod
    def cloud_like(cls) -> LatencyProfile:
        """Roughly what a build sees on the real cloud."""
        return cls(
            call=0.1,
            instance_create=2.0,
            instance_start=10.0,
            instance_stop=5.0,
            image_create=20.0,
            image_copy=30.0,
            image_import=60.0,
            snapshot_create=10.0,
            network_create=1.0,
            eip_associate=1.0,
        )

    def render(self) -> str:
        return ",".join(f"{f.name}={getattr(self, f.name):g}" for f in dataclasses.fields(self))
