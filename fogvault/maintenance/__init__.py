"""Repository maintenance: retention policies (``forget``) and related housekeeping."""
