"""The rules every object store enforces, so both backends refuse the same input.

Bucket names follow S3's rules for general-purpose buckets. Keys are stricter than S3's: the
local store must never let a key climb out of its bucket, and S3 keys like ``../x`` are a trap
for whoever later copies objects to disk, so both stores refuse them.
"""

from __future__ import annotations

import ipaddress
import re

from plexica_sdk.errors import ValidationError

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "MAX_EXPIRES_IN",
    "MAX_KEY_BYTES",
    "check_presign_args",
    "validate_bucket",
    "validate_key",
]

#: What S3 records for an object stored without a content type.
DEFAULT_CONTENT_TYPE = "application/octet-stream"
#: S3's longest presigned-URL lifetime, seven days; the local store keeps the same limit.
MAX_EXPIRES_IN = 7 * 24 * 3600
#: S3's limit on the UTF-8 length of a key.
MAX_KEY_BYTES = 1024

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_PRESIGN_METHODS = frozenset({"GET", "PUT"})


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_bucket(name: str) -> str:
    """Return ``name`` if S3 would accept it as a bucket name.

    Raises:
        ValidationError: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending
            with a letter or digit, no ``..``, not an IP address, no reserved prefix or suffix.
    """
    problem = None
    if _BUCKET_RE.fullmatch(name) is None:
        problem = "must be 3-63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit"
    elif ".." in name:
        problem = "must not contain '..'"
    elif _is_ip_address(name):
        problem = "must not look like an IP address"
    elif name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        problem = "uses a prefix or suffix S3 reserves"
    if problem is not None:
        raise ValidationError(f"invalid bucket name {name!r}: {problem}", field="bucket")
    return name


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe object key.

    ``.`` and ``..`` segments are refused because they climb out of a directory on disk and
    because URL normalisation rewrites them, which would break presigned URLs.

    Raises:
        ValidationError: the key is empty, not encodable as UTF-8, longer than 1024 UTF-8 bytes, absolute (starts with
            ``/``), holds a NUL or other control character or a backslash, or has a ``.`` or
            ``..`` segment.
    """
    problem = None
    if not key:
        problem = "must not be empty"
    elif not _encodable(key):
        problem = "must be valid Unicode (no lone surrogates)"
    elif len(key.encode("utf-8")) > MAX_KEY_BYTES:
        problem = f"must be at most {MAX_KEY_BYTES} bytes in UTF-8"
    elif key.startswith("/"):
        problem = "must be relative (no leading '/')"
    elif _CONTROL_RE.search(key):
        problem = "must not contain NUL or other control characters"
    elif "\\" in key:
        problem = "must not contain '\\'"
    elif any(segment in (".", "..") for segment in key.split("/")):
        problem = "must not contain '.' or '..' segments"
    if problem is not None:
        # The key itself may be hostile (huge, binary): name only its start in the message.
        raise ValidationError(f"invalid object key {key[:64]!r}: {problem}", field="key")
    return key


def check_presign_args(expires_in: int, method: str) -> str:
    """Return the upper-cased method if both stores can presign it for ``expires_in`` seconds.

    Raises:
        ValidationError: ``method`` is not GET or PUT, or ``expires_in`` is outside 1..604800.
    """
    if not 1 <= expires_in <= MAX_EXPIRES_IN:
        raise ValidationError(f"expires_in must be 1..{MAX_EXPIRES_IN} seconds, got {expires_in}", field="expires_in")
    if method.upper() not in _PRESIGN_METHODS:
        raise ValidationError(f"presigned URLs support GET and PUT, not {method!r}", field="method")
    return method.upper()
