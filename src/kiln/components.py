"""What builders, provisioners and post-processors are, and what they get from the engine.

A component class declares its options as a dataclass (`Config`, see kiln.config) and implements
one method: `Builder.run`, `Provisioner.provision` or `PostProcessor.post_process`. The engine
decodes and validates the config (`prepare`), which is then frozen, and calls that method with a
`BuildContext`. Components are found by type name in `kiln.registry` and imported only when a
template uses them; what they declare about themselves (options, generated data, whether they need
the machine) is what `kiln inspect -options TYPE` and docs/options.md show.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from kiln.communicators.base import Communicator
from kiln.config import DecodeContext, decode, freeze
from kiln.core.cancel import CancelToken
from kiln.core.ui import Ui

if TYPE_CHECKING:
    import logging

    from kiln.cache.keys import Source
    from kiln.cache.plan import Plan

#: Called by a builder's provisioning step after provisioner `index` (1-based) succeeded, with its
#: cache key: the builder keeps the machine's state under that key (a qemu disk layer).
Checkpoint = Callable[[int, str], None]


class ProvisionHook(Protocol):
    def __call__(self, comm: Communicator, checkpoint: Checkpoint | None = None) -> None: ...


def _no_provisioning(comm: Communicator, checkpoint: Checkpoint | None = None) -> None:
    pass


class OnError(StrEnum):
    CLEANUP = "cleanup"
    ABORT = "abort"
    ASK = "ask"
    RUN_CLEANUP_PROVISIONER = "run-cleanup-provisioner"


@dataclass
class BuildContext:
    """What a build's components get from the engine."""

    name: str  #: the build's name as the UI shows it (builder name, or `TYPE.NAME` in HCL2)
    builder_type: str
    ui: Ui
    cancel: CancelToken
    log: logging.Logger
    run_uuid: str
    work_dir: Path  #: the folder kiln was started in; relative paths in templates are relative to it
    on_error: OnError = OnError.CLEANUP
    debug: bool = False
    force: bool = False
    #: what `{{build_name}}`, PACKER_BUILD_NAME and the manifest call the build (HCL2: the source's
    #: name, `test` for `null.test`); "" means `name`
    build_name: str = ""
    #: Render a `raw` option now, with extra `{{.Name}}` fields (`Path`, `Vars`...). Set by the engine.
    render: Callable[[str, Mapping[str, Any]], str] = field(default=lambda text, data: text)
    #: Run the template's provisioners against the machine (those the cache plan does not take from
    #: the cache), calling the checkpoint after each cached one. Builders call it once the machine is
    #: reachable. Set by the engine.
    provision: ProvisionHook = field(default=_no_provisioning)
    #: -cache / -no-cache (None: the builder's default)
    cache_mode: bool | None = None
    #: -if-changed: skip a build whose final key is the one the last build made, if its artifact exists
    if_changed: bool = False
    #: what the cache gives this build (None: the cache is off); set by the engine before `run`
    cache: Plan | None = None
    #: Data a builder makes available to provisioners and post-processors: `{{ build `ID` }}`.
    generated: dict[str, str] = field(default_factory=dict)

    def scratch_dir(self) -> Path:
        """The run's own private folder on this host, for files that must not outlive it (see
        kiln.runs): removed when the run ends, and swept after a run that was killed."""
        from kiln import runs

        return runs.run_dir(self.run_uuid)

    def pause(self, message: str) -> None:
        """In -debug mode: show the message and wait for Enter."""
        if self.debug:
            try:
                self.ui.ask(message)
            except EOFError:
                pass


class Artifact:
    """The result of a builder or a post-processor."""

    def __init__(
        self,
        builder_id: str,
        id: str = "",
        files: list[str] | None = None,
        string: str | None = None,
        state: Mapping[str, Any] | None = None,
        destroy: Callable[[], None] | None = None,
    ) -> None:
        self.builder_id = builder_id
        self.id = id
        self.files = list(files or [])
        self._string = string
        self._state = dict(state or {})
        self._destroy = destroy
        #: the build cache's key after each provisioner ("" where none), for the manifest
        self.cache_keys: list[str] = []

    def string(self) -> str:
        if self._string is not None:
            return self._string
        if self.files:
            return "Stored file(s): " + ", ".join(self.files)
        return self.id

    def state(self, name: str) -> Any:
        return self._state.get(name)

    def destroy(self) -> None:
        if self._destroy is not None:
            self._destroy()


class Component(ABC):
    """Shared config handling: decode the template's mapping into `Config`, `validate()`, freeze."""

    Config: ClassVar[type[Any]]

    def __init__(self) -> None:
        self.config: Any = None

    def prepare(self, raw: Mapping[str, Any], dctx: DecodeContext, path: str) -> None:
        self.config = decode(self.Config, raw, path, dctx)
        self.validate(dctx, path)
        freeze(self.config)

    def validate(self, dctx: DecodeContext, path: str) -> None:  # noqa: B027 - optional hook
        """Cross-field checks, and defaults that depend on other options (the config is frozen
        once this returns); report problems with `dctx.error(path, ...)`."""


class Builder(Component):
    #: keys of `BuildContext.generated` this builder fills, besides PackerRunUUID: what templates can
    #: refer to as `{{ build `KEY` }}` (the options reference lists them)
    generated_keys: ClassVar[tuple[str, ...]] = ()
    #: whether builds of this type use the build cache unless told otherwise (-cache / -no-cache)
    cache_default: ClassVar[bool] = False

    def cache_source(self, ctx: BuildContext) -> Source | None:
        """What this build starts from, resolved, for its cache keys; None: this builder keeps no
        cache."""
        return None

    def cache_has(self, key: str) -> bool:
        """The builder's cache store holds a complete state for `key`."""
        return False

    def cache_artifact_exists(self, artifact: str) -> bool:
        """What an earlier build recorded as its artifact (a disk path, an image id) still exists."""
        return False

    @abstractmethod
    def run(self, ctx: BuildContext) -> Artifact | None:
        """Build. Raise on failure; cleanup of what was created is the builder's (via steps)."""


class Provisioner(Component):
    #: whether this provisioner works on the machine through its communicator (shell, file) or runs
    #: on this host (shell-local); the options reference says which
    needs_communicator: ClassVar[bool] = True

    @abstractmethod
    def provision(self, ctx: BuildContext, comm: Communicator) -> None:
        """Provision the machine. Raise on failure."""


@dataclass
class PostProcessResult:
    artifact: Artifact
    keep: bool = False  #: keep the input artifact
    force_override: bool = False  #: ignore the user's keep_input_artifact


class PostProcessor(Component):
    @abstractmethod
    def post_process(self, ctx: BuildContext, artifact: Artifact) -> PostProcessResult:
        """Turn the input artifact into a new one. Raise on failure."""
