"""Pseudonyms, master keys, and the AES-GCM envelope (docs/architecture.md, "Storage and the privacy model")."""

from __future__ import annotations

import os

import pytest

from storage.crypto import (
    DecryptionError,
    KeyRing,
    MasterKeyFormatError,
    MasterSecrets,
    UnknownKeyError,
    WrongMasterKeyError,
    encode_master_key,
    generate_master_key,
    parse_master_key,
    sealed_key_id,
)


@pytest.fixture
def secrets() -> MasterSecrets:
    return MasterSecrets.from_master_key(generate_master_key())


def ring(secrets: MasterSecrets, *ids: int) -> KeyRing:
    return KeyRing(secrets, {i: os.urandom(32) for i in ids}, max(ids))


def test_pseudonym_is_keyed_and_stable(secrets: MasterSecrets) -> None:
    """The same person gets the same pseudonym; other channels, ids and keys give other ones."""
    first = secrets.pseudonym("telegram", "12345")
    assert first == secrets.pseudonym("telegram", "12345") and len(first) == 32
    assert first != secrets.pseudonym("zalo", "12345")
    assert first != secrets.pseudonym("telegram", "12346")
    other = MasterSecrets.from_master_key(generate_master_key())
    assert first != other.pseudonym("telegram", "12345")
    assert b"12345" not in first


def test_pepper_is_not_the_master_key() -> None:
    """The pepper and the key-encryption key are derived, distinct, and not the master key."""
    master = generate_master_key()
    derived = MasterSecrets.from_master_key(master)
    assert len({master, derived.pepper, derived.kek}) == 3


def test_seal_and_open(secrets: MasterSecrets) -> None:
    """A sealed value opens with its own context and records its key id."""
    keys = ring(secrets, 7)
    blob = keys.seal(b"state", b"persons.record:a")
    assert keys.open(blob, b"persons.record:a") == b"state"
    assert sealed_key_id(blob) == 7
    assert b"state" not in blob
    assert keys.seal(b"state", b"ctx") != keys.seal(b"state", b"ctx"), "nonces are random"


def test_blob_moved_to_another_row_fails(secrets: MasterSecrets) -> None:
    """A ciphertext copied to another row (another context) does not open."""
    keys = ring(secrets, 1)
    blob = keys.seal(b"state", b"persons.record:a")
    with pytest.raises(DecryptionError):
        keys.open(blob, b"persons.record:b")


@pytest.mark.parametrize("position", [0, 3, 10, 20, -1])
def test_tampering_is_detected(secrets: MasterSecrets, position: int) -> None:
    """Changing any byte of a sealed value makes it fail to open, never return garbage."""
    keys = ring(secrets, 1)
    blob = bytearray(keys.seal(b"state", b"c"))
    blob[position] ^= 0x01
    with pytest.raises((DecryptionError, UnknownKeyError)):
        keys.open(bytes(blob), b"c")


def test_truncated_or_foreign_blob(secrets: MasterSecrets) -> None:
    """A value too short or of another format version is refused with a clear error."""
    keys = ring(secrets, 1)
    with pytest.raises(DecryptionError, match="too short"):
        keys.open(b"\x01\x00", b"c")
    with pytest.raises(DecryptionError, match="version"):
        keys.open(b"\x09" + bytes(40), b"c")


def test_unknown_key_id(secrets: MasterSecrets) -> None:
    """A value sealed under a key the ring does not hold raises UnknownKeyError."""
    blob = ring(secrets, 5).seal(b"x", b"c")
    with pytest.raises(UnknownKeyError):
        ring(secrets, 1, 2).open(blob, b"c")


def test_old_keys_stay_readable(secrets: MasterSecrets) -> None:
    """A ring with several keys opens values under any of them and seals under the active one."""
    keys = {1: os.urandom(32), 2: os.urandom(32)}
    old = KeyRing(secrets, {1: keys[1]}, 1).seal(b"old", b"c")
    both = KeyRing(secrets, keys, 2)
    assert both.open(old, b"c") == b"old"
    assert sealed_key_id(both.seal(b"new", b"c")) == 2


def test_wrapped_data_key_needs_the_right_master_key(secrets: MasterSecrets) -> None:
    """A data key wrapped under one master key does not unwrap under another, or another id."""
    wrapped = secrets.wrap(1, b"k" * 32)
    assert secrets.unwrap(1, wrapped) == b"k" * 32
    with pytest.raises(WrongMasterKeyError):
        MasterSecrets.from_master_key(generate_master_key()).unwrap(1, wrapped)
    with pytest.raises(WrongMasterKeyError):
        secrets.unwrap(2, wrapped)


def test_master_key_formats() -> None:
    """A master key is read from URL-safe or standard base64, padded or not, or from hex."""
    key = generate_master_key()
    import base64

    for text in (
        encode_master_key(key),
        base64.b64encode(key).decode(),
        base64.urlsafe_b64encode(key).decode(),
        key.hex(),
        f"  {key.hex().upper()}\n",
    ):
        assert parse_master_key(text) == key


# A fixed 16-byte key: test ids must be the same in every pytest-xdist worker.
@pytest.mark.parametrize("text", ["", "not-a-key!", "abcd", encode_master_key(bytes(range(16))), "zz" * 32])
def test_bad_master_keys_are_refused(text: str) -> None:
    """A master key of the wrong length or alphabet gives a readable error."""
    with pytest.raises(MasterKeyFormatError):
        parse_master_key(text)
