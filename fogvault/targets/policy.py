"""How a set of targets behaves under failure: retries, concurrency, dropping, k-of-N commits.

One dataclass, with every default and its reason in one place. ``TargetPolicy.from_env()``
reads the environment (docs/targets.md, "Several targets"); explicit arguments win over it.
"""

from __future__ import annotations

import os
import re
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
}
#: environment variable -> the bandwidth limit's field (KiB/s, parse_limit)
_LIMIT_ENV = {"FOGVAULT_LIMIT_UPLOAD": "limit_upload",
              "FOGVAULT_LIMIT_DOWNLOAD": "limit_download"}
#: The highest bandwidth limit, in KiB/s (1 TiB/s): far beyond any link, and a rate a float
#: holds exactly (a longer number of digits overflowed the token bucket's arithmetic).
MAX_LIMIT_KIB = 2**30


def parse_limit(text: str, what: str) -> int:
    """A bandwidth limit written by a user (an option or an environment variable, ``what``):
    ASCII digits only (no sign, fraction, unit, ``_`` or other scripts' digits, which ``int``
    takes), at most MAX_LIMIT_KIB; a usage error of one line otherwise."""
    digits = text.strip()
    if not re.fullmatch(r"[0-9]+", digits) or int(digits) > MAX_LIMIT_KIB:
        raise UsageError(f"{what} takes a whole number of KiB/s from 0 (no limit) to "
                         f"{MAX_LIMIT_KIB}, not {text!r}")
    return int(digits)


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
        for name in _LIMIT_ENV.values():
            limit = getattr(self, name)
            if limit is not None and not 0 <= limit <= MAX_LIMIT_KIB:
                raise UsageError(f"{name} must be a number of KiB/s from 0 (no limit) to "
                                 f"{MAX_LIMIT_KIB}, not {limit}")
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
                if kind is int and values[name] < 1:  # __post_init__ would not name the variable
                    raise UsageError(f"{var}={text!r}: use a whole number of at least 1")
        for var, name in _LIMIT_ENV.items():
            text = env.get(var, "").strip()
            if text:
                values[name] = parse_limit(text, var)
        known = {f.name for f in fields(cls)}
        values.update({k: v for k, v in explicit.items() if k in known and v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def quorum(self, targets: int) -> int:
        """K for ``targets`` targets; more than there are is a usage error."""
        k = targets if self.min_targets is None else self.min_targets
        if k > targets:
            raise UsageError(f"--min-targets {k} but only {targets} targets are given")
        return k
