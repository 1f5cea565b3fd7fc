"""The catalogue of OSS's errors: HTTP status, code and documented message, as OSS answers them.

OSS's error body is `<Error>` with Code, Message, RequestId, HostId and fields of its own that name
what was refused (BucketName, Key, UploadId, StringToSign, ...). An entry is called with those
fields: `NO_SUCH_KEY(Key="a/b.raw")`. An entry whose cause OSS's documentation gives an EC for
carries it (the body's `EC` and `RecommendDoc`, the `x-oss-ec` header); the others have none.
Faults injected on OSS operations are plain `ApiError`s and are answered in the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiln.localcloud.errors import ApiError


class OssError(ApiError):
    """An OSS error, with the extra fields of its XML body (in order) and its fine-grained EC."""

    def __init__(self, status: int, code: str, message: str, fields: dict[str, str], ec: str = "") -> None:
        super().__init__(status, code, message)
        self.fields = fields
        self.ec = ec


@dataclass(frozen=True)
class Code:
    status: int
    code: str
    message: str
    ec: str = ""  # OSS's EC (`0002-00000040`), where its documentation gives the one for this cause

    def __call__(self, message: str = "", **fields: object) -> OssError:
        return OssError(
            self.status, self.code, message or self.message, {k: str(v) for k, v in fields.items()}, self.ec
        )


# -- who is calling --------------------------------------------------------------------------------
ACCESS_DENIED = Code(403, "AccessDenied", "AccessDenied")
ANONYMOUS = Code(403, "AccessDenied", "You have no right to access this object because of bucket acl.")
EXPIRED = Code(403, "AccessDenied", "Request has expired.")
WRONG_ENDPOINT = Code(
    403,
    "AccessDenied",
    "The bucket you are attempting to access must be addressed using the specified endpoint."
    " Please send all future requests to this endpoint.",
)
INVALID_ACCESS_KEY_ID = Code(
    403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records."
)
SECURITY_TOKEN_MISSING = Code(
    403, "InvalidAccessKeyId", "The security token is required for a temporary access key.", "0002-00000003"
)
INVALID_SECURITY_TOKEN = Code(
    403, "InvalidSecurityToken", "The security token you provided is invalid.", "0002-00000008"
)
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided."
    " Check your key and signing method."
)
SIGNATURE_MISMATCH = Code(403, "SignatureDoesNotMatch", _MISMATCH, "0002-00000040")  # V1
SIGNATURE_MISMATCH_V4 = Code(403, "SignatureDoesNotMatch", _MISMATCH, "0002-00000201")
TIME_SKEWED = Code(
    403, "RequestTimeTooSkewed", "The difference between the request time and the current time is too large."
)
INVALID_AUTHORIZATION = Code(400, "InvalidArgument", "Authorization header is invalid.")

# -- any request -------------------------------------------------------------------------------------
INVALID_ARGUMENT = Code(400, "InvalidArgument", "Invalid argument.")
MISSING_ARGUMENT = Code(400, "MissingArgument", "Missing Some Required Arguments.")
MALFORMED_XML = Code(
    400,
    "MalformedXML",
    "The XML you provided was not well-formed or did not validate against our published schema.",
    "0031-00000001",
)
METHOD_NOT_ALLOWED = Code(
    405, "MethodNotAllowed", "The specified method is not allowed against this resource."
)
NOT_IMPLEMENTED = Code(
    501, "NotImplemented", "A header you provided implies functionality that is not implemented."
)
MISSING_CONTENT_LENGTH = Code(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
INTERNAL_ERROR = Code(500, "InternalError", "We encountered an internal error. Please try again.")
REQUEST_TIMEOUT = Code(
    400,
    "RequestTimeout",
    "Your socket connection to the server was not read from or written to within the timeout period.",
)

# -- buckets -----------------------------------------------------------------------------------------
INVALID_BUCKET_NAME = Code(400, "InvalidBucketName", "The specified bucket is not valid.")
NO_SUCH_BUCKET = Code(404, "NoSuchBucket", "The specified bucket does not exist.")
BUCKET_EXISTS = Code(
    409,
    "BucketAlreadyExists",
    "The requested bucket name is not available. The bucket namespace is shared by all users of the"
    " system. Please select a different name and try again.",
)
BUCKET_NOT_EMPTY = Code(409, "BucketNotEmpty", "The bucket you tried to delete is not empty.")
TOO_MANY_BUCKETS = Code(400, "TooManyBuckets", "You have attempted to create more buckets than allowed.")

# -- objects -----------------------------------------------------------------------------------------
INVALID_OBJECT_NAME = Code(400, "InvalidObjectName", "The specified object is not valid.")
NO_SUCH_KEY = Code(404, "NoSuchKey", "The specified key does not exist.", "0026-00000001")
INVALID_DIGEST = Code(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")
BAD_DIGEST = Code(400, "InvalidDigest", "The Content-MD5 you specified did not match what we received.")
CONTENT_SHA256_MISMATCH = Code(
    400, "InvalidArgument", "The x-oss-content-sha256 you specified did not match what we received."
)
ENTITY_TOO_LARGE = Code(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
ENTITY_TOO_SMALL = Code(
    400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size."
)
INCOMPLETE_BODY = Code(
    400,
    "IncompleteBody",
    "You did not provide the number of bytes specified by the Content-Length HTTP header.",
)
INVALID_RANGE = Code(416, "InvalidRange", "The requested range cannot be satisfied")
INVALID_COPY_SOURCE = Code(
    400, "InvalidArgument", "Copy Source must mention the source bucket and key: /sourcebucket/sourcekey."
)

# -- multipart ---------------------------------------------------------------------------------------
NO_SUCH_UPLOAD = Code(
    404,
    "NoSuchUpload",
    "The specified upload does not exist. The upload ID may be invalid, or the upload may have been"
    " aborted or completed.",
)
INVALID_PART = Code(
    400,
    "InvalidPart",
    "One or more of the specified parts could not be found or the specified entity tag might not have"
    " matched the part's entity tag.",
)
INVALID_PART_ORDER = Code(
    400,
    "InvalidPartOrder",
    "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
)
FILE_EXISTS = Code(
    409, "FileAlreadyExists", "The object you specified already exists and can not be overwritten."
)
PRECONDITION_FAILED = Code(
    412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold."
)
