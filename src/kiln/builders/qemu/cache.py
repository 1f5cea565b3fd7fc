"""The qemu builder's steps for the build cache (kiln.cache.layers).

With the cache on, the VM's disk is made in the cache store over the deepest cached layer (or the
source disk); after each cached provisioner the guest syncs its file systems and QMP
blockdev-snapshot-sync freezes the disk as that provisioner's layer, indexed by its key; once the
machine is off and the output written, the last overlay is kept too, as the finished disk of the
final key. A build whose final key is cached starts no machine: its output is converted from
that layer. The output is always a standalone (flattened) copy, as without the cache.
"""

from __future__ import annotations

import hashlib
import time

from kiln.builders.qemu.state import QemuState
from kiln.cache import layers
from kiln.cache.keys import short
from kiln.communicators.base import RemoteCommand
from kiln.components import BuildContext, Checkpoint
from kiln.engine.steps import Step
from kiln.errors import BuildError, CommunicatorError


def _run_name(ctx: BuildContext) -> str:
    return hashlib.sha256(f"{ctx.run_uuid} {ctx.name}".encode()).hexdigest()[:16]


class StepCacheLayers(Step[QemuState]):
    """Hold the store (prune waits), and put the disk over the deepest cached layer."""

    name = "StepCacheLayers"

    def run(self, state: QemuState, ctx: BuildContext) -> None:
        found = ctx.cache
        if found is None:
            return
        state.run_files = layers.RunFiles(_run_name(ctx))
        assert state.source is not None
        state.below = layers.Layer(key="", file="", chain=[], base=str(state.source.resolve()))
        if found.resume:
            key = found.decisions[found.resume - 1].key or ""
            layer = layers.find(key)
            if layer is None:
                raise BuildError(
                    f"the cache layer of key {short(key)} disappeared while the build started",
                    "build again (it was deleted or pruned meanwhile)",
                )
            state.run_files.stand_on(layer)  # no prune removes it under this build (from now on)
            if not layer.complete():
                raise BuildError(
                    f"the cache layer of key {short(key)} was pruned while the build started", "build again"
                )
            layers.touch(layer)
            state.below = layer
            state.backing = layer.path
            ctx.ui.say(f"Starting from the cached disk after provisioner {found.resume} (key {short(key)})")
        state.top = state.run_files.next()

    def cleanup(self, state: QemuState, ctx: BuildContext) -> None:
        if state.run_files is not None:
            state.run_files.close()
            state.run_files = None


def checkpoint(state: QemuState, ctx: BuildContext) -> Checkpoint | None:
    """After provisioner `index`: sync the guest, freeze the disk, index it as the key's layer."""
    if ctx.cache is None or state.run_files is None:
        return None

    def keep(index: int, key: str) -> None:
        assert state.machine is not None and state.communicator is not None and state.run_files is not None
        began = time.monotonic()
        try:
            status = state.communicator.run(RemoteCommand("sync"), ctx.cancel)
        except CommunicatorError as exc:
            raise BuildError(f"caching the disk after provisioner {index}: sync failed: {exc}") from exc
        if status != 0:
            raise BuildError(f"caching the disk after provisioner {index}: sync exited with {status}")
        state.top = state.run_files.next()
        frozen = state.machine.snapshot(state.top)
        layer = _layer_over(state, key, frozen.name, index, ctx)
        if layers.commit(layer):
            took = time.monotonic() - began
            ctx.ui.say(
                f"Cached the disk after provisioner {index} (key {short(key)}; sync and snapshot {took:.2f} s)"
            )
        state.below = layer

    return keep


def _layer_over(state: QemuState, key: str, file: str, index: int, ctx: BuildContext) -> layers.Layer:
    below = state.below
    assert below is not None
    chain = [*below.chain, below.file] if below.file else []
    comments = list(below.comments) + ([state.key.comment] if state.key is not None else [])
    found = ctx.cache
    label = found.decisions[index - 1].label if found is not None and index else "finished disk"
    return layers.Layer(
        key=key, file=file, chain=chain, base=below.base, comments=list(dict.fromkeys(comments)),
        label=label, index=index, template=ctx.name,
    )  # fmt: skip


class StepForgetCachedKeys(Step[QemuState]):
    """A disk taken from the cache still trusts the temporary keys of the builds that made it: take
    them off, so that the output trusts only what an uncached build's would."""

    name = "StepForgetCachedKeys"

    def run(self, state: QemuState, ctx: BuildContext) -> None:
        below = state.below
        if below is None or not below.comments or state.communicator is None:
            return
        from kiln.communicators.connect import clear_authorized_keys

        for comment in below.comments:
            clear_authorized_keys(state.communicator, comment, ctx)


class StepKeepFinal(Step[QemuState]):
    """Once the output is written: keep the machine's last disk as the finished disk of the final key."""

    name = "StepKeepFinal"

    def run(self, state: QemuState, ctx: BuildContext) -> None:
        found = ctx.cache
        if found is None or found.final is None or state.top is None or not state.top.is_file():
            return
        if layers.commit(_layer_over(state, found.final, state.top.name, 0, ctx)):
            ctx.ui.say(f"Cached the finished disk (key {short(found.final)})")


class StepFromCache(Step[QemuState]):
    """The finished disk of the final key is cached: the output is converted from it, no machine."""

    name = "StepFromCache"

    def run(self, state: QemuState, ctx: BuildContext) -> None:
        from kiln.machines.qemu import convert_image

        found = ctx.cache
        assert found is not None and found.final is not None
        cfg = state.config
        hold = layers.RunFiles(_run_name(ctx))
        try:
            layer = layers.find(found.final)
            if layer is None:
                raise BuildError(
                    f"the cached disk of key {short(found.final)} disappeared while the build started",
                    "build again (it was deleted or pruned meanwhile)",
                )
            layers.touch(layer)
            ctx.ui.say(
                f"Every provisioner is cached: the output is the cached disk (key {short(found.final)})"
            )
            ctx.ui.say("Converting hard drive...")
            state.image = convert_image(
                layer.path,
                state.output_dir / state.vm_name,
                cfg.format,  # type: ignore[arg-type]  # one of FORMATS (validate_qemu)
                compress=cfg.disk_compression,
            )
        finally:
            hold.close()
        state.succeeded = True
