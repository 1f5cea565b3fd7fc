"""What each kind of resource holds: its fields, typed and documented, declared once.

A resource is stored as one JSON object. Every kind has the common fields (`_kind`, `_id`,
`_created`, `RegionId`, `CreationTime`) and may carry a status transition (`lifecycle`). Its API
fields (no leading `_`) are what views show, possibly reshaped (a list of tags becomes
`{"Tag": [...]}`); its internal fields (leading `_`) are the model's own and never leave it. The
model checks each resource against its kind when it is written, so a field nobody declared (or of
the wrong type) is a bug found at once, not a value leaking into responses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kiln.localcloud.model import lifecycle

_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
    "str|None": (str, type(None)),
}


@dataclass(frozen=True)
class Field:
    name: str
    types: tuple[type, ...]
    optional: bool  # may be absent
    doc: str

    @property
    def internal(self) -> bool:
        return self.name.startswith("_")


def _table(text: str) -> tuple[Field, ...]:
    """`Name  type[?]  what it is` per line; `?` marks a field that may be absent."""
    fields = []
    for line in text.strip().splitlines():
        name, kind, doc = line.split(None, 2)
        fields.append(Field(name, _TYPES[kind.rstrip("?")], kind.endswith("?"), doc))
    return tuple(fields)


COMMON = _table(
    """
_kind          str        the kind's name (the store's table of it)
_id            str        the store's key: the id, or region/name for a key pair
_created       float      when it was made (epoch seconds): the listing order
RegionId       str        its region
CreationTime   str        when it was made, as the API writes it (UTC, ISO 8601)
"""
)


@dataclass(frozen=True)
class Kind:
    name: str
    label: str  # the parameter that names one (`InstanceId`): its NotFound error
    fields: tuple[Field, ...]
    _public: tuple[str, ...] = ()  # the API fields' names, in order (made from `fields`)

    def __post_init__(self) -> None:
        names = tuple(f.name for f in (*COMMON, *self.fields) if not f.internal)
        object.__setattr__(self, "_public", names)

    def public(self, res: Mapping[str, Any]) -> dict[str, Any]:
        """The API fields of `res` (internal ones left out)."""
        return {name: res[name] for name in self._public if name in res}

    def check(self, res: Mapping[str, Any]) -> None:
        """Raise TypeError when `res` has a field its kind does not declare, or a wrong or missing one."""
        declared = {f.name: f for f in (*COMMON, *self.fields)}
        unknown = set(res) - declared.keys() - {lifecycle.FIELD}
        if unknown:
            raise TypeError(f"{self.name} {res.get('_id')}: undeclared field(s) {', '.join(sorted(unknown))}")
        for f in declared.values():
            if f.name not in res:
                if not f.optional:
                    raise TypeError(f"{self.name} {res.get('_id')}: {f.name} is missing")
            else:
                value = res[f.name]
                if not isinstance(value, f.types) or (isinstance(value, bool) and bool not in f.types):
                    raise TypeError(f"{self.name} {res.get('_id')}: {f.name} is {type(value).__name__}")


INSTANCE = Kind(
    "instance",
    "InstanceId",
    _table(
        """
