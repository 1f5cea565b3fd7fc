"""What `kiln cleanup` does: find a dead run's resources (journal + tag) and delete them in order."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kiln.alicloud import reaper
from kiln.alicloud.access import AccessConfig
from kiln.alicloud.client import AlicloudClient
from kiln.alicloud.heartbeat import STALE_AFTER
from kiln.alicloud.journal import FAILED, KINDS, Journal, all_journals
from kiln.duration import go_duration
from kiln.errors import KilnError
from kiln.liveness import Verdict


@dataclass
class Run:
    """A run as cleanup sees it: its journal here (if any), and its resources found by tag."""

    run_id: str
    journal: Journal | None = None
    tagged: list[reaper.Tagged] = field(default_factory=list)
    endpoint: str | None = None

    def newest_heartbeat(self) -> float | None:
        beats = [t.heartbeat for t in self.tagged if t.heartbeat is not None]
        if self.journal is not None:
            beats.append(self.journal.heartbeat)
        return max(beats) if beats else None

    def verdict(self) -> Verdict:
        """The journal's verdict; without one, the owner's named by the tags (UNKNOWN if they
        name none, or a process this host cannot look up)."""
        if self.journal is not None:
            return self.journal.verdict()
        owners = {t.owner for t in self.tagged if t.owner is not None}
        verdicts = {owner.verdict() for owner in owners}
        return verdicts.pop() if len(verdicts) == 1 else Verdict.UNKNOWN

    def describe_owner(self) -> str:
        if self.journal is not None:
            return self.journal.owner.describe()
        owner = next((t.owner for t in self.tagged if t.owner is not None), None)
        return owner.describe() if owner else "?"

    def host(self) -> str:
        if self.journal is not None:
            return self.journal.owner.host
        return next((t.host for t in self.tagged if t.host), "")


@dataclass
class Cleanup:
    regions: list[str] = field(default_factory=list)
    dry_run: bool = False
    say: Callable[[str], None] = print
    error: Callable[[str], None] = print
    #: a run this process cannot look up is stale once its newest heartbeat is this old (seconds)
    older_than: float = STALE_AFTER
    #: --run-id: delete even while the run's heartbeat is fresh
    force: bool = False

    def _client(self, region: str, endpoint: str | None) -> AlicloudClient:
        access = AccessConfig()
        access.apply_environment()
        if endpoint and not os.environ.get("KILN_ALICLOUD_ENDPOINT"):
            access.custom_endpoint_ecs = endpoint
        if not (access.access_key or access.profile or os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID")):
            self.say("(no ALICLOUD_ACCESS_KEY / ALICLOUD_PROFILE set: using the default credential chain)")
        return AlicloudClient(access, region)

    def _default_regions(self) -> list[str]:
        env = os.environ.get("ALICLOUD_REGION") or os.environ.get("ALIBABA_CLOUD_REGION_ID")
        return list(self.regions) or ([env] if env else [])

    def run_id(self, run_id: str) -> int:
        journal = next((j for j in all_journals() if j.run_id == run_id), None)
        regions = set(self._default_regions())
        if journal is not None:
            regions |= {journal.region} | {e.region for e in journal.entries}
        if not regions:
            raise KilnError(f"no journal for run {run_id} and no region to search", "add --region REGION")
        run = Run(run_id, journal, endpoint=journal.endpoint if journal else None)
        if journal is None or journal.verdict() is not Verdict.DEAD:
            for region in sorted(regions):
                run.tagged += reaper.find_tagged(self._client(region, run.endpoint), run_id)
        verdict = run.verdict()
        if verdict is Verdict.ALIVE:
            raise KilnError(
                f"run {run_id} is still running ({run.describe_owner()})",
                "stop that build first (Ctrl-C cleans up by itself), or wait for it",
            )
        why = self._alive_by_heartbeat(run) if verdict is Verdict.UNKNOWN and not self.force else ""
        if why:
            raise KilnError(
                f"run {run_id} may still be running: {why}",
                "stop that build, or add --force if you know it is gone",
            )
        return self._clean(run_id, journal, sorted(regions))

    def _alive_by_heartbeat(self, run: Run) -> str:
        """Why a run this process cannot look up counts as alive ("" if it is stale)."""
        newest = run.newest_heartbeat()
        host = run.host() or "an unknown host"
        if newest is None:
            return f"its resources carry no heartbeat (host {host}); `kiln cleanup --run-id {run.run_id}` deletes them"
        age = time.time() - newest
        if age < self.older_than:
            return (
                f"its last heartbeat came {go_duration(max(0, int(age)))} ago from host {host} "
                f"(stale after {go_duration(self.older_than)} without one: --older-than)"
            )
        return ""

    def stale(self) -> int:
        """Clean every run that is provably over: its journal here names a dead process, or
        (known only by tag, or from a journal of another host, boot or pid namespace) its newest
        heartbeat is older than `older_than`. Every run skipped as alive is named, with why."""
        runs = {j.run_id: Run(j.run_id, j, endpoint=j.endpoint) for j in all_journals()}
        journals = [r.journal for r in runs.values() if r.journal is not None]
        endpoints: set[str | None] = {j.endpoint for j in journals if j.endpoint} or {None}
        for region in self._default_regions() or sorted({j.region for j in journals}):
            for endpoint in endpoints:
                for found in reaper.find_tagged(self._client(region, endpoint), None):
                    run = runs.setdefault(found.run_id, Run(found.run_id, endpoint=endpoint))
                    run.tagged.append(found)
        failed = cleaned = 0
        skipped: list[str] = []
        for run_id, run in sorted(runs.items()):
            if not self._deletable(run):
                continue  # nothing, or only what cleanup keeps (a finished build's image)
            verdict = run.verdict()
            if verdict is Verdict.ALIVE:
                skipped.append(f"Skipping run {run_id}: still running ({run.describe_owner()})")
                continue
            why = self._alive_by_heartbeat(run) if verdict is Verdict.UNKNOWN else ""
            if why:
                skipped.append(f"Skipping run {run_id}: {why}")
                continue
            regions = {t.region for t in run.tagged} | set(self.regions)
            if run.journal is not None:
                regions |= {run.journal.region} | {e.region for e in run.journal.entries}
            failed += self._clean(run_id, run.journal, sorted(regions), run.endpoint)
            cleaned += 1
        for line in skipped:
            self.say(line)
        if not cleaned:
            self.say(
                "Nothing to clean up."
                if not skipped
                else f"Nothing else to clean up: {len(skipped)} run(s) skipped as possibly alive (above)."
            )
        return failed

    @staticmethod
    def _deletable(run: Run) -> bool:
        """Whether the run has anything `_clean` would delete (it keeps the images a journal marks
        kept, and, without a journal, every available image: a finished build's artifact)."""
        if run.journal is not None:
            kept = {e.id for e in run.journal.entries if e.state == "kept"}
            return bool(run.journal.leftovers()) or any(t.id not in kept for t in run.tagged)
        return any(not (t.kind == "image" and t.status == "Available") for t in run.tagged)

    def _clean(
        self, run_id: str, journal: Journal | None, regions: list[str], endpoint: str | None = None
    ) -> int:
        endpoint = journal.endpoint if journal is not None else endpoint
        kept = {e.id for e in journal.entries if e.state == "kept"} if journal else set()
        failed = 0
        for region in regions:
            client = self._client(region, endpoint)
            targets: dict[str, set[str]] = {kind: set() for kind in KINDS}
            if journal is not None:
                for entry in journal.leftovers():
                    if entry.region == region and entry.id:
                        targets[entry.kind].add(entry.id)
            for found in reaper.find_tagged(client, run_id):
                if found.id in kept:
                    continue
                # Without journal evidence an available image may be a finished build's artifact.
                if found.kind == "image" and journal is None and found.status == "Available":
                    self.say(
                        f"Keeping image {found.id} ({region}): available, and no journal says it is temporary"
                    )
                    continue
                targets[found.kind].add(found.id)
            for kind in KINDS:
                for rid in sorted(targets[kind]):
                    label = kind.replace("_", " ")
                    if self.dry_run:
                        self.say(f"Would delete {label} {rid} ({region}, run {run_id})")
                        continue
                    self.say(f"Deleting {label} {rid} ({region}, run {run_id})")
                    try:
                        reaper.DELETERS[kind](client, rid)
                    except Exception as exc:
                        self.error(f"Could not delete {label} {rid} in {region}: {exc}")
                        failed += 1
                        continue
                    if journal is not None:
                        journal.deleted(kind, rid)
        if journal is not None and not self.dry_run and not failed:
            for entry in journal.entries:
                if entry.state == "pending":
                    journal.forget_pending(entry.token)
            if journal.status != "finished":
                journal.finish(FAILED)
        return failed
