"""FogVault: versioned, deduplicating, encrypted backups to several targets at once."""

__version__ = "0.1.0"
