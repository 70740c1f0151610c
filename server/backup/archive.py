"""The backup archive file: one file, written front to back, read twice
(verify, then load).

Layout::

    header   MAGIC (8 bytes) | format version (u16) | flags (u8)
             [encrypted: scrypt salt (16) | log2 n (u8) | r (u8) | p (u8)]
    frames   length (u32, big-endian) | payload          (repeated)

A payload is one record, ``kind (1 byte) + body``: ``C`` starts a
collection (body: its name), ``D`` carries a batch of that collection's
documents as concatenated BSON, ``M`` is the manifest (canonical extended
JSON) and is always the last frame. With a key, each payload is sealed with
AES-256-GCM under a key derived by scrypt from ``SKILLSHARE_BACKUP_KEY`` and
the archive's own salt; the nonce is the frame's index plus a last-frame
flag (the STREAM construction), and the header is the associated data of
every frame. Frames therefore cannot be altered, reordered, dropped or
appended to, the manifest is authenticated like the rest, and an archive
cut short lacks its sealed last frame. Without a key every payload is
followed by a SHA-256 over the header, the frame's index and last-frame flag
and the payload, so damage anywhere (the manifest's index definitions
included), reordering and truncation are caught the same way — corruption,
not a deliberate forgery: use a key for that."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..private_files import PRIVATE_FILE_MODE

MAGIC = b"SSBACKUP"
FORMAT_VERSION = 1
FLAG_ENCRYPTED = 0x01
PREAMBLE = struct.Struct(">8sHB")
KDF_PARAMS = struct.Struct(">16sBBB")
FRAME_LENGTH = struct.Struct(">I")
SALT_BYTES = 16
# scrypt cost: ~0.1 s and 32 MiB once per archive; parameters are stored in
# the header, so they can be raised later without breaking old archives.
SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P = 15, 8, 1
MAX_SCRYPT_LOG2_N = 20
KEY_BYTES = 32
TAG_BYTES = 16
CHECKSUM_BYTES = 32  # SHA-256 after each payload of an unencrypted archive
NONCE_INDEX_BYTES = 11  # + 1 byte last-frame flag = the 12-byte GCM nonce
# A frame holds one batch of documents (a few MiB at most when written);
# anything claiming more is a damaged length, not a frame.
MAX_FRAME_BYTES = 64 * 1024 * 1024

KIND_COLLECTION = b"C"
KIND_DOCUMENTS = b"D"
KIND_MANIFEST = b"M"


class ArchiveError(Exception):
    """The archive cannot be used; the message is one line for the operator."""


def _derive_key(secret: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=KEY_BYTES, n=2 ** log2_n, r=r, p=p).derive(secret.encode())


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(NONCE_INDEX_BYTES, "big") + (b"\x01" if last else b"\x00")


def _checksum(header: bytes, index: int, last: bool, payload: bytes) -> bytes:
    return hashlib.sha256(header + _nonce(index, last) + payload).digest()


class ArchiveWriter:
    """Writes an archive to ``path`` through a 0600 temporary file in the same
    folder; ``commit()`` makes it appear under its name at once (rename),
    ``abort()`` (or an exception inside ``with``) leaves nothing behind."""

    def __init__(self, path: Path, *, key: str | None) -> None:
        self.path = path
        self._tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        except OSError as exc:
            raise ArchiveError(f"cannot write {path}: {exc.strerror}") from None
        os.fchmod(fd, PRIVATE_FILE_MODE)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._index = 0
        self._closed = False
        header = PREAMBLE.pack(MAGIC, FORMAT_VERSION, FLAG_ENCRYPTED if key else 0)
        self._aead: AESGCM | None = None
        if key:
            salt = secrets.token_bytes(SALT_BYTES)
            header += KDF_PARAMS.pack(salt, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P)
            self._aead = AESGCM(_derive_key(key, salt, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P))
        self._header = header
        self._file.write(header)

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None or not self._closed:
            self.abort()

    def write(self, kind: bytes, body: bytes, *, last: bool = False) -> None:
        payload = kind + body
        if self._aead is not None:
            payload = self._aead.encrypt(_nonce(self._index, last), payload, self._header)
        else:
            payload += _checksum(self._header, self._index, last, payload)
        self._file.write(FRAME_LENGTH.pack(len(payload)))
        self._file.write(payload)
        self._index += 1

    def commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self.path)
        self._closed = True

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._tmp.unlink(missing_ok=True)
        self._closed = True


def read_records(path: Path, *, key: str | None) -> Iterator[tuple[bytes, bytes]]:
    """Yield ``(kind, body)`` for every frame, checking the header, the seal
    of every frame (with a key) and that the manifest is the last frame and
    nothing follows it. Raises ``ArchiveError``."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        raise ArchiveError(f"cannot read {path}: {exc.strerror}") from None
    try:
        header = fh.read(PREAMBLE.size)
        if len(header) < PREAMBLE.size or not header.startswith(MAGIC):
            raise ArchiveError(f"{path} is not a Skill Share backup archive")
        _, version, flags = PREAMBLE.unpack(header)
        if version != FORMAT_VERSION:
            raise ArchiveError(f"{path} has archive format version {version}; this version of "
                               f"Skill Share reads version {FORMAT_VERSION}")
        aead: AESGCM | None = None
        if flags & FLAG_ENCRYPTED:
            params = fh.read(KDF_PARAMS.size)
            if len(params) < KDF_PARAMS.size:
                raise ArchiveError(f"{path} is truncated (incomplete header)")
            if not key:
                raise ArchiveError(f"{path} is encrypted: set SKILLSHARE_BACKUP_KEY to the key "
                                   "it was written with")
            header += params
            salt, log2_n, r, p = KDF_PARAMS.unpack(params)
            if not (1 <= log2_n <= MAX_SCRYPT_LOG2_N and r and p):
                raise ArchiveError(f"{path} has a damaged header (key derivation parameters)")
            aead = AESGCM(_derive_key(key, salt, log2_n, r, p))
        elif key:
            # A forged archive would simply be written unencrypted: with a key
            # set, only sealed archives are accepted.
            raise ArchiveError(f"{path} is not encrypted, so SKILLSHARE_BACKUP_KEY cannot "
                               "authenticate it; unset SKILLSHARE_BACKUP_KEY to restore it anyway")
        yield from _frames(fh, path, header, aead)
    finally:
        fh.close()


