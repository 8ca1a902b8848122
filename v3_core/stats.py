"""ManagerStats: a node's plain counters, read by /metrics at scrape time.

Counting is an integer addition where it happens; no metric call runs per message.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


@dataclass(slots=True)
class ManagerStats:
    """Plain counters, read by /metrics at scrape time (no per-message metric calls)."""

    connections_opened: int = 0
    connections_rejected: int = 0
    client_limit_refusals: int = 0
    no_recipient: int = 0  # direct messages that reached no node
    node_limit_refusals: int = 0
    messages_received: int = 0
    messages_rejected: int = 0
    messages_rate_limited: int = 0
    rate_limit_closes: int = 0
    messages_published: int = 0
    publish_failures: int = 0
    broker_messages: int = 0
    deliveries: int = 0
    discontinuities: int = 0
    slow_consumers: int = 0
    presence_expired: int = 0
    broker_unreadable: int = 0  # messages from the broker this node could not read (dropped)
    error_replies: dict[str, int] = field(default_factory=dict)  # error code -> replies sent
    # protocol -> target -> client frames handled: "v3"/"v2" dialects, "http" for POST /v3/messages
    traffic: defaultdict[str, defaultdict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )

    def traffic_totals(self) -> dict[tuple[str, str], int]:
        return {(p, t): n for p, targets in self.traffic.items() for t, n in targets.items()}
