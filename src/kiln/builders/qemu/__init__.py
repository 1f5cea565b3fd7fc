"""The `qemu` builder: a machine image from a disk image, provisioned in a local QEMU VM."""

from kiln.builders.qemu.builder import QemuBuilder

__all__ = ["QemuBuilder"]
