"""Keys, pseudonyms and field encryption (docs/architecture.md, "Storage and the privacy model").

One master key (32 random bytes, from ANTAM_MASTER_KEY or a key file) is the root of trust.
From it HKDF derives two keys that are never stored anywhere:

* the *pepper*, which turns ``channel:platform_user_id`` into a pseudonym with HMAC-SHA256;
* the *key-encryption key* (KEK), which wraps the data keys.

Data keys (DEKs) are random AES-256 keys kept in the ``data_keys`` table, wrapped by the KEK.
Rotating means adding a new DEK and re-encrypting rows under it; the pepper never changes, so
pseudonyms stay stable. A sealed value is::

    version (1 byte) | key id (4 bytes, big-endian) | nonce (12 bytes) | AES-GCM ciphertext + tag

and its associated data names the purpose and the row it belongs to, so a blob copied into
another row, or another column, fails to open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MASTER_KEY_BYTES = 32
FORMAT_VERSION = 1
_HEADER = struct.Struct(">BI")
_NONCE_BYTES = 12
_TAG_BYTES = 16
_PEPPER_INFO = b"antam/v1/pseudonym-pepper"
_KEK_INFO = b"antam/v1/key-encryption-key"
# Keys for other purposes (derive()) live under their own prefix, so no info string a caller
# picks can ever reproduce the pepper or the KEK.
_DERIVED_PREFIX = b"antam/v1/derived/"


class CryptoError(Exception):
    """A key is missing, malformed or wrong, or a sealed value does not open."""


class MasterKeyFormatError(CryptoError):
    """The master key text is not 32 bytes in base64 or hex."""


class WrongMasterKeyError(CryptoError):
    """The master key does not open the data keys stored in this database."""


class UnknownKeyError(CryptoError):
    """A sealed value names a data key that this key ring does not hold."""


class DecryptionError(CryptoError):
    """A sealed value is malformed, was tampered with, or belongs to another row."""


def generate_master_key() -> bytes:
    """Return a new random master key."""
    return os.urandom(MASTER_KEY_BYTES)


def encode_master_key(key: bytes) -> str:
    """Return the key as the text written to a key file or ANTAM_MASTER_KEY."""
    return base64.urlsafe_b64encode(key).decode("ascii").rstrip("=")


def parse_master_key(text: str) -> bytes:
    """Read a master key written as base64 (standard or URL-safe) or as 64 hex digits."""
    cleaned = "".join(text.split())
    if len(cleaned) == MASTER_KEY_BYTES * 2 and all(c in "0123456789abcdefABCDEF" for c in cleaned):
        return bytes.fromhex(cleaned)
    try:
        padded = cleaned + "=" * (-len(cleaned) % 4)
        key = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MasterKeyFormatError(
            "the master key is not valid base64 or hex; generate one with "
            "`python -c \"import os,base64;print(base64.urlsafe_b64encode(os.urandom(32)).decode())\"`"
        ) from exc
    if len(key) != MASTER_KEY_BYTES:
        raise MasterKeyFormatError(
            f"the master key must be {MASTER_KEY_BYTES} bytes, this one has {len(key)}"
        )
    return key


def _derive(master_key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master_key)


@dataclass(frozen=True)
class MasterSecrets:
    """The two keys derived from the master key; neither is ever stored."""

    pepper: bytes
    kek: bytes
    # The master key itself, kept only to derive further purpose keys (derive()).
    _root: bytes = field(default=b"", repr=False, compare=False)

    @classmethod
    def from_master_key(cls, master_key: bytes) -> MasterSecrets:
        if len(master_key) != MASTER_KEY_BYTES:
            raise MasterKeyFormatError(f"the master key must be {MASTER_KEY_BYTES} bytes")
        return cls(pepper=_derive(master_key, _PEPPER_INFO), kek=_derive(master_key, _KEK_INFO), _root=master_key)

    def derive(self, info: bytes) -> bytes:
        """A 32-byte key for one purpose (``info`` names it), derived from the master key with HKDF."""
        if not self._root:
            raise CryptoError("these secrets were not made from a master key")
        if not info:
            raise ValueError("name the purpose of a derived key")
        return _derive(self._root, _DERIVED_PREFIX + info)

    def pseudonym(self, channel: str, platform_user_id: str) -> bytes:
        """Return the keyed pseudonym of a person: HMAC-SHA256(pepper, channel:platform id)."""
        message = f"{channel}:{platform_user_id}".encode("utf-8", "surrogatepass")
        return hmac.new(self.pepper, message, hashlib.sha256).digest()

    def wrap(self, key_id: int, data_key: bytes) -> bytes:
        """Encrypt a data key under the KEK, bound to its id."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + AESGCM(self.kek).encrypt(nonce, data_key, _wrap_aad(key_id))

    def unwrap(self, key_id: int, wrapped: bytes) -> bytes:
        """Decrypt a data key; a wrong master key raises WrongMasterKeyError."""
        nonce, body = wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:]
        try:
            return AESGCM(self.kek).decrypt(nonce, body, _wrap_aad(key_id))
        except (InvalidTag, ValueError) as exc:
            raise WrongMasterKeyError(
                "the master key does not match this database: its data keys do not open"
            ) from exc


def _wrap_aad(key_id: int) -> bytes:
    return b"antam/v1/data-key:" + str(key_id).encode()


def sealed_key_id(blob: bytes) -> int:
    """Return the id of the data key a sealed value was made with."""
    if len(blob) < _HEADER.size + _NONCE_BYTES + _TAG_BYTES:
        raise DecryptionError("sealed value is too short")
    version, key_id = _HEADER.unpack_from(blob)
    if version != FORMAT_VERSION:
        raise DecryptionError(f"sealed value has unknown format version {version}")
    return int(key_id)


class KeyRing:
    """The data keys of one database, opened with the master key; seals and opens values."""

    def __init__(self, secrets: MasterSecrets, keys: Mapping[int, bytes], active_id: int) -> None:
        if active_id not in keys:
            raise UnknownKeyError(f"active data key #{active_id} is not in the key ring")
        self.secrets = secrets
        self._aeads = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.active_id = active_id

    @property
    def key_ids(self) -> frozenset[int]:
        return frozenset(self._aeads)

    def pseudonym(self, channel: str, platform_user_id: str) -> bytes:
        return self.secrets.pseudonym(channel, platform_user_id)

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        """Encrypt under the active key; ``context`` names the purpose and row."""
        header = _HEADER.pack(FORMAT_VERSION, self.active_id)
        nonce = os.urandom(_NONCE_BYTES)
        return header + nonce + self._aeads[self.active_id].encrypt(nonce, plaintext, header + context)

    def open(self, blob: bytes, context: bytes) -> bytes:
        """Decrypt a sealed value made for exactly this ``context``."""
        key_id = sealed_key_id(blob)
        aead = self._aeads.get(key_id)
        if aead is None:
            raise UnknownKeyError(f"data key #{key_id} is not in the key ring")
        header = blob[: _HEADER.size]
        nonce = blob[_HEADER.size : _HEADER.size + _NONCE_BYTES]
        try:
            return aead.decrypt(nonce, blob[_HEADER.size + _NONCE_BYTES :], header + context)
        except InvalidTag as exc:
            raise DecryptionError(
                "a sealed value did not open: it was altered or belongs to another row"
            ) from exc
