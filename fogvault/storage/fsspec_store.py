"""Any fsspec filesystem as a target (memory://, s3://, sftp://, ...).

This is the only module that imports fsspec. It pins down what fsspec leaves loose:
atomic publication (a temporary name and a rename on filesystems that have one, a single
PUT on object stores), create-only writes, sizes that fsspec may report as None, and the
mapping of every library exception to a StorageError.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from typing import Any

import fsspec

from fogvault.storage.base import ObjectInfo, Storage, validate_name, validate_prefix
from fogvault.storage.errors import (
    ObjectExists,
    ObjectNotFound,
    PermanentStorageError,
    StorageError,
    TransientStorageError,
)

#: Protocols whose single PUT is atomic: no temporary name is needed.
_OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "memory"}


class FsspecStorage(Storage):
    def __init__(self, url: str, **options: Any) -> None:
        self.fs, root = fsspec.core.url_to_fs(url, **options)
        self.root = root.rstrip("/")
        protocol = self.fs.protocol
        self.protocol = protocol if isinstance(protocol, str) else protocol[0]
        self.url = f"{self.protocol}://{self.root}"
        self._atomic_put = self.protocol in _OBJECT_STORES
        self._create_lock = threading.Lock()

    def _path(self, name: str) -> str:
        return f"{self.root}/{validate_name(name)}"

    def _error(self, exc: BaseException, name: str) -> StorageError:
        if isinstance(exc, StorageError):
            return exc
        if isinstance(exc, FileNotFoundError):
            return ObjectNotFound("no such object", target=self.url, name=name)
        if isinstance(exc, FileExistsError):
            return ObjectExists("object exists", target=self.url, name=name)
        if isinstance(exc, PermissionError):
            return PermanentStorageError("permission denied", target=self.url, name=name)
        return TransientStorageError(
            f"{type(exc).__name__}: {exc}", target=self.url, name=name
        )

    def create(self) -> None:
        try:
            self.fs.makedirs(self.root, exist_ok=True)
        except Exception as exc:
            raise self._error(exc, "") from exc

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(name)
        try:
            if not self.fs.isfile(path):
                raise FileNotFoundError(path)
            end = None if length is None else offset + length
            return self.fs.cat_file(path, start=offset or None, end=end)
        except Exception as exc:
            raise self._error(exc, name) from exc

    def write(self, name: str, data: bytes, *, overwrite: bool = False) -> None:
        path = self._path(name)
        try:
            if self._atomic_put:
                self._put(path, name, data, overwrite)
            else:
                self._write_and_rename(path, name, data, overwrite)
        except Exception as exc:
            raise self._error(exc, name) from exc

    def _put(self, path: str, name: str, data: bytes, overwrite: bool) -> None:
        with self._create_lock:
            if not overwrite and self.fs.exists(path):
                raise ObjectExists("object exists", target=self.url, name=name)
            self.fs.pipe_file(path, bytes(data))

    def _write_and_rename(self, path: str, name: str, data: bytes, overwrite: bool) -> None:
        parent, _, leaf = path.rpartition("/")
        tmp = f"{parent}/.tmp-{leaf}-{secrets.token_hex(6)}"
        self.fs.makedirs(parent, exist_ok=True)
        self.fs.pipe_file(tmp, bytes(data))
        try:
            with self._create_lock:
                if not overwrite and self.fs.exists(path):
                    raise ObjectExists("object exists", target=self.url, name=name)
                if overwrite and self.fs.exists(path):
                    self.fs.rm_file(path)
                self.fs.mv(tmp, path)
        finally:
            if self.fs.exists(tmp):
                self.fs.rm_file(tmp)

    def stat(self, name: str) -> ObjectInfo:
        path = self._path(name)
        try:
            info = self.fs.info(path)
        except Exception as exc:
            raise self._error(exc, name) from exc
        if info.get("type") != "file":
            raise ObjectNotFound("not an object", target=self.url, name=name)
        return ObjectInfo(name, _size(self.fs, path, info))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        folder, _, stem = prefix.rpartition("/")
        base = f"{self.root}/{folder}" if folder else self.root
        try:
            self.fs.invalidate_cache()
            found = self.fs.find(base, detail=True) if self.fs.exists(base) else {}
        except Exception as exc:
            raise self._error(exc, prefix) from exc
        start = len(self.root) + 1
        for path, info in found.items():
            rel = path.rstrip("/")[start:] if path.startswith(self.root + "/") else None
            if rel is None or info.get("type") != "file":
                continue
            leaf = rel.rsplit("/", 1)[-1]
            if leaf.startswith(".") or not rel.startswith(prefix):
                continue
            yield ObjectInfo(rel, _size(self.fs, path, info))
        del stem

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            if not self.fs.isfile(path):
                raise FileNotFoundError(path)
            self.fs.rm_file(path)
        except Exception as exc:
            raise self._error(exc, name) from exc


def _size(fs: Any, path: str, info: dict[str, Any]) -> int:
    size = info.get("size")
    return int(size) if size is not None else int(fs.size(path))
