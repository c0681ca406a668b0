"""Several targets presented as one: fan-out writes, verified reads with failover."""

from fogvault.targets.health import Target
from fogvault.targets.policy import TargetPolicy
from fogvault.targets.replicated import TargetSet

__all__ = ["Target", "TargetPolicy", "TargetSet"]
