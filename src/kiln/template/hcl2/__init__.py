"""HCL2 templates: a .pkr.hcl file or a folder of them, loaded into the same model as JSON ones."""

from __future__ import annotations

from .loader import load_hcl2_template
from .resolve import resolve_hcl2

__all__ = ["check_required_version", "load_hcl2_template", "resolve_hcl2"]


def check_required_version(constraint: str, version: str | None = None) -> None:
    from kiln import PACKER_COMPATIBLE_VERSION
    from kiln.errors import TemplateError

    from ..json_loader import MinVersionError
    from ..version import satisfies

    actual = version or PACKER_COMPATIBLE_VERSION
    try:
        ok = satisfies(actual, constraint)
    except ValueError as exc:
        raise TemplateError(
            f"packer.required_version: {exc}", 'write a constraint such as ">= 1.7.0"'
        ) from None
    if not ok:
        raise MinVersionError(
            f"Unsupported Packer Core version: this configuration does not support Packer version {actual} "
            f'(required_version = "{constraint}")',
            "use a kiln compatible with that version, or update the constraint",
        )
