"""The one compiled part of FogVault; everything else is in pyproject.toml."""

from setuptools import Extension, setup

# The blob index's slot table (probe and insert) in C (docs/design.md, section 4). Optional:
# where it does not build (no C compiler, no Python headers), fogvault/repo/index.py uses the
# same loops in Python.
setup(ext_modules=[Extension("fogvault.repo._probe", ["fogvault/repo/_probe.c"], optional=True)])
