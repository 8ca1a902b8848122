"""The legacy database integers a connection carries, as the core's opaque tags.

The core copies a connection's tags onto every message it sends and through the broker to
every node (`v3_core.routing.Tags`); only this dialect knows what they mean. The one-letter
keys are those of the broker envelope's header, where older nodes read them too.
"""

from __future__ import annotations

from typing import Final

from v3_core.routing import NO_TAGS, Tags

FROM: Final = "f"  # the sending client's legacy integer: a V2 frame's ``from``
GROUP: Final = "g"  # its group's legacy integer: a V2 frame's ``group``


def legacy_tags(*, group: str = "", client: str = "") -> Tags:
    """The tags of a connection whose group and client have these integers ("": none); the
    shared empty tags when it has neither, as most V3 clients, so it holds no mapping of its own.
    """
    if not (group or client):
        return NO_TAGS
    tags: dict[str, str] = {}
    if client:
        tags[FROM] = client  # first: the envelope header reads as it did before tags
    if group:
        tags[GROUP] = group
    return tags


def client_legacy(tags: Tags) -> str:
    """The sending client's legacy integer, or "" when it has none."""
    return tags.get(FROM, "")


def group_legacy(tags: Tags) -> str:
    """The sending client's group's legacy integer, or "" when it has none."""
    return tags.get(GROUP, "")
