"""The alicloud-ecs builder (Packer's "Alicloud Image Builder")."""

from kiln.builders.alicloud_ecs.builder import AlicloudEcsBuilder

__all__ = ["AlicloudEcsBuilder"]
