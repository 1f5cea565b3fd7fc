"""The instance types localcloud offers, with the cloud's own figures (vCPUs, GiB, family, generation).

One table answers DescribeInstanceTypes, DescribeInstanceTypeFamilies, DescribeAvailableResource and
DescribeZones, and is what RunInstances accepts. The instance shows its type's figures; the machine
behind it gets at most MACHINE_CPUS and MACHINE_MEMORY_MB, as these are real machines on one host.
Generations are the API reference's series: ecs-4 holds t5, ecs-5 g6/c6/r6; the reference names no
family of g7, c7 or t6, which are listed with ecs-5 here.
"""

from __future__ import annotations

from dataclasses import dataclass

MACHINE_CPUS = 2
MACHINE_MEMORY_MB = 2048

#: disk categories every zone offers, for system and data disks
DISK_CATEGORIES = ("cloud_efficiency", "cloud_ssd", "cloud_essd", "cloud_auto")
SYSTEM_DISK_GB = (20, 2048)
DATA_DISK_GB = (20, 32768)


@dataclass(frozen=True)
class Family:
    family_id: str
    generation: str
    category: str  # InstanceCategory
    level: str  # InstanceFamilyLevel
    processor: str
    ghz: float
    turbo_ghz: float
    burstable: bool = False


FAMILIES = {
    f.family_id: f
    for f in (
        Family("ecs.t5", "ecs-4", "Shared", "CreditEntryLevel", "Intel Xeon(Skylake) Platinum 8163", 2.5, 0.0, True),
        Family("ecs.t6", "ecs-5", "Shared", "CreditEntryLevel", "Intel Xeon(Cascade Lake) Platinum 8269CY", 2.5, 3.2, True),
        Family("ecs.g6", "ecs-5", "General-purpose", "EnterpriseLevel", "Intel Xeon(Cascade Lake) Platinum 8269CY", 2.5, 3.2),
        Family("ecs.c6", "ecs-5", "Compute-optimized", "EnterpriseLevel", "Intel Xeon(Cascade Lake) Platinum 8269CY", 2.5, 3.2),
        Family("ecs.r6", "ecs-5", "Memory-optimized", "EnterpriseLevel", "Intel Xeon(Cascade Lake) Platinum 8269CY", 2.5, 3.2),
        Family("ecs.g7", "ecs-5", "General-purpose", "EnterpriseLevel", "Intel Xeon(Ice Lake) Platinum 8369B", 2.7, 3.5),
        Family("ecs.c7", "ecs-5", "Compute-optimized", "EnterpriseLevel", "Intel Xeon(Ice Lake) Platinum 8369B", 2.7, 3.5),
    )
}  # fmt: skip


@dataclass(frozen=True)
class InstanceType:
    type_id: str
    family: Family
    cpus: int
    memory_gib: float
    enis: int
    ips_per_eni: int
    bandwidth_kbps: int  # InstanceBandwidthRx/Tx
    pps: int  # InstancePpsRx/Tx
    credit: int = 0  # BaselineCredit of a burstable type

    @property
    def machine(self) -> tuple[int, int]:
        """(cpus, memory MB) of the machine behind an instance of this type."""
        return min(self.cpus, MACHINE_CPUS), min(int(self.memory_gib * 1024), MACHINE_MEMORY_MB)


def _t(
    type_id: str, cpus: int, memory: float, enis: int, ips: int, kbps: int, pps: int, credit: int = 0
) -> InstanceType:
    return InstanceType(
        type_id, FAMILIES[type_id.rsplit(".", 1)[0].split("-")[0]], cpus, memory, enis, ips, kbps, pps, credit
    )


TYPES = {
    t.type_id: t
    for t in (
        _t("ecs.t5-lc1m1.small", 1, 1.0, 1, 2, 102400, 60000, credit=10),
        _t("ecs.t5-lc1m2.small", 1, 2.0, 1, 2, 102400, 60000, credit=10),
        _t("ecs.t5-c1m1.large", 2, 2.0, 2, 6, 512000, 100000, credit=30),
        _t("ecs.t5-lc1m2.large", 2, 4.0, 2, 6, 409600, 100000, credit=20),
        _t("ecs.t6-c1m1.large", 2, 2.0, 2, 2, 409600, 100000, credit=10),
        _t("ecs.g6.large", 2, 8.0, 2, 6, 1024000, 300000),
        _t("ecs.g6.xlarge", 4, 16.0, 3, 10, 1536000, 500000),
        _t("ecs.c6.large", 2, 4.0, 2, 6, 1024000, 300000),
        _t("ecs.c6.xlarge", 4, 8.0, 3, 10, 1536000, 500000),
        _t("ecs.r6.large", 2, 16.0, 2, 6, 1024000, 300000),
        _t("ecs.g7.large", 2, 8.0, 3, 6, 2048000, 450000),
        _t("ecs.c7.large", 2, 4.0, 3, 6, 2048000, 450000),
    )
}  # fmt: skip
