"""The AEAD calls libsodium through PyNaCl's cffi module (fogvault/crypto.py): checked here
against PyNaCl's public wrapper, byte for byte, and for every way a sealed message can be bad."""

from __future__ import annotations

import os
import subprocess
import sys

import nacl.bindings
import pytest

from fogvault.crypto import (
    NONCE_SIZE,
    SEAL_OVERHEAD,
    seal,
    seal_buffer,
    seal_into,
    unseal,
    unseal_buffer,
)
from fogvault.errors import IntegrityError

KEY = bytes(range(32))
AAD = b"blob\x00" + bytes(32)


@pytest.mark.parametrize("size", [0, 1, 4096, 1 << 20])
def test_seal_and_unseal_agree_with_pynacls_wrapper(size: int) -> None:
    plaintext = os.urandom(size)
    sealed = seal(KEY, memoryview(plaintext), AAD)
    assert len(sealed) == size + SEAL_OVERHEAD
    assert nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
        sealed[NONCE_SIZE:], AAD, sealed[:NONCE_SIZE], KEY) == plaintext
    nonce = os.urandom(NONCE_SIZE)
    theirs = nonce + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        plaintext, AAD, nonce, KEY)
    assert unseal(KEY, theirs, AAD) == plaintext
    assert unseal_buffer(KEY, memoryview(theirs), AAD) == plaintext


def test_seal_into_writes_a_sealed_message_exactly_into_its_place() -> None:
    plaintext = os.urandom(5000)
    buffer = bytearray(b"\xaa" * (len(plaintext) + SEAL_OVERHEAD + 20))
    with memoryview(buffer) as view:
        seal_into(KEY, plaintext, AAD, view[10 : 10 + len(plaintext) + SEAL_OVERHEAD])
    assert buffer[:10] == buffer[-10:] == b"\xaa" * 10  # nothing outside its place
    assert unseal(KEY, bytes(buffer[10:-10]), AAD) == plaintext
    for wrong in (len(plaintext) + SEAL_OVERHEAD - 1, len(plaintext) + SEAL_OVERHEAD + 1):
        with pytest.raises(ValueError, match="wrong size"):
            seal_into(KEY, plaintext, AAD, memoryview(bytearray(wrong)))


def test_every_message_gets_a_fresh_nonce() -> None:
    first, second = seal_buffer(KEY, b"same", AAD), seal_buffer(KEY, b"same", AAD)
    assert first[:NONCE_SIZE] != second[:NONCE_SIZE] and first != second


def test_any_changed_byte_key_or_context_is_rejected() -> None:
    sealed = seal(KEY, b"secret payload", AAD)
    for position in range(len(sealed)):  # nonce, ciphertext and tag alike
        bad = bytearray(sealed)
        bad[position] ^= 0x01
        with pytest.raises(IntegrityError, match="authentication failed"):
            unseal(KEY, bad, AAD)
    with pytest.raises(IntegrityError, match="authentication failed"):
        unseal(bytes(32), sealed, AAD)
    with pytest.raises(IntegrityError, match="authentication failed"):
        unseal(KEY, sealed, AAD[:-1] + b"\x01")
    for length in (0, SEAL_OVERHEAD - 1):
        with pytest.raises(IntegrityError, match="truncated"):
            unseal(KEY, sealed[:length], AAD)
    with pytest.raises(IntegrityError, match="authentication failed"):
        unseal(KEY, sealed[:-1], AAD)


@pytest.mark.parametrize("key", [KEY[:31], KEY + b"x", bytearray(KEY), "k" * 32])
def test_a_key_of_the_wrong_size_or_type_is_refused_before_libsodium_reads_it(key) -> None:
    with pytest.raises(TypeError, match="32 bytes"):
        seal(key, b"x", AAD)
    with pytest.raises(TypeError, match="32 bytes"):
        unseal(key, bytes(SEAL_OVERHEAD + 1), AAD)


_CYCLES = """
import gc, sys
from fogvault.crypto import unseal_buffer
from fogvault.errors import IntegrityError

def attempt(data):
    view = memoryview(data)
    try:
        unseal_buffer(bytes(32), view[10:1500], b"aad")
    except IntegrityError as exc:
        failure = exc  # a cycle: failure -> traceback -> this frame -> failure
    return None

for round in range(500):
    attempt(bytes(range(256)) * 8)
    if round % 50 == 0:
        gc.collect()
print("survived")
"""


def test_a_failed_unseal_leaves_no_buffer_exported_to_the_garbage_collector() -> None:
    # A buffer still exported when the collector clears a traceback's frames made CPython
    # free the memoryview twice (a segmentation fault in the test suite): unseal releases
    # its buffers before it raises.
    done = subprocess.run([sys.executable, "-c", _CYCLES], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "survived", done.stderr
    assert "exported buffer" not in done.stderr
