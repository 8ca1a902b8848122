"""What a node's HTTP handlers and sockets share, built once by the lifespan.

One frozen object on ``app.state.node`` instead of a loose attribute per part, so a handler
reads typed fields (``node_of(request).manager``) and a socket gets all it needs in one read.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from starlette.datastructures import State
from starlette.requests import HTTPConnection

from translators import IdMapper, V2Dialect
from v3_core import ConnectionManager

from .auth import TokenPolicy
from .dead_letters import DeadLetters
from .ops_state import NodeHeartbeat
from .settings import Settings
from .v2.control import V2Control


@dataclass(frozen=True, slots=True)
class NodeState:
    """The parts of a running node; they live as long as the app's lifespan."""

    settings: Settings
    manager: ConnectionManager
    id_mapper: IdMapper
    v2_dialect: V2Dialect  # how legacy sockets speak
    v2_control: V2Control  # the V2 phase-out: admission and usage
    dead_letters: DeadLetters
    heartbeat: NodeHeartbeat  # this node in the registry the ops page reads
    metrics: CollectorRegistry  # what /metrics renders (the worker group's, with --workers)
    token_policy: TokenPolicy | None  # handshake tokens, when AETHER_AUTH_SECRET is set


def node_of(request: HTTPConnection) -> NodeState:
    """The node serving ``request``; its lifespan has started, or no request would arrive."""
    node: NodeState = request.app.state.node
    return node


def started_node(state: State) -> NodeState | None:
    """The node on an app's ``state``, or None before its lifespan started."""
    node: NodeState | None = getattr(state, "node", None)
    return node
