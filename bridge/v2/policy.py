"""The V2 phase-out policy (docs/ops-runbook.md §8), pure: which mode applies to a group, and what a
legacy client is told in each mode. No I/O: the stores are in store, the node side in control.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal, TypeGuard, get_args

import orjson

Mode = Literal["open", "warn", "closed"]
MODES: Final[tuple[Mode, ...]] = get_args(Mode)
DEFAULT_MODE: Final[Mode] = "open"
GLOBAL: Final = "*"  # the store's field for the global mode; never a Vision ID
MAX_REASON_BYTES: Final = 123  # a close reason must fit in one control frame
GUIDE: Final = "docs/migration-guide.md"


def is_mode(value: object) -> TypeGuard[Mode]:
    return value in MODES


@dataclass(frozen=True, slots=True)
class V2Policy:
    """The global mode and per-group overrides (keyed by group Vision ID)."""

    global_mode: Mode = DEFAULT_MODE
    groups: Mapping[str, Mode] = field(default_factory=dict)

    def mode_for(self, group_id: str) -> Mode:
        """A group's override wins over the global mode."""
        return self.groups.get(group_id, self.global_mode)

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> V2Policy:
        """Build from the store's ``scope -> mode`` fields; values that are not modes are ignored
        (a hand-edited store must not stop every node from admitting clients)."""
        valid: dict[str, Mode] = {k: v for k, v in fields.items() if is_mode(v)}
        global_mode = valid.pop(GLOBAL, DEFAULT_MODE)
        return cls(global_mode, dict(sorted(valid.items())))

    def as_json(self) -> dict[str, object]:
        return {"global": self.global_mode, "groups": dict(self.groups)}


def v3_path(group_id: str, client_id: str) -> str:
    """Where a legacy client should connect instead: the V3 path with its Vision IDs."""
    return f"/v3/ws/group/{group_id}/client/{client_id}"


def closed_reason(group_id: str, client_id: str) -> str:
    """The close reason for a refused legacy client: the V3 path, shortened to fit 123 bytes.

    Vision IDs are ASCII, so characters are bytes; with two 64-character IDs the client part
    gives way to a placeholder, and the group's own ID (the part a client may not know) stays.
    """
    for client in (client_id, "<client Vision ID>", "<client>"):
        reason = f"V2 closed; use {v3_path(group_id, client)}"
        if len(reason.encode()) <= MAX_REASON_BYTES:
            return reason
    return f"V2 closed; use /v3/ws/...; see {GUIDE}"


def deprecation_notice(group_id: str, client_id: str) -> str:
    """The V2-shaped frame a legacy client gets right after its handshake in ``warn`` mode."""
    path = v3_path(group_id, client_id)
    frame = {
        "type": "cmd",
        "target": "echo",
        "cmd": "deprecation",
        "msg": f"the V2 protocol is deprecated; connect to {path} (see {GUIDE})",
        "data": {"v3_url": path, "mode": "warn", "guide": GUIDE},
        "from": None,  # the keys every V2 frame has
        "group": None,
        "sent_at": None,
    }
    return orjson.dumps(frame).decode()


def iso_z(timestamp: float) -> str:
    """Unix seconds as ISO 8601 UTC with a ``Z``, to the millisecond."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