InstanceId               str     i-...
InstanceName             str     its name (the id unless given)
HostName                 str     the guest's host name
Description              str     as given
ZoneId                   str     the zone of its vSwitch
Status                   str     Pending, Starting, Running, Stopping, Stopped (Pending is shown while it is created)
InstanceType             str     ecs.*: its last word sets CPUs and memory
Cpu                      int     vCPUs of its type (the machine gets at most MACHINE_CPUS)
Memory                   int     MiB of memory of its type (the machine: at most MACHINE_MEMORY_MB)
ImageId                  str     the image it was made from
OSType                   str     linux
OSName                   str     from the image
KeyPairName              str     the key pair its next start installs ("" for none)
SecurityGroupIds         dict    {"SecurityGroupId": [sg-...]}
VpcAttributes            dict    {"VpcId", "VSwitchId", "PrivateIpAddress": {"IpAddress": [...]}, "NatIpAddress"}
PublicIpAddress          list    its public IP (AllocatePublicIpAddress), at most one
EipAddress               dict    {"AllocationId", "IpAddress", "Bandwidth", "InternetChargeType"} of its EIP
InternetChargeType       str     as given
InternetMaxBandwidthOut  int     Mbit/s, as given (not enforced)
IoOptimized              bool    always true
InstanceChargeType       str     as given (PostPaid)
InstanceNetworkType      str     vpc
StoppedMode              str     KeepCharging, StopCharging or Not-applicable
Tags                     list    [{"TagKey", "TagValue"}]
StartTime                str     when it last started
ExpiredTime              str     far away (pay-as-you-go)
_image_file              str|None  the image's disk it boots from first (None: the public image)
_user_data               str|None  base64 UserData, run at the first boot
_disk_id                 str     its system disk's id (d-...)
_disk_size               int     its system disk's size, GB
_disk_category           str     its system disk's category
_data_disks              list?   state folders before data disks were resources of their own (kind disk)
_has_password            bool    whether a Password was given (never stored)
_pending_until           float?  until when it shows Pending rather than Starting
_started_once            bool?   it has booted (UserData has run)
_error                   str?    why its last start failed
"""
    ),
)

IMAGE = Kind(
    "image",
    "ImageId",
    _table(
        """
ImageId                  str     m-..., or the public image's id
ImageName                str     unique among the account's images of a region
ImageVersion             str     as given
ImageFamily              str     as given ("" for none)
Description              str     as given
Status                   str     Creating, Available, CreateFailed (and the other documented ones)
Progress                 str     N%: computed while Creating
OSType                   str     linux
OSName                   str     from the instance's image
OSNameEn                 str     from the instance's image
Platform                 str     Debian
Architecture             str     x86_64 unless given
Size                     int     GB
ImageOwnerAlias          str     self (system for the public image)
IsSupportCloudinit       bool    true
IsSupportIoOptimized     bool    true
Usage                    str     none or instance
BootMode                 str     BIOS unless given
IsCopied                 bool    made by CopyImage
IsSelfShared             str     "True" when shared with an account, else ""
IsPublic                 bool    shared with everyone
IsSubscribed             bool    false
ProductCode              str     ""
LoginAsNonRootSupported  bool    false
Tags                     list    [{"TagKey", "TagValue"}]
_file                    str|None  its disk under state/images (None: a record only)
_snapshots               list    the snapshots it is made of
_share                   list    accounts it is shared with
_copy_of                 str?    the image a copy was made from
_data_mappings           list?   its data disks: [{"SnapshotId", "Device", "Size"}] (the system disk is _snapshots[0])
_import                  dict?   ImportImage's source: {"OSSBucket", "OSSObject", "Format"}
"""
    ),
)

SNAPSHOT = Kind(
    "snapshot",
    "SnapshotId",
    _table(
        """
