"""Key files: the master key, encrypted under a password-derived key.

``keys/<key id>`` is plaintext JSON (it must be readable before anything is decrypted)::

    {"version": 1, "kdf": {"algorithm": "argon2id", "opslimit": 2, "memlimit": 67108864,
     "salt": "<base64, 16 bytes>"}, "master_key": "<base64 of seal(KEK, master, aad)>",
     "created": "<ISO 8601>", "host": "...", "user": "..."}

KEK = Argon2id(password, salt, opslimit, memlimit); aad = aad("key", key id). Several key files
may hold the same master key, each under its own password.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fogvault.crypto import KdfParams, MasterKey, password_key, random_salt, seal, unseal
from fogvault.errors import IntegrityError, MalformedObject, UnsupportedFormat
from fogvault.host import hostname, username
from fogvault.repo.format import UID_HEX_LEN, ObjectKind, aad

KEY_FILE_VERSION = 1
MAX_KEY_FILE_SIZE = 64 * 1024


@dataclass(slots=True)
class KeyFile:
    key_id: str
    params: KdfParams
    salt: bytes
    sealed_master: bytes
    created: str
    host: str
    user: str

    @classmethod
    def create(cls, master: MasterKey, password: bytes, params: KdfParams) -> KeyFile:
        key_id = os.urandom(UID_HEX_LEN // 2).hex()
        salt = random_salt()
        kek = password_key(password, salt, params)
        sealed = seal(kek, master.to_bytes(), aad(ObjectKind.KEY, key_id.encode()))
        return cls(
            key_id, params, salt, sealed, datetime.now().astimezone().isoformat(),
            hostname(), username(),
        )

    def unlock(self, password: bytes) -> MasterKey | None:
        """The master key, or None if the password does not open this key file."""
        kek = password_key(password, self.salt, self.params)
        try:
            raw = unseal(kek, self.sealed_master, aad(ObjectKind.KEY, self.key_id.encode()))
        except IntegrityError:
            return None
        return MasterKey.from_bytes(raw)

    def encode(self) -> bytes:
        doc = {
            "version": KEY_FILE_VERSION,
            "kdf": {
                "algorithm": "argon2id",
                "opslimit": self.params.opslimit,
                "memlimit": self.params.memlimit,
                "salt": base64.b64encode(self.salt).decode(),
            },
            "master_key": base64.b64encode(self.sealed_master).decode(),
            "created": self.created,
            "host": self.host,
            "user": self.user,
        }
        return json.dumps(doc, indent=1, sort_keys=True).encode()

    @classmethod
    def decode(cls, key_id: str, data: bytes) -> KeyFile:
        if len(data) > MAX_KEY_FILE_SIZE:
            raise MalformedObject(f"key file {key_id} is too large")
        try:
            doc = json.loads(data)
            if type(doc["version"]) is not int or doc["version"] < 1:
                raise ValueError("bad version")
            if doc["version"] > KEY_FILE_VERSION:
                raise UnsupportedFormat(
                    f"key file {key_id} was written by a newer FogVault (version "
                    f"{doc['version']}); upgrade FogVault"
                )
            kdf = doc["kdf"]
            if kdf["algorithm"] != "argon2id":
                raise MalformedObject(f"key file {key_id}: unknown KDF {kdf['algorithm']!r}")
            return cls(
                key_id=key_id,
                params=KdfParams(_int(kdf["opslimit"]), _int(kdf["memlimit"])),
                salt=base64.b64decode(kdf["salt"], validate=True),
                sealed_master=base64.b64decode(doc["master_key"], validate=True),
                created=str(doc.get("created", "")),
                host=str(doc.get("host", "")),
                user=str(doc.get("user", "")),
            )
        except (ValueError, KeyError, TypeError, RecursionError) as exc:  # JSON nested too deep
            raise MalformedObject(f"key file {key_id} is malformed") from exc

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.key_id,
            "created": self.created,
            "host": self.host,
            "user": self.user,
            "kdf": {"opslimit": self.params.opslimit, "memlimit": self.params.memlimit},
        }


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("expected an integer")
    return value
