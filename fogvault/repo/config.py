"""The repository config: format version, repository id and the parameters every writer shares.

Stored as ``config``, encrypted with the master key (aad ``"config"``), so a target alone does
not reveal even the chunker parameters.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fogvault.chunker import ChunkerParams
from fogvault.errors import MalformedObject, UnsupportedFormat
from fogvault.repo.format import FORMAT_VERSION

DEFAULT_PACK_SIZE = 16 * 1024 * 1024
DEFAULT_COMPRESSION_LEVEL = 3
MIN_PACK_SIZE = 64 * 1024
MAX_PACK_SIZE = 512 * 1024 * 1024


@dataclass(slots=True)
class RepoConfig:
    repo_id: str = field(default_factory=lambda: os.urandom(16).hex())
    version: int = FORMAT_VERSION
    created: str = field(default_factory=lambda: datetime.now().astimezone().isoformat())
    chunker: ChunkerParams = field(default_factory=ChunkerParams)
    pack_size: int = DEFAULT_PACK_SIZE
    compression_level: int = DEFAULT_COMPRESSION_LEVEL

    def encode(self) -> bytes:
        doc = {
            "version": self.version,
            "id": self.repo_id,
            "created": self.created,
            "chunker": {
                "algorithm": "fastcdc2020",
                "min_size": self.chunker.min_size,
                "avg_size": self.chunker.avg_size,
                "max_size": self.chunker.max_size,
            },
            "pack_size": self.pack_size,
            "compression": {"algorithm": "zstd", "level": self.compression_level},
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> RepoConfig:
        try:
            doc: dict[str, Any] = json.loads(data)
            if type(doc["version"]) is not int:
                raise ValueError("version is not an integer")
            if doc["version"] != FORMAT_VERSION:
                raise UnsupportedFormat(
                    f"repository format version {doc['version']} is not supported by this "
                    f"FogVault (it reads version {FORMAT_VERSION}); upgrade FogVault"
                )
            chunker = doc["chunker"]
            if chunker.get("algorithm") != "fastcdc2020":
                raise ValueError("unknown chunker algorithm")
            if doc["compression"].get("algorithm") != "zstd":
                raise ValueError("unknown compression algorithm")
            numbers = [chunker[k] for k in ("min_size", "avg_size", "max_size")]
            numbers += [doc["pack_size"], doc["compression"]["level"]]
            if not all(type(n) is int for n in numbers):
                raise ValueError("sizes must be integers")
            config = cls(
                repo_id=str(doc["id"]),
                version=doc["version"],
                created=str(doc.get("created", "")),
                chunker=ChunkerParams(
                    int(chunker["min_size"]), int(chunker["avg_size"]), int(chunker["max_size"])
                ),
                pack_size=int(doc["pack_size"]),
                compression_level=int(doc["compression"]["level"]),
            )
            config.validate()
            return config
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise MalformedObject(f"repository config is malformed: {exc}") from exc

    def validate(self) -> None:
        self.chunker.validate()
        if not MIN_PACK_SIZE <= self.pack_size <= MAX_PACK_SIZE:
            raise ValueError(f"pack size out of range ({MIN_PACK_SIZE // 1024} KiB to "
                             f"{MAX_PACK_SIZE // 1024**2} MiB)")
        if not 0 <= self.compression_level <= 22:
            raise ValueError("compression level out of range (0-22)")
        if not is_repo_id(self.repo_id):
            raise ValueError("malformed repository id")


def is_repo_id(text: str) -> bool:
    """A repository id as the config holds it: 32 lowercase hex digits."""
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)
