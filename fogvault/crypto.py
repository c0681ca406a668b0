"""Cryptographic primitives: keys, authenticated encryption, keyed ids. Knows nothing of storage.

* AEAD: XChaCha20-Poly1305-IETF from libsodium (PyNaCl). A sealed message is
  ``nonce (24) || ciphertext || tag (16)`` with a fresh random nonce; 192-bit nonces make
  random generation safe without bookkeeping. The caller's associated data binds each message
  to its context (object type and id), so a valid ciphertext cannot be replayed elsewhere.
* Ids: keyed BLAKE3 of the plaintext under the identity key, so equal data gets equal ids
  (deduplication) while ids reveal nothing to whoever lacks the key.
* Password KDF: Argon2id (libsodium ``crypto_pwhash``) with parameters stored beside the salt.

No primitive here is hand-written: everything is a libsodium or BLAKE3 call.
"""

from __future__ import annotations

import os  # os.urandom, not secrets: that imports hmac and OpenSSL (+3.5 MiB)
from dataclasses import dataclass
from typing import TYPE_CHECKING

import nacl.bindings
import nacl.pwhash
from nacl._sodium import ffi as _ffi
from nacl._sodium import lib as _lib

from fogvault.errors import FogVaultError, IntegrityError

if TYPE_CHECKING:
    import blake3

KEY_SIZE = 32
MASTER_KEY_SIZE = 2 * KEY_SIZE
NONCE_SIZE = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES  # 24
TAG_SIZE = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_ABYTES  # 16
SEAL_OVERHEAD = NONCE_SIZE + TAG_SIZE
SALT_SIZE = nacl.pwhash.argon2id.SALTBYTES  # 16

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id cost. ``memlimit`` is in bytes."""

    opslimit: int
    memlimit: int


KDF_PROFILES = {
    # Half of "interactive"'s memory and 4 times its passes: a guess costs an attacker as much
    # (memory x time, time growing with memory x passes: 32^2 x 8 = 64^2 x 2), every command's
    # peak memory drops by 32 MiB, and a run takes ~0.11 s instead of ~0.08 s. 32 MiB is what
    # restic's scrypt uses by default.
    "standard": KdfParams(8, 32 * 1024**2),
    "interactive": KdfParams(
        nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE, nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
    ),
    "moderate": KdfParams(
        nacl.pwhash.argon2id.OPSLIMIT_MODERATE, nacl.pwhash.argon2id.MEMLIMIT_MODERATE
    ),
    "sensitive": KdfParams(
        nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE, nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE
    ),
}
# The profile of new key files unless one is chosen. Every command derives the key once, so the
# profile sets the floor of every command's time and peak memory, as restic's scrypt (~0.5 s,
# 32 MiB) and borg 2's Argon2 (64 MiB) do for theirs. docs/security.md, "KDF parameters", has the
# trade-off. fogvault/cli/common.py repeats the name, to keep libsodium out of CLI start-up.
DEFAULT_KDF = "standard"
# FogVault's policy bounds for key files (libsodium's minimums below; the maximums keep a
# hostile key file from demanding unbounded memory or time before any check can fail).
KDF_MIN_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_MIN
KDF_MIN_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_MIN
KDF_MAX_MEMLIMIT = 4 * 1024**3
KDF_MAX_OPSLIMIT = 64


@dataclass(frozen=True, slots=True)
class MasterKey:
    """The repository's secret: 32 bytes for encryption, 32 bytes for keyed ids."""

    encryption: bytes
    identity: bytes

    @classmethod
    def generate(cls) -> MasterKey:
        return cls.from_bytes(os.urandom(MASTER_KEY_SIZE))

    @classmethod
    def from_bytes(cls, raw: bytes) -> MasterKey:
        if len(raw) != MASTER_KEY_SIZE:
            raise IntegrityError("master key has the wrong length")
        return cls(raw[:KEY_SIZE], raw[KEY_SIZE:])

    def to_bytes(self) -> bytes:
        return self.encryption + self.identity

    def __repr__(self) -> str:  # never print key material
        return "MasterKey(<secret>)"


# The AEAD is called through PyNaCl's cffi module, the one its own ``nacl.bindings`` wrappers
# call: those copy the input in and the output out, zero-fill the output first and format three
# error messages per call, all holding the GIL. Here the output is written in place and inputs
# are passed as buffers: 1.3x (1 MiB) to 2.5x (2 KiB) less time per blob, and restore's GIL
# time spent in decryption fell from ~20 % to what libsodium itself takes.
def seal_buffer(key: bytes, plaintext: Buffer, aad: bytes) -> bytearray:
    """``nonce || ciphertext || tag`` of ``plaintext`` under ``key``, bound to ``aad``."""
    sealed = bytearray(SEAL_OVERHEAD + len(plaintext))
    seal_into(key, plaintext, aad, memoryview(sealed))
    return sealed