def _frames(fh: BinaryIO, path: Path, header: bytes,
            aead: AESGCM | None) -> Iterator[tuple[bytes, bytes]]:
    index = 0
    while True:
        prefix = fh.read(FRAME_LENGTH.size)
        if not prefix:
            raise ArchiveError(f"{path} is truncated (it ends before its manifest)")
        if len(prefix) < FRAME_LENGTH.size:
            raise ArchiveError(f"{path} is truncated (frame {index} is incomplete)")
        (length,) = FRAME_LENGTH.unpack(prefix)
        if length == 0 or length > MAX_FRAME_BYTES:
            raise ArchiveError(f"{path} is damaged (frame {index} has an impossible length)")
        payload = fh.read(length)
        if len(payload) < length:
            raise ArchiveError(f"{path} is truncated (frame {index} is incomplete)")
        if aead is not None:
            payload, last = _open_frame(aead, payload, index, header, path)
        else:
            payload, last = _check_frame(payload, index, header, path)
        kind, body = payload[:1], payload[1:]
        if kind == KIND_MANIFEST:
            if not last:
                raise ArchiveError(
                    f"{path} has been tampered with (manifest not marked as the last frame)")
            if fh.read(1):
                raise ArchiveError(f"{path} is damaged (data after its manifest)")
        elif last:
            raise ArchiveError(f"{path} has been tampered with (the frame marked last is not the "
                               "manifest)")
        yield kind, body
        if kind == KIND_MANIFEST:
            return
        index += 1


def _check_frame(framed: bytes, index: int, header: bytes, path: Path) -> tuple[bytes, bool]:
    if len(framed) <= CHECKSUM_BYTES:
        raise ArchiveError(f"{path} is damaged (frame {index} is too short)")
    payload, digest = framed[:-CHECKSUM_BYTES], framed[-CHECKSUM_BYTES:]
    for last in (False, True):
        if hmac.compare_digest(digest, _checksum(header, index, last, payload)):
            return payload, last
    raise ArchiveError(f"{path} is damaged or has been tampered with (frame {index} fails its "
                       "checksum)")


def _open_frame(aead: AESGCM, sealed: bytes, index: int, header: bytes,
                path: Path) -> tuple[bytes, bool]:
    if len(sealed) <= TAG_BYTES:
        raise ArchiveError(f"{path} is damaged (frame {index} is too short)")
    for last in (False, True):
        try:
            return aead.decrypt(_nonce(index, last), sealed, header), last
        except InvalidTag:
            continue
    if index == 0:
        raise ArchiveError(f"cannot decrypt {path}: wrong SKILLSHARE_BACKUP_KEY, or the archive "
                           "has been tampered with")
    raise ArchiveError(f"{path} has been tampered with (frame {index} fails authentication)")
