"""The core knows no V2: the legacy dialect's facts are opaque tags only translators/ reads."""

from __future__ import annotations

import re
from pathlib import Path

import v3_core

CORE = Path(v3_core.__file__).parent
V2_WORDS = re.compile(r'[a-z]+_legacy\b|"ping"')  # legacy IDs by name; V2's heartbeat word


def test_no_core_module_names_a_legacy_id_or_a_v2_heartbeat_word() -> None:
    sources = sorted(CORE.rglob("*.py"))
    assert len(sources) > 10  # the core, not an empty directory
    found = [
        f"{path.relative_to(CORE)}:{number}: {line.strip()}"
        for path in sources
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if V2_WORDS.search(line)
    ]
    assert found == []
