"""A prepared build's cache keys and plan (kiln.cache), as `kiln build` and `kiln plan` see them:
the provisioners' keyed options as prepared (before the builder's generated data is known, so a
`{{ build `ID` }}` counts as its placeholder), their `cache` settings and their environment (the
build's name and type, which the shell provisioners hand to scripts)."""

from __future__ import annotations

from kiln.cache import keys, plan, records
from kiln.components import BuildContext
from kiln.engine.prepare import Build


def template_id(build: Build) -> str:
    path = build.template.path
    return str(path.resolve()) if path is not None else "<stdin>"


def enabled(build: Build, ctx: BuildContext) -> bool:
    return build.builder.cache_default if ctx.cache_mode is None else ctx.cache_mode


def chain(build: Build, ctx: BuildContext) -> keys.Chain | None:
    """None when the builder keeps no cache."""
    source = build.builder.cache_source(ctx)
    if source is None:
        return None
    env = {"PACKER_BUILD_NAME": build.build_name, "PACKER_BUILDER_TYPE": build.builder_type}
    inputs = [
        keys.ProvisionerInput(
            label=p.spec.name if p.spec.name and p.spec.name != p.type else p.type,
            type=p.type,
            config=p.component.config,
            cache=p.spec.cache,
            env=env,
        )
        for p in build.provisioners
    ]
    return keys.chain(build.builder_type, source, build.builder.config, inputs, ctx.work_dir)


def make_plan(build: Build, ctx: BuildContext) -> plan.Plan | None:
    """The build's cache plan, or None when the cache is off for it."""
    if not enabled(build, ctx):
        return None
    found = chain(build, ctx)
    if found is None:
        return None
    previous = records.load(template_id(build), build.name)
    final = found.final
    has_final = final is not None and build.builder.cache_has(final)
    return plan.decide(found, build.builder.cache_has, previous, has_final)


def record(build: Build, found: plan.Plan, failed_at: int = 0, artifact: str = "") -> None:
    """Remember this build's inputs (and, when it succeeded, its final key and artifact)."""
    rec = records.Record.of(found.chain)
    rec.failed_at = failed_at
    if not failed_at and artifact:
        rec.final, rec.artifact = found.final, artifact
    records.save(template_id(build), build.name, rec)


def unchanged(build: Build, found: plan.Plan) -> str:
    """The artifact the last build made with the same final key, if it still exists ("" if not)."""
    previous = records.load(template_id(build), build.name)
    if previous is None or not previous.final or previous.final != found.final:
        return ""
    return previous.artifact if build.builder.cache_artifact_exists(previous.artifact) else ""
