"""This release's version, as installed (the ops page and /metrics show it per node)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("aether-ws-bridge")
except PackageNotFoundError:  # run from a checkout that was never installed
    VERSION = "0.0.0+unknown"