SnapshotId       str     s-...
SnapshotName     str     as given (auto_/copy_ for an image's own)
SourceDiskId     str     the disk it was taken of
SourceDiskSize   str     GB, as the API writes it (a string)
SourceDiskType   str     system or data
Status           str     progressing, accomplished, failed
Progress         str     N%
Usage            str     none or image
Encrypted        bool    false
Description      str     ""
Tags             list    [{"TagKey", "TagValue"}]
_file            str     its disk under state/images
"""
    ),
)

DISK = Kind(
    "disk",
    "DiskId",
    _table(
        """
DiskId               str     d-...
DiskName             str     as given
Description          str     as given
Type                 str     data (system disks are the instances' own, see DescribeDisks)
Category             str     cloud_efficiency unless given
Size                 int     GiB
Status               str     Creating, Available, Attaching, In_use, Detaching
InstanceId           str     the instance it is attached to ("" for none)
Device               str     its device name on that instance (/dev/xvdb...), "" when not attached
DeleteWithInstance   bool    deleted with the instance it is attached to
ZoneId               str     its zone: an instance of that zone only
Portable             bool    true (a data disk)
Encrypted            bool    false
ImageId              str     ""
SourceSnapshotId     str     the snapshot it was made from ("" for none)
DiskChargeType       str     PostPaid
AttachedTime         str     when it was last attached ("" if never)
DetachedTime         str     when it was last detached ("" if never)
Tags                 list    [{"TagKey", "TagValue"}]
_file                str     its raw file under state/disks, the block device its instance sees
"""
    ),
)

VPC = Kind(
    "vpc",
    "VpcId",
    _table(
        """
VpcId          str     vpc-...
VpcName        str     as given
CidrBlock      str     its network
Description    str     as given
VRouterId      str     vrt-...
RouteTableId   str     vtb-...
IsDefault      bool    false
Status         str     Pending, Available
Tags           list    [{"TagKey", "TagValue"}] (the VPC API shows Key/Value)
"""
    ),
)

VSWITCH = Kind(
    "vswitch",
    "VSwitchId",
    _table(
        """
VSwitchId                str     vsw-...
VpcId                    str     its VPC
ZoneId                   str     its zone
CidrBlock                str     its network, inside the VPC's
VSwitchName              str     as given
Description              str     as given
AvailableIpAddressCount  int     addresses of its network less the reserved four
Status                   str     Pending, Available
Tags                     list    [{"TagKey", "TagValue"}]
_next_ip                 int     how many private addresses it has handed out
"""
    ),
)

SECURITY_GROUP = Kind(
    "sg",
    "SecurityGroupId",
    _table(
        """
SecurityGroupId      str     sg-...
SecurityGroupName    str     as given
Description          str     as given
VpcId                str     its VPC ("" for none)
SecurityGroupType    str     normal unless given
Tags                 list    [{"TagKey", "TagValue"}]
_rules               list    its rules (ingress ones enforced on public addresses, see firewall)
"""
    ),
)

EIP = Kind(
    "eip",
    "AllocationId",
    _table(
        """
AllocationId         str     eip-...
IpAddress            str     its own loopback address, 127.100.x.y
Status               str     Available, Associating, InUse, Unassociating
Bandwidth            str     Mbit/s as given (a string, as the API writes it)
InternetChargeType   str     as given
InstanceId           str     the instance it is bound to ("" for none)
InstanceType         str     EcsInstance when bound
Name                 str     as given
Tags                 list    [{"TagKey", "TagValue"}]
AllocationTime       str     when it was allocated
"""
    ),
)

KEY_PAIR = Kind(
    "keypair",
    "KeyPairName",
    _table(
        """
KeyPairName          str     unique in its region (the store's key is region/name)
KeyPairFingerPrint   str     MD5 of the public key, as the API writes it
KeyPairId            str     kp-...
ResourceGroupId      str     ""
Tags                 list    [{"TagKey", "TagValue"}]
_public_key          str     the OpenSSH public key (the private key is never stored)
"""
    ),
)

ROLE = Kind(
    "role",
    "RoleName",
    _table(
        """
RoleName                  str     unique in the account (RAM is global: RegionId is "")
RoleId                    str     digits, as RAM writes it
Arn                       str     acs:ram::ACCOUNT:role/name (lower case, as RAM writes it)
Description               str     as given
AssumeRolePolicyDocument  str     the trust policy, kept as given (ImportImage reads it)
MaxSessionDuration        int     seconds, 3600 unless given
CreateDate                str     when it was made (UTC, ISO 8601)
UpdateDate                str     when it last changed
_policies                 list    attached policies: [{"PolicyName", "PolicyType", "AttachDate"}]
"""
    ),
)

KINDS: dict[str, Kind] = {
    k.name: k for k in (INSTANCE, IMAGE, SNAPSHOT, DISK, VPC, VSWITCH, SECURITY_GROUP, EIP, KEY_PAIR, ROLE)
}
