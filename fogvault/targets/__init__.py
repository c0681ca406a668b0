"""Several targets presented as one: fan-out writes, verified reads with failover."""

from fogvault.targets.replicated import TargetSet

__all__ = ["TargetSet"]
