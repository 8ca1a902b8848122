"""Who still uses V2: usage records and the report built from them. Pure.

A node accumulates `UsageDelta`s from its own legacy connections and flushes them to a
`V2Store` every few seconds (control); the store adds them up across nodes and returns
`GroupUsage` rows, which `usage_json` renders for HTTP and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .policy import iso_z

Key = tuple[str, str]  # (group Vision ID, client Vision ID)


@dataclass(slots=True)
class ClientDelta:
    """What one node saw of one legacy client since its last flush."""

    group_legacy: str = ""
    client_legacy: str = ""
    messages: int = 0
    connects: int = 0
    last_seen: float = 0.0  # unix seconds

    def merge(self, other: ClientDelta) -> None:
        self.group_legacy = self.group_legacy or other.group_legacy
        self.client_legacy = self.client_legacy or other.client_legacy
        self.messages += other.messages
        self.connects += other.connects
        self.last_seen = max(self.last_seen, other.last_seen)


UsageDelta = dict[Key, ClientDelta]


def merge_into(target: UsageDelta, delta: UsageDelta) -> None:
    """Add ``delta`` to ``target`` (a failed flush is merged back and retried later)."""
    for key, value in delta.items():
        if (current := target.get(key)) is None:
            target[key] = ClientDelta(
                value.group_legacy,
                value.client_legacy,
                value.messages,
                value.connects,
                value.last_seen,
            )
        else:
            current.merge(value)


@dataclass(slots=True)
class ClientUsage:
    client_id: str
    client_legacy: str
    messages: int
    connects: int
    last_seen: float


@dataclass(slots=True)
class GroupUsage:
    group_id: str
    group_legacy: str
    clients: list[ClientUsage] = field(default_factory=list)

    @property
    def last_seen(self) -> float:
        return max((c.last_seen for c in self.clients), default=0.0)

    @property
    def messages(self) -> int:
        return sum(c.messages for c in self.clients)


def usage_json(groups: list[GroupUsage]) -> dict[str, object]:
    """The report: most recently seen groups first, and clients likewise within a group."""
    ordered = sorted(groups, key=lambda g: (-g.last_seen, g.group_id))
    return {"groups": [_group_json(g) for g in ordered if g.clients]}


def _group_json(group: GroupUsage) -> dict[str, object]:
    clients = sorted(group.clients, key=lambda c: (-c.last_seen, c.client_id))
    return {
        "group_id": group.group_id,
        "group_legacy": group.group_legacy or None,
        "messages": group.messages,
        "last_seen": iso_z(group.last_seen),
        "clients": [
            {
                "client_id": c.client_id,
                "client_legacy": c.client_legacy or None,
                "messages": c.messages,
                "connects": c.connects,
                "last_seen": iso_z(c.last_seen),
            }
            for c in clients
        ],
    }