def seal_into(key: bytes, plaintext: Buffer, aad: bytes, out: memoryview) -> None:
    """Write :func:`seal_buffer`'s result into ``out`` (exactly ``SEAL_OVERHEAD`` bytes longer
    than ``plaintext``, and not overlapping it). libsodium runs without the GIL, so a caller
    that seals into memory it has not touched yet pays the page faults there, not while every
    other thread waits for the GIL."""
    _check_key(key)
    if len(out) != SEAL_OVERHEAD + len(plaintext):
        raise ValueError("output buffer has the wrong size")
    out[:NONCE_SIZE] = os.urandom(NONCE_SIZE)
    # ``with``: the buffers are released here, not whenever the cdata objects are collected
    # (a cdata left in a frame that a traceback keeps alive crashed the collector, cffi 2.1)
    with _ffi.from_buffer(out, require_writable=True) as target, \
            _ffi.from_buffer(plaintext) as message:
        _lib.crypto_aead_xchacha20poly1305_ietf_encrypt(
            target + NONCE_SIZE, _ffi.NULL, message, len(plaintext), aad, len(aad), _ffi.NULL,
            target, key,
        )


def unseal_buffer(key: bytes, sealed: Buffer, aad: bytes) -> bytearray:
    """Decrypt and authenticate; raise IntegrityError on any tampering or truncation."""
    _check_key(key)
    if len(sealed) < SEAL_OVERHEAD:
        raise IntegrityError("encrypted object is truncated")
    plaintext = bytearray(len(sealed) - SEAL_OVERHEAD)
    with _ffi.from_buffer(plaintext) as out, _ffi.from_buffer(sealed) as data:
        failed = _lib.crypto_aead_xchacha20poly1305_ietf_decrypt(
            out, _ffi.NULL, _ffi.NULL, data + NONCE_SIZE, len(sealed) - NONCE_SIZE,
            aad, len(aad), data, key,
        )
    if failed:
        raise IntegrityError("authentication failed (wrong key, or the data was altered)")
    return plaintext


def seal(key: bytes, plaintext: Buffer, aad: bytes) -> bytes:
    return bytes(seal_buffer(key, plaintext, aad))


def unseal(key: bytes, sealed: Buffer, aad: bytes) -> bytes:
    return bytes(unseal_buffer(key, sealed, aad))


def _check_key(key: bytes) -> None:
    # libsodium reads KEY_SIZE bytes from the pointer it is given, whatever the buffer holds
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise TypeError(f"an AEAD key is {KEY_SIZE} bytes")


# blake3 is imported where it is used: every command derives its key (Argon2id, 32 MiB) before
# it hashes anything, and each module loaded by then adds to that peak (docs/performance-log.md,
# "Session 11"). An import of a loaded module costs a dictionary lookup.


def keyed_id(identity_key: bytes, data: Buffer) -> bytes:
    import blake3

    return blake3.blake3(data, key=identity_key, max_threads=1).digest()


def content_hash(data: Buffer) -> bytes:
    """Unkeyed BLAKE3: names objects so that anyone can verify a copy without the key."""
    import blake3

    return blake3.blake3(data, max_threads=1).digest()


def content_hasher() -> blake3.blake3:
    """An incremental :func:`content_hash`: ``update`` with the bytes in order, then ``digest``."""
    import blake3

    return blake3.blake3(max_threads=1)


def derive_subkey(master: bytes, context: str, length: int = KEY_SIZE) -> bytes:
    """A key for one purpose, derived with BLAKE3's key-derivation mode."""
    import blake3

    return blake3.blake3(master, derive_key_context=context).digest(length)


def password_key(password: bytes, salt: bytes, params: KdfParams) -> bytes:
    """Argon2id(password, salt) -> 32-byte key-encryption key."""
    if not (KDF_MIN_MEMLIMIT <= params.memlimit <= KDF_MAX_MEMLIMIT
            and KDF_MIN_OPSLIMIT <= params.opslimit <= KDF_MAX_OPSLIMIT):
        raise IntegrityError("key file asks for unreasonable Argon2id parameters")
    if len(salt) != SALT_SIZE:
        raise IntegrityError("key file salt has the wrong length")
    try:
        return nacl.pwhash.argon2id.kdf(
            KEY_SIZE, password, salt, opslimit=params.opslimit, memlimit=params.memlimit
        )
    except RuntimeError as exc:  # libsodium could not allocate what the key file asks for
        raise FogVaultError(f"Argon2id could not get the {params.memlimit >> 20} MiB of memory "
                            "the key file asks for") from exc


def random_salt() -> bytes:
    return os.urandom(SALT_SIZE)
