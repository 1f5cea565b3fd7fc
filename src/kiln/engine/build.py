"""One build: the builder's steps (provisioning runs inside them, once the machine is reachable),
then each post-processor chain in order, with Packer's keep_input_artifact rules."""

from __future__ import annotations

import threading
from typing import Any

from kiln.cache.keys import short
from kiln.cache.plan import Decision
from kiln.communicators.base import Communicator
from kiln.components import Artifact, BuildContext, Checkpoint, OnError
from kiln.config import Duration
from kiln.core.cancel import CancelToken
from kiln.engine import cacheplan
from kiln.engine.prepare import Build, PreparedProvisioner, reprepare
from kiln.errors import BuildError, CancelledError
from kiln.template import render


def run_build(build: Build, ctx: BuildContext) -> list[Artifact]:
    """Run the build and return its artifacts (empty if the builder made none)."""
    ctx.generated.setdefault("PackerRunUUID", ctx.run_uuid)
    ctx.render = lambda text, data: render(text, build.interp(ctx.generated, data))
    failed = [0]
    ctx.provision = lambda comm, checkpoint=None: provision(build, ctx, comm, checkpoint, failed)
    ctx.cache = found = cacheplan.make_plan(build, ctx)
    if found is not None:
        if ctx.if_changed and (artifact_id := cacheplan.unchanged(build, found)):
            ctx.ui.say(
                f"Skipping the build: nothing changed since the last one (key {short(found.final)}), "
                f"whose artifact {artifact_id} still exists"
            )
            return []
        for decision in found.decisions:
            if decision.hit:
                _say_decision(ctx, decision)
        if not found.chain.steps:
            ctx.ui.say("No provisioners: nothing to take from the cache")
    try:
        artifact = build.builder.run(ctx)
    except BaseException:
        if found is not None:
            cacheplan.record(build, found, failed_at=failed[0] or len(build.provisioners) + 1)
        raise
    if artifact is None:
        return []
    if found is not None:
        cacheplan.record(build, found, artifact=artifact.files[0] if artifact.files else artifact.id)
        artifact.cache_keys = [d.key or "" for d in found.decisions]
    return post_process(build, ctx, artifact)


def _say_decision(ctx: BuildContext, decision: Decision) -> None:
    ctx.ui.say(decision.line())
    ctx.ui.machine(
        "cache", str(decision.index), "hit" if decision.hit else "run", decision.key or "", decision.cause
    )


def provision(
    build: Build,
    ctx: BuildContext,
    comm: Communicator,
    checkpoint: Checkpoint | None = None,
    failed: list[int] | None = None,
) -> None:
    """The provision hook: run each provisioner in order, wrapped in pause_before, timeout and
    max_retries; on failure, run the error-cleanup-provisioner (unless -on-error=abort). With a
    cache plan, the provisioners it takes from the cache are skipped, each one that runs says why,
    and `checkpoint` is called after each one that has a key."""
    found = ctx.cache
    for index, prov in enumerate(build.provisioners, 1):
        decision = found.decisions[index - 1] if found is not None else None
        if decision is not None:
            if decision.hit:
                continue
            _say_decision(ctx, decision)
        try:
            _run_provisioner(build, ctx, comm, prov)
            if decision is not None and decision.key and checkpoint is not None:
                checkpoint(index, decision.key)
        except CancelledError:
            if failed is not None:
                failed[0] = index
            raise
        except Exception as exc:
            if failed is not None:
                failed[0] = index
            if build.error_cleanup is not None and ctx.on_error is not OnError.ABORT:
                ctx.ui.say("Provisioning step had errors: Running the cleanup provisioner, if present...")
                try:
                    _run_provisioner(build, ctx, comm, build.error_cleanup)
                except Exception as cleanup_exc:
                    ctx.ui.error(f"Error running the cleanup provisioner: {cleanup_exc}")
            raise exc


def _run_provisioner(build: Build, ctx: BuildContext, comm: Communicator, prov: PreparedProvisioner) -> None:
    spec = prov.spec
    reprepare(build, ctx.generated, prov.component, spec, prov.config)
    attempts = max(0, prov.max_retries) + 1
    for attempt in range(attempts):
        if spec.pause_before > 0:
            ctx.ui.say(f"Pausing {Duration(spec.pause_before)} before the next provisioner...")
            ctx.cancel.sleep(spec.pause_before)
        try:
            _with_timeout(ctx, spec.timeout, lambda c: prov.component.provision(c, comm))
            return
        except CancelledError:
            raise
        except Exception as exc:
            left = attempts - attempt - 1
            if left <= 0:
                raise
            ctx.ui.say(f'Provisioner failed with "{exc}", retrying with {left} trie(s) left')


def _with_timeout(ctx: BuildContext, timeout: float, fn: Any) -> None:
    if timeout <= 0:
        fn(ctx)
        return
    ctx.ui.say(f"Setting a {Duration(timeout)} timeout for the next provisioner...")
    token = CancelToken()
    unregister = ctx.cancel.on_cancel(token.cancel)
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        ctx.ui.say("Cancelling provisioner after a timeout...")
        token.cancel()

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    child = _copy_ctx(ctx, cancel=token)
    try:
        fn(child)
    except CancelledError as exc:
        if timed_out.is_set() and not ctx.cancel.cancelled:
            raise BuildError(f"provisioner timed out after {Duration(timeout)}") from exc
        raise
    finally:
        timer.cancel()
        unregister()
    if timed_out.is_set() and not ctx.cancel.cancelled:
        raise BuildError(f"provisioner timed out after {Duration(timeout)}")


def _copy_ctx(ctx: BuildContext, **changes: Any) -> BuildContext:
    import dataclasses

    return dataclasses.replace(ctx, **changes)


def post_process(build: Build, ctx: BuildContext, builder_artifact: Artifact) -> list[Artifact]:
    """Run each post-processor chain on the builder's artifact (Packer's rules for what is kept)."""
    artifacts: list[Artifact] = []
    errors: list[str] = []
    keep_original = not build.post_processors
    for chain in build.post_processors:
        prior = builder_artifact
        for index, pp in enumerate(chain):
            ctx.cancel.check()
            ctx.ui.say(f"Running post-processor: {pp.display_name}")
            reprepare(build, ctx.generated, pp.component, pp.spec, pp.spec.config)
            try:
                result = pp.component.post_process(ctx, prior)
            except CancelledError:
                raise
            except Exception as exc:
                message = f"Post-processor failed: {exc}"
                ctx.ui.error(message)
                errors.append(message)
                break
            keep = result.keep
            user_keep = pp.spec.keep_input_artifact
            if user_keep is not None:
                if result.keep and not user_keep and result.force_override:
                    ctx.log.info(
                        "the %s post-processor forces keep_input_artifact=true; ignoring the template's false",
                        pp.spec.type,
                    )
                else:
                    keep = user_keep
            if index == 0:
                keep_original = keep
            elif not keep:
                _destroy(ctx, prior)
            prior = result.artifact
        else:
            artifacts.append(prior)
            continue
    if keep_original:
        artifacts.insert(0, builder_artifact)
    else:
        _destroy(ctx, builder_artifact)
    if errors:
        raise BuildError(errors[0] if len(errors) == 1 else "; ".join(errors))
    return artifacts


def _destroy(ctx: BuildContext, artifact: Artifact) -> None:
    try:
        artifact.destroy()
    except Exception as exc:
        ctx.ui.error(f"Error destroying intermediate artifact {artifact.id or artifact.string()}: {exc}")
