"""Component types by name, imported only when a template uses them (so start-up stays fast)."""

from __future__ import annotations

import importlib
from typing import Any

BUILDERS: dict[str, str] = {
    "null": "kiln.builders.null:NullBuilder",
    "file": "kiln.builders.file:FileBuilder",
    "qemu": "kiln.builders.qemu:QemuBuilder",
    "alicloud-ecs": "kiln.builders.alicloud_ecs:AlicloudEcsBuilder",
}
PROVISIONERS: dict[str, str] = {
    "shell": "kiln.provisioners.shell:ShellProvisioner",
    "file": "kiln.provisioners.file:FileProvisioner",
    "shell-local": "kiln.provisioners.shell_local:ShellLocalProvisioner",
    "breakpoint": "kiln.provisioners.breakpoint:BreakpointProvisioner",
    "sleep": "kiln.provisioners.sleep:SleepProvisioner",
}
POST_PROCESSORS: dict[str, str] = {
    "manifest": "kiln.postprocessors.manifest:ManifestPostProcessor",
    "checksum": "kiln.postprocessors.checksum:ChecksumPostProcessor",
    "compress": "kiln.postprocessors.compress:CompressPostProcessor",
    "alicloud-import": "kiln.postprocessors.alicloud_import:AlicloudImportPostProcessor",
    "shell-local": "kiln.postprocessors.shell_local:ShellLocalPostProcessor",
}


def load(table: dict[str, str], type_name: str) -> type[Any] | None:
    """The class registered for `type_name`, or None if there is none."""
    target = table.get(type_name)
    if target is None:
        return None
    module_name, _, attr = target.partition(":")
    cls: type[Any] = getattr(importlib.import_module(module_name), attr)
    return cls
