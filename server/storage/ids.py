"""Ids and opaque cursors. Ids are ObjectId hex strings: unique across nodes
and ordered by creation time, so ``_id`` ranges give stable pagination."""

from __future__ import annotations

import base64
import binascii
from typing import TypeGuard

import orjson
from bson import ObjectId

from ..errors import ValidationFailed


# Stands in for a purged account wherever its id would link what it wrote
# back to it (message senders, review authors, skill-request parties): every
# purged person looks the same, and no profile resolves it.
DELETED_USER_ID = "0" * 24


def new_id() -> str:
    return str(ObjectId())


def is_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and ObjectId.is_valid(value) and len(value) == 24


def encode_cursor(data: dict) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise ValidationFailed.field("cursor", "Invalid cursor.") from None
    if not isinstance(data, dict):
        raise ValidationFailed.field("cursor", "Invalid cursor.")
    return data
