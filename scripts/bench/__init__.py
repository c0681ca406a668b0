"""Helpers of scripts/bench.py: corpora, the tools under test, measurements and the report."""
