"""Field encryption at rest: the one place that turns sensitive values into
ciphertext before they reach the database and back.

A stored value is ``enc:v1:<key id>:<base64url(nonce | AES-256-GCM ciphertext
and tag)>``. The associated data binds it to ``<collection>.<field>`` and the
document's ``_id``, so a ciphertext copied into another field or document
fails authentication instead of decrypting there. Keys come from
``SKILLSHARE_DATA_KEY`` (newest first): values are written under the newest,
read under whichever key id they carry. A string without the prefix is
legacy plaintext (written before encryption existed) and is returned as is;
``skillshare rotate-data-key`` encrypts it. ``None`` and ``""`` are stored as
they are (an empty value says nothing).

Email addresses are also looked up: ``blind_indexes`` gives the
HMAC-SHA256 of the normalised address under a key derived from each data key
(newest first); the newest is stored next to the ciphertext under a unique
index, a lookup asks for any of them (old keys still find rows that the
rotation has not reached yet)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from typing import Any, overload

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "enc:v1:"
NONCE_BYTES = 12
KEY_BYTES = 32
KEY_ID_BYTES = 6  # 8 base64url characters
MIN_MASTER_KEY_CHARS = 32
_INFO_ENCRYPT = b"skillshare field encryption v1"
_INFO_INDEX = b"skillshare blind index v1"
_INFO_KEY_ID = b"skillshare data key id v1"
_CIPHERTEXT = re.compile(r"^enc:v1:([A-Za-z0-9_-]{8}):([A-Za-z0-9_-]+)$")

# What is encrypted, per collection: field -> the label bound into the
# associated data. ``users.deleted_email`` shares the label of ``email``:
# a soft delete renames the field and the value stays what it was.
ENCRYPTED_FIELDS: dict[str, dict[str, str]] = {
    "users": {"email": "email", "deleted_email": "email"},
    "messages": {"body": "body"},
    "skill_requests": {"message": "message"},
    "reviews": {"comment": "comment"},
    "sessions": {"ip": "ip", "user_agent": "user_agent"},
    # last_error: an SMTP server's refusal quotes the recipient's address
    "mail_queue": {"to": "to", "subject": "subject", "text": "text", "html": "html",
                   "last_error": "last_error"},
    "audit_log": {"ip": "ip"},
    "identities": {"email": "email"},  # the address a sign-in provider gave
}
# Blind indexes kept next to an encrypted field: index field -> source field.
BLIND_INDEXES: dict[str, dict[str, str]] = {
    "users": {"email_index": "email", "deleted_email_index": "deleted_email"},
    "mail_queue": {"to_index": "to"},
}


class FieldDecryptionError(RuntimeError):
    """A stored ciphertext did not authenticate (tampered, moved to another
    field or document) or names a key that is not configured."""


def _derive(master: bytes, info: bytes, length: int = KEY_BYTES) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master)


def normalise_email(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True, slots=True)
class _Key:
    key_id: str
    aead: AESGCM
    index_key: bytes


def _key(master: str) -> _Key:
    raw = master.encode()
    key_id = base64.urlsafe_b64encode(_derive(raw, _INFO_KEY_ID, KEY_ID_BYTES)).decode()
    return _Key(key_id=key_id, aead=AESGCM(_derive(raw, _INFO_ENCRYPT)),
                index_key=_derive(raw, _INFO_INDEX))


class FieldCrypto:
    """Encrypts and decrypts the fields in ``ENCRYPTED_FIELDS``. ``keys``:
    master keys, newest first; ``FieldCrypto.plaintext()`` (benchmarks'
    baseline only) stores values as they are."""

    def __init__(self, keys: list[str], *, enabled: bool = True) -> None:
        if enabled and not keys:
            raise ValueError("at least one data key is needed")
        self.enabled = enabled
        self._keys = [_key(k) for k in keys]
        self._by_id = {k.key_id: k for k in self._keys}
        if len(self._by_id) != len(self._keys):
            raise ValueError("SKILLSHARE_DATA_KEY lists the same key twice")

    @classmethod
    def plaintext(cls) -> FieldCrypto:
        return cls([], enabled=False)

    @property
    def current_key_id(self) -> str | None:
        return self._keys[0].key_id if self._keys else None

    @property
    def key_ids(self) -> list[str]:
        return [k.key_id for k in self._keys]

    # -- single values -------------------------------------------------

    @staticmethod
    def _aad(collection: str, field: str, doc_id: Any) -> bytes:
        label = ENCRYPTED_FIELDS[collection][field]
        return f"{collection}.{label}\x00{doc_id}".encode()

    def encrypt(self, collection: str, field: str, doc_id: Any, value: Any) -> Any:
        if not self.enabled or value is None or value == "":
            return value
        if not isinstance(value, str):
            raise TypeError(f"{collection}.{field}: only strings are encrypted")
        key = self._keys[0]
        nonce = os.urandom(NONCE_BYTES)
        sealed = key.aead.encrypt(nonce, value.encode(), self._aad(collection, field, doc_id))
        token = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()
        return f"{PREFIX}{key.key_id}:{token}"

    def decrypt(self, collection: str, field: str, doc_id: Any, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = _CIPHERTEXT.match(value)
        if match is None:
            return value  # legacy plaintext, or None / ""
        key_id, token = match.groups()
        key = self._by_id.get(key_id)
        where = f"{collection}.{field} of document {doc_id!r}"
        if key is None:
            raise FieldDecryptionError(
                f"{where} is encrypted under data key {key_id}, which SKILLSHARE_DATA_KEY "
                "does not list (configured: " + (", ".join(self.key_ids) or "none") + ")")
        try:
            blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            plain = key.aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:],
                                     self._aad(collection, field, doc_id))
        except (InvalidTag, ValueError):
            raise FieldDecryptionError(
                f"{where} failed authentication: the ciphertext was altered or belongs to "
                "another field or document") from None
        return plain.decode()

    def key_id_of(self, value: Any) -> str | None:
        """The key id a stored value is under; None for plaintext."""
        match = _CIPHERTEXT.match(value) if isinstance(value, str) else None
        return match.group(1) if match else None

    # -- documents -----------------------------------------------------

    def seal(self, collection: str, doc: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``doc`` (which has its ``_id``) ready to store: the
        encrypted fields as ciphertext, their blind indexes added."""
        out = dict(doc)
        for index_field, source in BLIND_INDEXES.get(collection, {}).items():
            if isinstance(doc.get(source), str) and doc[source]:
                out[index_field] = self.blind_index(doc[source])
        for field in ENCRYPTED_FIELDS[collection]:
            if field in out:
                out[field] = self.encrypt(collection, field, doc["_id"], out[field])
        return out

    @overload
    def open(self, collection: str, doc: dict[str, Any]) -> dict[str, Any]: ...
    @overload
    def open(self, collection: str, doc: dict[str, Any] | None) -> dict[str, Any] | None: ...

    def open(self, collection: str, doc: dict[str, Any] | None) -> dict[str, Any] | None:
        """``doc`` as read from the database, with its encrypted fields
        decrypted in place (blind indexes removed: nobody above needs them)."""
        if doc is None:
            return None
        for field in ENCRYPTED_FIELDS[collection]:
            if field in doc:
                doc[field] = self.decrypt(collection, field, doc.get("_id"), doc[field])
        for index_field in BLIND_INDEXES.get(collection, {}):
            doc.pop(index_field, None)
        return doc

    def open_all(self, collection: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for doc in docs:
            self.open(collection, doc)
        return docs

    def set_fields(self, collection: str, doc_id: Any, changes: dict[str, Any]
                   ) -> dict[str, Any]:
        """A ``$set`` body for ``changes`` to document ``doc_id``."""
        out = dict(changes)
        for index_field, source in BLIND_INDEXES.get(collection, {}).items():
            if isinstance(changes.get(source), str) and changes[source]:
                out[index_field] = self.blind_index(changes[source])
        for field in ENCRYPTED_FIELDS[collection]:
            if field in out:
                out[field] = self.encrypt(collection, field, doc_id, out[field])
        return out

    # -- blind index ---------------------------------------------------

    def blind_index(self, email: str) -> str:
        """The stored lookup key of an address: newest key."""
        return self.blind_indexes(email)[0]

    def blind_indexes(self, email: str) -> list[str]:
        """The lookup keys of an address under every configured key, newest
        first; with encryption off, the normalised address itself."""
        value = normalise_email(email)
        if not self.enabled:
            return [value]
        return [
            base64.urlsafe_b64encode(
                hmac.new(k.index_key, value.encode(), hashlib.sha256).digest()
            ).rstrip(b"=").decode()
            for k in self._keys
        ]


def is_ciphertext(value: Any) -> bool:
    return isinstance(value, str) and _CIPHERTEXT.match(value) is not None
