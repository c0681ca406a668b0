"""The backup engine: walk the source, detect changes against a parent, store new data."""
