"""A node without Redis never loads redis-py: the Redis backends are imported on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

import v3_core.backends
from v3_core.backends.redis_broker import RedisBroker


def test_importing_the_core_and_its_backends_loads_no_redis() -> None:
    code = (
        "import sys, v3_core, v3_core.backends\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'hiredis')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"


def test_the_redis_backends_keep_their_public_names() -> None:
    from v3_core.backends import RedisBroker as named

    assert named is RedisBroker
    assert set(v3_core.backends.__all__) <= set(dir(v3_core.backends))
    with pytest.raises(AttributeError, match="RedisBrokr"):
        _ = v3_core.backends.RedisBrokr
