"""What `kiln cleanup` does: find a dead run's resources (journal + tag) and delete them in order."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from kiln.alicloud import reaper
from kiln.alicloud.access import AccessConfig
from kiln.alicloud.client import AlicloudClient
from kiln.alicloud.journal import FAILED, KINDS, Journal, all_journals
from kiln.errors import KilnError


@dataclass
class Cleanup:
    regions: list[str] = field(default_factory=list)
    dry_run: bool = False
    say: Callable[[str], None] = print
    error: Callable[[str], None] = print

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
        if journal is not None and journal.is_alive():
            raise KilnError(
                f"run {run_id} is still running (pid {journal.pid})",
                "stop that build first (Ctrl-C cleans up by itself), or wait for it",
            )
        regions = set(self._default_regions())
        if journal is not None:
            regions |= {journal.region} | {e.region for e in journal.entries}
        if not regions:
            raise KilnError(f"no journal for run {run_id} and no region to search", "add --region REGION")
        return self._clean(run_id, journal, sorted(regions))

    def stale(self) -> int:
        journals = all_journals()
        live = {j.run_id for j in journals if j.is_alive()}
        failed = 0
        done: set[str] = set()
        for journal in journals:
            if journal.run_id in live or not journal.leftovers():
                continue
            regions = sorted({journal.region} | {e.region for e in journal.entries} | set(self.regions))
            failed += self._clean(journal.run_id, journal, regions)
            done.add(journal.run_id)
        # Runs without a journal (or with a lost one) are found by tag alone.
        endpoints: set[str | None] = {j.endpoint for j in journals if j.endpoint} or {None}
        for region in self._default_regions() or sorted({j.region for j in journals}):
            for endpoint in endpoints:
                client = self._client(region, endpoint)
                tagged = reaper.find_tagged(client, None)
                for run_id in sorted({t.run_id for t in tagged} - live - done):
                    owner = next((j for j in journals if j.run_id == run_id), None)
                    failed += self._clean(run_id, owner, [region], endpoint)
                    done.add(run_id)
        if not done:
            self.say("Nothing to clean up.")
        return failed

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
