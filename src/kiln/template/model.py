"""A template once loaded: the same model for legacy JSON and (later) HCL2.

Component configs stay raw (un-rendered mappings) here: they are rendered when a build prepares
them, because `{{build_name}}` and `{{ build `X` }}` depend on the build.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Variable:
    name: str
    default: str | None  #: None: required (a `null` default in JSON)
    sensitive: bool = False
    description: str = ""

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass
class ComponentSpec:
    """One builder, provisioner or post-processor as written in the template."""

    type: str
    path: str  #: where it is in the template: "builders[0]", "post-processors[1][0]"
    config: dict[str, Any]  #: the component's own keys (only/except/override/... removed)
    name: str = ""  #: builders: `name` or the type; post-processors: `name` or the type
    #: builders: what `{{build_name}}`, PACKER_BUILD_NAME and the manifest call the build; "" means
    #: `name` (HCL2: the source's name, while `name` is the full TYPE.NAME / BUILD.TYPE.NAME)
    build_name: str = ""
    only: list[str] = field(default_factory=list)
    except_: list[str] = field(default_factory=list)
    #: provisioners: per-builder-name config overrides
    override: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: provisioners: seconds to wait before running, per-try timeout, retries
    pause_before: float = 0.0
    timeout: float = 0.0
    max_retries: int = 0
    #: provisioners: `max_retries` when it is a template ("{{user `n`}}"), rendered by the build
    #: with the user variables and then read as an integer; "" when max_retries is a number
    max_retries_text: str = ""
    #: provisioners: `cache = false` makes it run at every build (and nothing after it is cached)
    cache: bool = True
    #: post-processors: keep the input artifact (None: not set)
    keep_input_artifact: bool | None = None

    def applies_to(self, build_name: str) -> bool:
        if self.only:
            return build_name in self.only
        return build_name not in self.except_


@dataclass
class Template:
    path: Path | None  #: None when read from standard input
    dir: Path  #: template_dir: the folder relative paths in the template are relative to
    description: str = ""
    min_version: str = ""
    variables: dict[str, Variable] = field(default_factory=dict)
    #: names of variables whose values must be hidden (JSON `sensitive-variables`)
    sensitive_variables: list[str] = field(default_factory=list)
    builders: list[ComponentSpec] = field(default_factory=list)
    provisioners: list[ComponentSpec] = field(default_factory=list)
    #: each element is a chain (a list of post-processors run one after another)
    post_processors: list[list[ComponentSpec]] = field(default_factory=list)
    error_cleanup_provisioner: ComponentSpec | None = None
    #: "json" or "hcl2"
    kind: str = "json"
    #: the path as the user wrote it, for messages ("" : use `path`)
    source: str = ""
    #: HCL2: names set in var files that no variable block declares (Packer warns about each)
    undeclared_variables: list[str] = field(default_factory=list)
    #: the values of sensitive variables (and HCL2's sensitive locals), known once resolve_variables()
    #: has run; whoever resolves the variables registers them with kiln.core.secrets before printing
    sensitive_values: list[str] = field(default_factory=list)
    #: HCL2: the parsed files, until resolve_variables() evaluates them (private to the loader)
    hcl: Any = None

    @property
    def display_path(self) -> str:
        if self.source:
            return self.source
        return str(self.path) if self.path is not None else "<stdin>"
