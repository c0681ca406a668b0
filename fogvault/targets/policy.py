"""How a set of targets behaves under failure: retries, concurrency, dropping, k-of-N commits.

One dataclass, with every default and its reason in one place. ``TargetPolicy.from_env()``
reads the environment (docs/targets.md, "Several targets"); explicit arguments win over it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from fogvault.errors import UsageError

#: The longest wait before a retry, in seconds (FOGVAULT_RETRY_DELAY, FOGVAULT_RETRY_MAX_DELAY):
#: a longer one holds a run for hours on one failing request.
MAX_RETRY_DELAY = 3600.0

#: environment variable -> (field, type)
_ENV = {
    "FOGVAULT_RETRY_ATTEMPTS": ("retry_attempts", int),
    "FOGVAULT_RETRY_DELAY": ("retry_base_delay", float),
    "FOGVAULT_RETRY_MAX_DELAY": ("retry_max_delay", float),
    "FOGVAULT_TARGET_CONCURRENCY": ("concurrency", int),
    "FOGVAULT_LIMIT_UPLOAD": ("limit_upload", int),
    "FOGVAULT_LIMIT_DOWNLOAD": ("limit_download", int),
}
#: the bandwidth limits' fields, in KiB/s
_LIMITS = ("limit_upload", "limit_download")


@dataclass(slots=True)
class TargetPolicy:
    #: A backup commits (writes its snapshot) only if at least this many targets hold every
    #: pack and index file it needs. None: every target given.
    min_targets: int | None = None
    #: Attempts per request for transient errors (RetryingStorage). 5 attempts with a 0.2 s
    #: base and full jitter ride out a few seconds of trouble without stalling a dead target
    #: for long: at most 0.2 + 0.4 + 0.8 + 1.6 s of sleep before the target is dropped.
    retry_attempts: int = 5
    retry_base_delay: float = 0.2
    retry_max_delay: float = 10.0
    #: Requests in flight per target. Packs are uploaded two at a time (PackWriter), index
    #: files, locks and repair copies come on top; 4 keeps a slow target from piling up work.
    concurrency: int = 4
    #: A target whose reads fail (after retries) this many times in a row is dropped for the
    #: rest of the run. A write that fails after retries drops it at once: the write is lost.
    read_failures_to_drop: int = 3
    #: Bandwidth limits in KiB/s (--limit-upload, --limit-download; None or 0: unlimited).
    #: Each is the process's, shared by every target: see fogvault/storage/throttled.py.
    limit_upload: int | None = None
    limit_download: int | None = None

    def __post_init__(self) -> None:
        if self.min_targets is not None and self.min_targets < 1:
            raise UsageError("--min-targets must be at least 1")
        if self.retry_attempts < 1 or self.concurrency < 1 or self.read_failures_to_drop < 1:
            raise UsageError("retry attempts, concurrency and read failures must be at least 1")
        for name in _LIMITS:
            limit = getattr(self, name)
            if limit is not None and limit < 0:
                raise UsageError(f"{name} must be a number of KiB/s, 0 for no limit, "
                                 f"not {limit}")
        for delay in (self.retry_base_delay, self.retry_max_delay):
            if not 0 <= delay <= MAX_RETRY_DELAY:  # also NaN
                raise UsageError(f"retry delays must be from 0 to {MAX_RETRY_DELAY:g} seconds, "
                                 f"not {delay!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, **explicit: object) -> TargetPolicy:
        values: dict[str, object] = {}
        for var, (name, kind) in _ENV.items():
            text = env.get(var, "").strip()
            if text:
                try:
                    values[name] = kind(text)
                except ValueError:
                    raise UsageError(f"{var}={text!r} is not a number") from None
                if kind is float and not 0 <= values[name] <= MAX_RETRY_DELAY:  # also NaN
                    raise UsageError(f"{var}={text!r}: use a number of seconds from 0 to "
                                     f"{MAX_RETRY_DELAY:g}")
                if name in _LIMITS and values[name] < 0:  # type: ignore[operator]
                    raise UsageError(f"{var}={text!r}: use a whole number of KiB/s, 0 for "
                                     "no limit")
        known = {f.name for f in fields(cls)}
        values.update({k: v for k, v in explicit.items() if k in known and v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def quorum(self, targets: int) -> int:
        """K for ``targets`` targets; more than there are is a usage error."""
        k = targets if self.min_targets is None else self.min_targets
        if k > targets:
            raise UsageError(f"--min-targets {k} but only {targets} targets are given")
        return k
