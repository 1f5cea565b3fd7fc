"""From a loaded template to prepared builds: select builds (-only/-except), create each
component, decode and validate its config with the build's variables, and report every problem
of every component at once."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kiln import registry, weak
from kiln.components import Builder, PostProcessor, Provisioner
from kiln.config import DecodeContext
from kiln.core.secrets import REDACTOR
from kiln.errors import TemplateProblems
from kiln.template import InterpContext, render
from kiln.template.model import ComponentSpec, Template


@dataclass
class PreparedProvisioner:
    spec: ComponentSpec
    component: Provisioner
    config: dict[str, Any]  #: the raw config after `override`, for re-preparing with generated data
    max_retries: int = 0  #: the spec's, with a templated one rendered for this build

    @property
    def type(self) -> str:
        return self.spec.type


@dataclass
class PreparedPostProcessor:
    spec: ComponentSpec
    component: PostProcessor

    @property
    def display_name(self) -> str:
        return self.spec.name or self.spec.type


@dataclass
class Build:
    name: str
    builder_type: str
    spec: ComponentSpec
    builder: Builder
    template: Template
    variables: dict[str, str]
    provisioners: list[PreparedProvisioner] = field(default_factory=list)
    post_processors: list[list[PreparedPostProcessor]] = field(default_factory=list)
    error_cleanup: PreparedProvisioner | None = None
    force: bool = False  #: -force: components derive their effective options from it when prepared

    @property
    def build_name(self) -> str:
        return self.spec.build_name or self.name

    def interp(
        self, generated: Mapping[str, str] | None = None, data: Mapping[str, Any] | None = None
    ) -> InterpContext:
        return interp_context(
            self.template, self.variables, self.build_name, self.builder_type, generated, data
        )


def interp_context(
    template: Template,
    variables: Mapping[str, str],
    build_name: str = "",
    build_type: str = "",
    generated: Mapping[str, str] | None = None,
    data: Mapping[str, Any] | None = None,
) -> InterpContext:
    return InterpContext(
        user_variables=dict(variables),
        template_dir=str(template.dir),
        build_name=build_name,
        build_type=build_type,
        data=dict(data) if data is not None else None,
        generated=dict(generated) if generated is not None else None,
    )


def _matches(name: str, patterns: list[str], glob: bool) -> bool:
    return any(fnmatch.fnmatchcase(name, p) if glob else name == p for p in patterns)


def select_builders(template: Template, only: list[str], except_: list[str]) -> list[ComponentSpec]:
    glob = template.kind == "hcl2"
    selected = []
    for spec in template.builders:
        if only and not _matches(spec.name, only, glob):
            continue
        if except_ and _matches(spec.name, except_, glob):
            continue
        selected.append(spec)
    return selected


def _decode_ctx(build: Build, generated: Mapping[str, str] | None = None) -> DecodeContext:
    ictx = build.interp(generated)
    return DecodeContext(
        render=lambda text: render(text, ictx), hcl2=build.template.kind == "hcl2", force=build.force
    )


def prepare_builds(
    template: Template,
    variables: dict[str, str],
    only: list[str] | None = None,
    except_: list[str] | None = None,
    unknown_builders: dict[str, str] | None = None,
    force: bool = False,
) -> list[Build]:
    """Create and validate every selected build. Raises TemplateProblems listing every problem.

    With `unknown_builders` given, a build whose builder type does not exist is not a template
    problem: it is put there (name -> message) and the other builds still run, as in Packer."""
    only, except_ = only or [], except_ or []
    problems: list[str] = []
    builds: list[Build] = []
    for spec in select_builders(template, only, except_):
        builder_cls = registry.load(registry.BUILDERS, spec.type)
        if builder_cls is None:
            message = f'{spec.path}: unknown builder type "{spec.type}" (known: {", ".join(sorted(registry.BUILDERS))})'
            if unknown_builders is None:
                problems.append(message)
            else:
                unknown_builders[spec.name] = message
            continue
        build = Build(spec.name, spec.type, spec, builder_cls(), template, variables, force=force)
        dctx = _decode_ctx(build)
        build.builder.prepare(spec.config, dctx, spec.path)
        problems += dctx.errors
        REDACTOR.add(*dctx.secrets)
        for pspec in template.provisioners:
            if not pspec.applies_to(build.name):
                continue
            prov = _prepare_provisioner(build, pspec, problems)
            if prov is not None:
                build.provisioners.append(prov)
        if template.error_cleanup_provisioner is not None:
            build.error_cleanup = _prepare_provisioner(build, template.error_cleanup_provisioner, problems)
        for chain in template.post_processors:
            prepared_chain = []
            for ppspec in chain:
                if not ppspec.applies_to(build.name):
                    continue
                # -except names post-processors too, and skips the rest of that chain (as Packer
                # does); -only names builds only
                if ppspec.name and _matches(ppspec.name, except_, template.kind == "hcl2"):
                    break
                pp = _prepare_post_processor(build, ppspec, problems)
                if pp is not None:
                    prepared_chain.append(pp)
            if prepared_chain:
                build.post_processors.append(prepared_chain)
        builds.append(build)
    if problems:
        # A provisioner shared by several builds reports the same problem once per build.
        unique = list(dict.fromkeys(problems))
        raise TemplateProblems(template.display_path, unique)
    return builds


def _prepare_provisioner(
    build: Build, spec: ComponentSpec, problems: list[str]
) -> PreparedProvisioner | None:
    config = dict(spec.config)
    config.update(spec.override.get(build.name, {}))
    component = _create(registry.PROVISIONERS, "provisioner", build, spec, config, problems)
    if component is None:
        return None
    return PreparedProvisioner(spec, component, config, _max_retries(build, spec, problems))


def _max_retries(build: Build, spec: ComponentSpec, problems: list[str]) -> int:
    """`max_retries`, rendered with the build's variables when it is a template (as Packer does)."""
    if not spec.max_retries_text:
        return spec.max_retries
    dctx = _decode_ctx(build)
    assert dctx.render is not None
    try:
        text = dctx.render(spec.max_retries_text)
    except Exception as exc:  # the template engine's errors name the problem; we add where
        problems.append(f"{spec.path}.max_retries: error processing template: {exc}")
        return 0
    retries = weak.parse_int(text) if text.strip() else 0
    if retries is None:
        problems.append(f'{spec.path}.max_retries: `max_retries` must be a valid integer, got "{text}"')
        return 0
    return retries


