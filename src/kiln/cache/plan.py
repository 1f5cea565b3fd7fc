"""Which provisioners a build takes from the cache, and why the others run.

The build resumes after the deepest provisioner whose key has a complete layer in the store (the
chain makes every earlier key part of it); each provisioner after it runs, with a cause found by
comparing with the last build's record: its own file or options changed, an earlier one changed,
the source changed, its layer was deleted, it failed last time, or it is not cached."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kiln.cache.keys import Chain, StepKey, short
from kiln.cache.records import Record


@dataclass(frozen=True)
class Decision:
    index: int
    label: str
    key: str | None
    hit: bool
    cause: str  #: why it runs ("" for a hit)

    def line(self) -> str:
        if self.hit:
            return f"Provisioner {self.index} ({self.label}): cache hit (key {short(self.key)})"
        return f"Provisioner {self.index} ({self.label}): running: {self.cause}"


@dataclass(frozen=True)
class Plan:
    chain: Chain
    decisions: tuple[Decision, ...]
    resume: int  #: how many provisioners are taken from the cache
    final_hit: bool  #: the finished disk itself is in the store: nothing runs, no machine starts

    @property
    def final(self) -> str | None:
        return self.chain.final


def decide(
    chain: Chain, has: Callable[[str], bool], previous: Record | None, has_final: bool = False
) -> Plan:
    """`has(key)`: the store holds a complete layer for the key; `has_final`: it holds the finished
    disk of `chain.final`."""
    resume = 0
    for step in chain.steps:
        if step.key is not None and has(step.key):
            resume = step.index
    final_hit = has_final and chain.final is not None
    if final_hit:
        resume = len(chain.steps)
    decisions: list[Decision] = []
    first_cause = ""
    for step in chain.steps:
        if step.index <= resume:
            decisions.append(Decision(step.index, step.label, step.key, True, ""))
            continue
        own = _own_cause(chain, step, previous)
        if step.index == resume + 1:
            cause = own or _missing_cause(chain, step, previous, resume)
            first_cause = cause
        else:
            cause = own or _later_cause(chain, resume + 1, first_cause)
        decisions.append(Decision(step.index, step.label, step.key, False, cause))
    return Plan(chain, tuple(decisions), resume, final_hit)


def _own_cause(chain: Chain, step: StepKey, previous: Record | None) -> str:
    if not step.cache:
        return "cache = false for this provisioner"
    if previous is None or previous.key0 != chain.key0:
        return ""
    if step.index > len(previous.steps):
        return f"provisioner {step.index} is new"
    before = previous.steps[step.index - 1]
    changed = [name for name, value in step.files.items() if before.files.get(name) not in (None, value)]
    added = [name for name in step.files if name not in before.files]
    if changed:
        return ", ".join(changed[:3]) + (
            " changed" if len(changed) <= 3 else f" and {len(changed) - 3} more changed"
        )
    if before.options != step.options or added:
        return f"provisioner {step.index} changed"
    return ""


def _missing_cause(chain: Chain, step: StepKey, previous: Record | None, resume: int) -> str:
    if step.key is None:
        off = next(s.index for s in chain.steps if not s.cache)
        return f"provisioner {off} has cache = false, so nothing after it is cached"
    if previous is None:
        if resume == 0:
            return f"no cache for source {chain.source.description}"
        return f"no cache layer for key {short(step.key)}"
    if previous.source != chain.source.token:
        return f"source changed: {chain.source.description}"
    if previous.key0 != chain.key0:
        return "builder options changed"
    if previous.failed_at == step.index:
        return "it failed in the last build"
    if previous.failed_at and previous.failed_at < step.index:
        return f"the last build failed before it (in provisioner {previous.failed_at})"
    return f"no cache layer for key {short(step.key)} (deleted or pruned)"


def _later_cause(chain: Chain, first: int, first_cause: str) -> str:
    step = chain.steps[first - 1]
    if not step.cache or step.key is None:
        return f"provisioner {first} is not cached"
    if first_cause.startswith(("no cache for source", "source changed", "builder options changed")):
        return first_cause
    return f"provisioner {first} runs ({first_cause})"
