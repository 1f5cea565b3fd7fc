"""The catalogue of API errors: every error localcloud answers is named here, once.

Each entry is the real cloud's HTTP status, code and documented message; an action raises one by
calling it, with the detail that names what was wrong (`INCORRECT_INSTANCE_STATUS(f"{iid} is
Running")`) or the fields its message has (`MISSING_PARAMETER(name="InstanceId")`). The detail goes
in parentheses after the message, as the real API writes the value it refused.
"""

from __future__ import annotations

from dataclasses import dataclass


class ApiError(Exception):
    """An error answered to the client with the real cloud's HTTP status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Error:
    """A named error of the catalogue. Calling it makes the ApiError to raise."""

    status: int
    code: str
    message: str

    def __call__(self, detail: str = "", **fields: object) -> ApiError:
        message = self.message.format(**fields) if fields else self.message
        return ApiError(self.status, self.code, f"{message} ({detail})" if detail else message)


# -- the gateway: the request, its signature, its caller ------------------------------------------
TIMESTAMP_MALFORMED = Error(
    400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
)
TIMESTAMP_EXPIRED = Error(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
NONCE_USED = Error(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
ACCESS_KEY_NOT_FOUND = Error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
SECURITY_TOKEN_MISSING = Error(
    400, "MissingSecurityToken", "SecurityToken is mandatory for this AccessKeyId."
)
SECURITY_TOKEN_MISMATCH = Error(
    400, "InvalidSecurityToken.MismatchWithAccessKey", "Specified SecurityToken mismatch with the AccessKey."
)
SIGNATURE_INCOMPLETE = Error(
    400, "IncompleteSignature", "The request signature does not conform to Aliyun standards."
)
SIGNATURE_MISMATCH_V1 = Error(
    400,
    "SignatureDoesNotMatch",
    "Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}",
)
SIGNATURE_MISMATCH_V3 = Error(
    400,
    "SignatureDoesNotMatch",
    "The request signature we calculated does not match the signature you provided."
    " server string to sign is:{string_to_sign}",
)
CONTENT_HASH_MISMATCH = Error(
    400, "SignatureDoesNotMatch", "The x-acs-content-sha256 header does not match the request body."
)
BODY_TOO_LARGE = Error(
    413, "RequestBodyTooLarge", "The request body is {said} than the {limit} bytes accepted."
)
QUERY_TOO_LARGE = Error(
    414, "RequestURITooLarge", "The query string is {size} bytes; at most {limit} are accepted."
)
REQUEST_LINE_TOO_LONG = Error(414, "RequestURITooLarge", "A line of the request's head is too long.")
MALFORMED_REQUEST = Error(400, "MalformedRequest", "The request is not a well-formed HTTP/1.1 request.")
TOO_MANY_PARAMETERS = Error(
    400, "TooManyParameters", "The request has {count} parameters; at most {limit} are accepted."
)

# -- any action ---------------------------------------------------------------------------------
MISSING_PARAMETER = Error(
    400,
    "MissingParameter",
    'The input parameter "{name}" that is mandatory for processing this request is not supplied.',
)
INVALID_PARAMETER = Error(400, "InvalidParameter", 'The specified parameter "{name}" {why}.')
INVALID_VERSION = Error(400, "InvalidVersion", "Specified parameter Version is not valid.")
ACTION_NOT_FOUND = Error(
    404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."
)
INTERNAL_ERROR = Error(500, "InternalError", "The request processing has failed due to some unknown error.")
IDEMPOTENT_PARAMETER_MISMATCH = Error(
    400,
    "IdempotentParameterMismatch",
    "The request uses the same client token as a previous, but non-identical request.",
)
REGION_NOT_FOUND = Error(404, "InvalidRegionId.NotFound", "The specified RegionId does not exist.")
ZONE_NOT_FOUND = Error(404, "InvalidZoneId.NotFound", "The specified zone does not exist.")

# `Invalid<Label>.NotFound`, one per resource the API names by id (the detail is the id asked for).
NOT_FOUND = {
    label: Error(404, f"Invalid{label}.NotFound", f"The specified {label} does not exist.")
    for label in (
        "InstanceId",
        "ImageId",
        "SnapshotId",
        "DiskId",
        "VpcId",
        "VSwitchId",
        "SecurityGroupId",
        "AllocationId",
        "KeyPairName",
    )
}

# -- tags ---------------------------------------------------------------------------------------
TAG_KEY_MALFORMED = Error(400, "InvalidTagKey.Malformed", "The specified Tag.n.Key is not valid.")
TAG_COUNT = Error(400, "InvalidTagCount", "A resource can have at most {limit} tags.")

# -- instances ----------------------------------------------------------------------------------
INCORRECT_INSTANCE_STATUS = Error(
    403, "IncorrectInstanceStatus", "The current status of the resource does not support this operation."
)
# The VPC API's AssociateEipAddress documents its own status and message for the same code.
EIP_INCORRECT_INSTANCE_STATUS = Error(
    400, "IncorrectInstanceStatus", "Current instance status does not support this operation."
)
INSTANCE_INITIALIZING = Error(
    403, "IncorrectInstanceStatus.Initializing", "The instance is being initialized; try again later."
)
USER_DATA_NOT_BASE64 = Error(
    400, "InvalidUserData.Base64FormatInvalid", "The specified UserData is not base64 encoded."
)
USER_DATA_TOO_LARGE = Error(400, "InvalidUserData.SizeExceeded", "The specified UserData exceeds 32 KB.")
IMAGE_NOT_AVAILABLE = Error(400, "InvalidImageId.NotFound", "The specified ImageId is not available.")
INSTANCE_TYPE_NOT_SUPPORTED = Error(
    400,
    "InvalidInstanceType.ValueNotSupported",
    "The specified InstanceType does not exist or is not supported.",
)
VSWITCH_NOT_IN_ZONE = Error(
    400, "InvalidVSwitchId.NotBelongToZone", "The specified vSwitch is not in zone {zone}."
)
SECURITY_GROUP_NOT_IN_VPC = Error(
    400, "InvalidSecurityGroupId.NotBelongToVpc", "The security group {group} is not in the vSwitch's VPC."
)
SYSTEM_DISK_TOO_SMALL = Error(
    400, "InvalidSystemDiskSize.ImageNotSupported", "The system disk is smaller than the image."
)

# -- VPCs, vSwitches, security groups -------------------------------------------------------------
CIDR_MALFORMED = Error(400, "InvalidCidrBlock.Malformed", "Specified CIDR block is not valid.")
CIDR_OVERLAPPED = Error(400, "InvalidCidrBlock.Overlapped", "Specified CIDR block overlaps {other}.")
INCORRECT_VPC_STATUS = Error(400, "IncorrectVpcStatus", "Current VPC status does not support this operation.")
INCORRECT_VSWITCH_STATUS = Error(
    400, "IncorrectVSwitchStatus", "The current virtual switch status does not support this operation."
)
# DeleteVSwitch's code for what is still in the vSwitch; DeleteVpc names what is still in the VPC
# (the codes packer-plugin-alicloud's cleanup retries on, exactly: a plain DependencyViolation it does not).
DEPENDENCY_VIOLATION = Error(400, "DependencyViolation", "Specified object has dependent resources.")
VPC_HAS_VSWITCH = Error(400, "DependencyViolation.VSwitch", "Specified object has dependent resources")
VPC_HAS_SECURITY_GROUP = Error(
    400, "DependencyViolation.SecurityGroup", "Specified object has dependent resources SecurityGroup."
)
SECURITY_GROUP_IN_USE = Error(
    403, "DependencyViolation", "There is still instance(s) in the specified security group."
)

# -- EIPs and public IPs --------------------------------------------------------------------------
EIP_QUOTA_EXCEEDED = Error(400, "QuotaExceeded.Eip", "The maximum number of EIPs is exceeded.")
INCORRECT_EIP_STATUS = Error(
    400, "IncorrectEipStatus", "Current elastic IP status does not support this operation"
)
EIP_ASSOCIATION_DUPLICATED = Error(400, "InvalidAssociation.Duplicated", "The instance already has an EIP.")
PUBLIC_IP_ALLOCATED_ALREADY = Error(
    403, "AllocatedAlready", "The instance has been allocated a public IP address already."
)
EIP_ALREADY_ASSOCIATED = Error(
    403, "InvalidInstance.EipAlreadyAssociated", "The instance has an EIP already."
)

# -- images and snapshots --------------------------------------------------------------------------
IMAGE_NAME_MALFORMED = Error(400, "InvalidImageName.Malformed", "The specified Image name is not valid.")
IMAGE_NAME_DUPLICATED = Error(
    400, "InvalidImageName.Duplicated", "The specified Image name has already been used."
)
IMAGE_QUOTA_EXCEEDED = Error(400, "QuotaExceed.Image", "The maximum number of images is exceeded.")
INCORRECT_IMAGE_STATUS = Error(
    403, "IncorrectImageStatus", "The current status of the image does not support this operation."
)
PUBLIC_IMAGE_READ_ONLY = Error(
    403, "InvalidImageId.NotFound", "The specified image is a public image and cannot be changed."
)
IMAGE_IS_SHARED = Error(
    403, "InvalidImageId.IsShared", "The image is shared with other accounts; use Force=true."
)
IMAGE_FAMILY_NOT_FOUND = Error(
    404, "InvalidImageFamily.NotFound", "The specified ImageFamily has no available image."
)
INCORRECT_SNAPSHOT_STATUS = Error(
    403, "IncorrectSnapshotStatus", "The current status of the snapshot does not support this operation."
)
SYSTEM_DISK_CATEGORY_NOT_SUPPORTED = Error(
    400,
    "InvalidSystemDiskCategory.ValueNotSupported",
    'The specified parameter "SystemDisk.Category" is not valid.',
)
DATA_DISK_CATEGORY_NOT_SUPPORTED = Error(
    400,
    "InvalidDataDiskCategory.ValueNotSupported",
    'The specified parameter "DataDisk.n.Category" is not valid.',
)
DATA_DISK_SIZE_NOT_SUPPORTED = Error(
    400, "InvalidDataDiskSize.ValueNotSupported", 'The specified parameter "DataDisk.n.Size" is not valid.'
)
DISK_CATEGORY_NOT_SUPPORTED = Error(
    400, "InvalidDiskCategory.ValueNotSupported", 'The specified parameter "DiskCategory" is not valid.'
)
INCORRECT_DISK_STATUS = Error(
    403, "IncorrectDiskStatus", "The current disk status does not support this operation."
)
DISK_CREATING_SNAPSHOT = Error(
    403, "IncorrectDiskStatus.CreatingSnapshot", "A previous snapshot creation is in process."
)
DISK_NOT_PORTABLE = Error(403, "DiskNotPortable", "The specified disk is not a portable disk.")
# DetachDisk's table: a system disk, a disk detached already, a disk on another instance
DISK_IS_SYSTEM = Error(
    403, "DiskTypeViolation", "The specified disk is a system disk and cannot support the operation."
)
DISK_DETACHED_ALREADY = Error(404, "InvalidDisk.AlreadyDetached", "The specified disk has been detached.")
DISK_NOT_ON_INSTANCE = Error(
    403, "DependencyViolation", "The specified disk has not been attached on the specified instance."
)
SNAPSHOT_CREATED_IMAGE = Error(
    403, "SnapshotCreatedImage", "The snapshot has been used to create a user-defined image."
)

# ImportImage, as its API reference documents them (NoSetRoletoECSServiceAcount is misspelt there too)
IMPORT_ROLE_NOT_SET = Error(
    403,
    "NoSetRoletoECSServiceAcount",
    "ECS service account Have no right to access your OSS.please attach a role of access your oss to ECS"
    " service account.",
)
IMAGE_IS_IMPORTING = Error(403, "ImageIsImporting", "The specified Image is importing.")
DISK_DEVICE_MAPPING_MISSING = Error(
    403, "MissingParameter.DiskDeviceMapping", "The specified parameter DiskDeviceMapping is not supplied."
)
OSS_BUCKET_NOT_FOUND = Error(
    400, "InvalidOSSBucket.NotFound", "The specified OSS bucket does not exist in this region."
)
OSS_OBJECT_NOT_FOUND = Error(
    400, "InvalidOSSObject.NotFound", "The specified OSS object does not exist in this region."
)
OSS_OBJECT_EMPTY = Error(400, "InvalidOSSObject.Size", "The specified OSS object size is zero.")
IMAGE_FORMAT_MALFORMED = Error(
    400, "InvalidImageFormat.Malformed", "The specified Image Format is wrongly formed."
)
IMAGE_FORMAT_MISMATCH = Error(403, "InvalidImageFormat.Malformed", "{why}")
IMAGE_SIZE_INVALID = Error(400, "InvalidImageSize", "{why}")
DATA_DISK_SIZE_INVALID = Error(
    400,
    "InvalidDataDiskSize",
    "The specified DiskDeviceMapping.N.DiskImSize should be in the specified range.",
)
OS_TYPE_MALFORMED = Error(400, "InvalidOSType.Malformed", "The specified OSType is wrongly formed.")
PLATFORM_MALFORMED = Error(400, "InvalidPlatform.Malformed", "The specified Platform is wrongly formed.")
ARCHITECTURE_MALFORMED = Error(
    400, "InvalidArchitecture.Malformed", "The specified Architecture is wrongly formed."
)
BOOT_MODE_MALFORMED = Error(
    400, "InvalidBootMode.Malformed", 'The specified parameter "BootMode" is malformed.'
)
DESCRIPTION_MALFORMED = Error(
    400, "InvalidDescription.Malformed", "The specified Image description is wrongly formed."
)

# -- RAM (2015-05-01) -------------------------------------------------------------------------------
ROLE_NOT_FOUND = Error(404, "EntityNotExist.Role", "The role not exists.")
NOT_FOUND["RoleName"] = ROLE_NOT_FOUND  # RAM's own NotFound code
ROLE_EXISTS = Error(409, "EntityAlreadyExists.Role", "The role already exists.")
ROLE_NAME_INVALID_CHARS = Error(
    400, "InvalidParameter.RoleName.InvalidChars", 'The parameter - "RoleName" contains invalid chars.'
)
ROLE_NAME_LENGTH = Error(
    400, "InvalidParameter.RoleName.Length", 'The parameter - "RoleName" beyond the length limit.'
)
POLICY_DOCUMENT_MALFORMED = Error(400, "MalformedPolicyDocument", "{why}")
POLICY_NOT_FOUND = Error(404, "EntityNotExist.Policy", "The policy not exists: {name}.")
POLICY_TYPE_INVALID = Error(
    400, "InvalidParameter.PolicyType.InvalidValue", 'The parameter - "PolicyType" must be System or Custom.'
)
POLICY_ALREADY_ATTACHED = Error(
    409, "EntityAlreadyExists.Role.Policy", "The policy {name} is already attached to the role {role}."
)
DELETE_CONFLICT_ROLE_POLICY = Error(
    409, "DeleteConflict.Role.Policy", "The role still has policies attached; detach them first."
)
POLICY_NOT_ATTACHED = Error(
    404, "EntityNotExist.Role.Policy", "The policy {name} is not attached to the role {role}."
)

# -- key pairs ----------------------------------------------------------------------------------------
KEY_PAIR_NAME_MALFORMED = Error(
    400, "InvalidKeyPairName.Malformed", "The specified KeyPairName is not valid."
)
KEY_PAIR_EXISTS = Error(400, "KeyPair.AlreadyExist", "The key pair already exist.")
PUBLIC_KEY_MALFORMED = Error(
    400, "InvalidPublicKeyBody.Malformed", "The specified PublicKeyBody is not a valid public key."
)


def missing(name: str) -> ApiError:
    return MISSING_PARAMETER(name=name)


def invalid(name: str, why: str = "is not valid") -> ApiError:
    return INVALID_PARAMETER(name=name, why=why)


def not_found(label: str, value: str) -> ApiError:
    return NOT_FOUND[label](value)
