"""Several targets presented as one: fan-out writes with retries and dropping, k-of-N quorum,
fastest-first verified reads with failover, and the local ledger of repair debt.

``replicated`` (TargetSet: the fan-out), ``health`` (per-target state and read order),
``policy`` (retries, concurrency, K), ``ledger`` (what this machine remembers between runs).
"""

from fogvault.targets.health import Target
from fogvault.targets.policy import TargetPolicy
from fogvault.targets.replicated import TargetSet

__all__ = ["Target", "TargetPolicy", "TargetSet"]
