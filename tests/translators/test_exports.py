"""The public API of `translators` is deliberate: everything exported exists and is public."""

from __future__ import annotations

import translators


def test_all_names_exist() -> None:
    assert [name for name in translators.__all__ if not hasattr(translators, name)] == []


def test_all_is_sorted_and_public() -> None:
    assert translators.__all__ == sorted(translators.__all__)
    assert all(not name.startswith("_") for name in translators.__all__)


def test_every_public_name_is_exported() -> None:
    """A name imported into the package without being listed is an accident."""
    public = {
        name
        for name, value in vars(translators).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("translators.")
    }
    assert public - set(translators.__all__) == set()
