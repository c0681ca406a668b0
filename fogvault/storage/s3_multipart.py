"""Resumable S3 multipart uploads with per-part verification.

An object of ``threshold`` bytes or more is uploaded in parts of ``part_size`` bytes:

* **Per-part verification.** Every ``UploadPart`` carries ``Content-MD5``: the server refuses a
  part damaged on the way (``BadDigest``, retried). Servers that name parts by their MD5 (AWS
  without SSE-KMS, Ceph RGW, MinIO) answer with that MD5 as the ETag; it is compared too.
* **Resumable.** Before starting, the in-progress uploads of the same key are listed
  (``ListMultipartUploads``, ``ListParts``). A part already there whose ETag is the MD5 of this
  part's bytes is kept; the others are uploaded again. So a write interrupted after some parts
  (a dropped connection retried by :class:`~fogvault.storage.retrying.RetryingStorage`, or a killed
  process whose next run copies the same object, as ``repair`` and ``target add`` do) sends only
  what is missing. Reuse needs identical bytes, which content-addressed names guarantee.
* **Never a visible partial object.** The object appears only at ``CompleteMultipartUpload``,
  whole. The ETag it answers is checked against the MD5 of the part MD5s (``<hex>-<count>``) when
  the server uses MD5 ETags, and the object's size is checked with a HEAD.
* **Create-only.** S3 can enforce it at completion (``If-None-Match: *``, HTTP 412); Ceph RGW 16
  ignores the header there. So a HEAD first refuses an existing name, and the header is sent as
  well for servers that honour it. On servers that ignore it, two writers racing for one name can
  both succeed; FogVault writes objects this large only under content-addressed names (packs,
  index files), where both write the same bytes (docs/targets.md).
* **Clean-up.** An upload whose process died is invisible but costs storage until aborted:
  :func:`abort_stale_uploads` aborts those older than a given age (``prune`` calls it).
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fogvault.storage.errors import ObjectExists, TransientStorageError
from fogvault.storage.throttled import UNLIMITED, Pacer

#: S3's limits: parts of 5 MiB or more (except the last), at most 10,000 of them.
MIN_PART_SIZE = 5 * 1024**2
MAX_PARTS = 10_000

#: ``call(method, **kwargs)``: one S3 API call (s3fs's ``call_s3``), errors left to the caller.
S3Call = Callable[..., dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Part:
    number: int  # 1-based, as S3 counts
    start: int
    end: int
    md5: bytes

    @property
    def etag(self) -> str:
        return f'"{self.md5.hex()}"'


@dataclass(frozen=True, slots=True)
class UploadReport:
    """What one multipart write did: the parts it sent and the parts it found already there."""

    upload_id: str
    uploaded: int
    reused: int


def part_size_for(total: int, wanted: int) -> int:
    """``wanted``, raised to S3's minimum and as far as S3's part limit needs for ``total``."""
    return max(wanted, MIN_PART_SIZE, -(-total // MAX_PARTS))


def split_parts(data: bytes | memoryview, part_size: int) -> list[Part]:
    """The parts of ``data``, of ``part_size_for(len(data), part_size)`` bytes each."""
    size = part_size_for(len(data), part_size)
    view = memoryview(data)
    return [Part(n, start, min(start + size, len(data)),
                 hashlib.md5(view[start:start + size], usedforsecurity=False).digest())
            for n, start in enumerate(range(0, len(data), size), 1)]  # fmt: skip


def multipart_etag(parts: list[Part]) -> str:
    """The ETag S3 gives a completed multipart object: MD5 of the part MD5s, dash, count."""
    digest = hashlib.md5(b"".join(p.md5 for p in parts), usedforsecurity=False).hexdigest()
    return f'"{digest}-{len(parts)}"'


class MultipartUpload:
    """One multipart write of ``data`` to ``bucket``/``key`` through ``call``."""

    def __init__(self, call: S3Call, bucket: str, key: str, part_size: int,
                 pacer: Pacer = UNLIMITED) -> None:
        self.call = call
        self.bucket = bucket
        self.key = key
        self.part_size = part_size
        self.pacer = pacer  # a bandwidth limit: each part waits for its tokens before it goes

    def write(self, data: bytes | memoryview, *, create_only: bool, conditional: bool
              ) -> UploadReport:
        """Upload ``data``; ``conditional``: also send ``If-None-Match`` at completion."""
        if create_only and self._exists():
            raise ObjectExists("object exists", name=self.key)
        parts = split_parts(data, self.part_size)
        upload_id, present = self._resume(parts)
        view = memoryview(data)
        missing = [p for p in parts if present.get(p.number) != p.etag]
        for part in missing:
            self._upload_part(upload_id, part, view[part.start:part.end])
        self._complete(upload_id, parts, create_only and conditional)
        self._verify(parts, len(data))
        return UploadReport(upload_id, uploaded=len(missing), reused=len(parts) - len(missing))

    # --- steps

    def _exists(self) -> bool:
        return any(o.get("Key") == self.key for o in self.call(
            "list_objects_v2", Bucket=self.bucket, Prefix=self.key, MaxKeys=1).get("Contents", []))

    def _resume(self, parts: list[Part]) -> tuple[str, dict[int, str]]:
        """An upload of this key to continue and its parts' ETags, or a new upload."""
        best: tuple[int, str, dict[int, str]] | None = None
        for upload in list_uploads(self.call, self.bucket, self.key):
            if upload["Key"] != self.key:
                continue
            present = self._parts(upload["UploadId"])
            matching = sum(present.get(p.number) == p.etag for p in parts)
            if best is None or matching > best[0]:
                best = (matching, upload["UploadId"], present)
        if best is not None:
            return best[1], best[2]
        created = self.call("create_multipart_upload", Bucket=self.bucket, Key=self.key)
        return created["UploadId"], {}

    def _parts(self, upload_id: str) -> dict[int, str]:
        present: dict[int, str] = {}
        marker = 0
        while True:
            page = self.call("list_parts", Bucket=self.bucket, Key=self.key, UploadId=upload_id,
                             PartNumberMarker=marker)  # fmt: skip
            present.update((p["PartNumber"], p["ETag"]) for p in page.get("Parts", []))
            if not page.get("IsTruncated"):
                return present
            marker = int(page["NextPartNumberMarker"])

    def _upload_part(self, upload_id: str, part: Part, body: memoryview) -> None:
        self.pacer.take(len(body))
        answer = self.call(
            "upload_part", Bucket=self.bucket, Key=self.key, UploadId=upload_id,
            PartNumber=part.number, Body=body,
            ContentMD5=base64.b64encode(part.md5).decode(),
        )  # fmt: skip
        etag = answer.get("ETag", "")
        if _is_md5_etag(etag) and etag != part.etag:
            raise TransientStorageError(f"part {part.number} stored with ETag {etag}, "
                                        f"expected {part.etag}", name=self.key)  # fmt: skip

    def _complete(self, upload_id: str, parts: list[Part], if_none_match: bool) -> None:
        listing = {"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]}
        extra = {"IfNoneMatch": "*"} if if_none_match else {}
        answer = self.call("complete_multipart_upload", Bucket=self.bucket, Key=self.key,
                           UploadId=upload_id, MultipartUpload=listing, **extra)  # fmt: skip
        etag, expected = answer.get("ETag", ""), multipart_etag(parts)
        if etag.endswith(f'-{len(parts)}"') and etag != expected:
            raise TransientStorageError(f"object completed with ETag {etag}, expected {expected}",
                                        name=self.key)

    def _verify(self, parts: list[Part], size: int) -> None:
        head = self.call("head_object", Bucket=self.bucket, Key=self.key)
        if int(head.get("ContentLength", -1)) != size:
            raise TransientStorageError(f"object has {head.get('ContentLength')} bytes after "
                                        f"the upload, expected {size}", name=self.key)  # fmt: skip


def _is_md5_etag(etag: str) -> bool:
    hex_digits = etag.strip('"')
    return len(hex_digits) == 32 and all(c in "0123456789abcdef" for c in hex_digits)


def list_uploads(call: S3Call, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Every in-progress multipart upload whose key starts with ``prefix``."""
    markers: dict[str, str] = {}
    while True:
        page = call("list_multipart_uploads", Bucket=bucket, Prefix=prefix, **markers)
        yield from page.get("Uploads", [])
        if not page.get("IsTruncated"):
            return
        markers = {"KeyMarker": page["NextKeyMarker"],
                   "UploadIdMarker": page["NextUploadIdMarker"]}  # fmt: skip


def abort_stale_uploads(call: S3Call, bucket: str, prefix: str, older_than: float) -> list[str]:
    """Abort the uploads under ``prefix`` started more than ``older_than`` seconds ago; return
    their keys. Younger ones may belong to a writer that is still running."""
    cutoff = time.time() - older_than
    aborted = []
    for upload in list(list_uploads(call, bucket, prefix)):
        if _timestamp(upload["Initiated"]) < cutoff:
            call("abort_multipart_upload", Bucket=bucket, Key=upload["Key"],
                 UploadId=upload["UploadId"])  # fmt: skip
            aborted.append(upload["Key"])
    return aborted


def _timestamp(value: datetime | str) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
