"""Soak-tier fixtures: the chaos tier's (a Redis each test may kill, nodes with short timings)."""

from __future__ import annotations

from ..chaos.conftest import launch, redis_server

__all__ = ["launch", "redis_server"]