def _prepare_post_processor(
    build: Build, spec: ComponentSpec, problems: list[str]
) -> PreparedPostProcessor | None:
    component = _create(registry.POST_PROCESSORS, "post-processor", build, spec, spec.config, problems)
    return PreparedPostProcessor(spec, component) if component is not None else None


def _create(
    table: dict[str, str],
    kind: str,
    build: Build,
    spec: ComponentSpec,
    config: Mapping[str, Any],
    problems: list[str],
) -> Any:
    """The component `spec` names, prepared with `config`; None (and a problem) for an unknown type."""
    cls = registry.load(table, spec.type)
    if cls is None:
        problems.append(f'{spec.path}: unknown {kind} type "{spec.type}" (known: {", ".join(sorted(table))})')
        return None
    component = cls()
    dctx = _decode_ctx(build)
    component.prepare(config, dctx, spec.path)
    problems += dctx.errors
    REDACTOR.add(*dctx.secrets)
    return component


def reprepare(
    build: Build,
    generated: Mapping[str, str],
    component: Provisioner | PostProcessor,
    spec: ComponentSpec,
    config: Mapping[str, Any],
) -> None:
    """Prepare a component again now that the builder's generated data (`{{ build `X` }}`) is known."""
    dctx = _decode_ctx(build, generated)
    component.prepare(config, dctx, spec.path)
    REDACTOR.add(*dctx.secrets)
    if dctx.errors:
        raise TemplateProblems(build.template.display_path, dctx.errors)
