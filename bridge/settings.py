"""Every knob of a node, read from flags or ``AETHER_*`` environment variables."""

from __future__ import annotations

import re
import secrets
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# What a browser sends as Origin: scheme://host[:port], or "null" (sandboxed frames, files).
ORIGIN = re.compile(r"null|[a-z][a-z0-9+.-]*://[^/?#\s*]+", re.IGNORECASE)


class Settings(BaseSettings):
    """Defaults suit one process on a laptop; production sets ``redis_url``."""

    model_config = SettingsConfigDict(env_prefix="AETHER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    redis_url: str | None = None
    workers: int = Field(1, ge=1)
    log_level: str = "info"

    max_message_bytes: int = Field(65536, ge=256)
    presence_ttl: float = Field(30.0, gt=0)
    client_broadcast: bool = True
    channel_prefix: str = "aether:"
    # In every envelope this node publishes: no spaces (docs/design.md, node messages).
    node_id: str = Field(
        default_factory=lambda: secrets.token_hex(4), pattern=r"^[A-Za-z0-9_.:-]{1,64}$"
    )
    # Browser origins admitted to sockets and to POST /v3/messages; empty: any. Exact origins
    # only: a browser never sends "*" or a path, so such an entry would refuse every browser.
    allowed_origins: list[str] = Field(default_factory=list)

    queue_max_bytes: int = Field(1 << 20, ge=1024)
    queue_max_messages: int = Field(4096, ge=1)
    send_timeout: float = Field(1.0, gt=0)
    ping_interval: float = Field(20.0, ge=0)
    ping_timeout: float = Field(20.0, gt=0)
    # WebSocket PINGs one client may send per second, after a burst of 5 s worth; over it:
    # 4529. 0: no limit (the pong backpressure cut still applies).
    max_pings_per_second: float = Field(10.0, ge=0)
    graceful_timeout: float = Field(5.0, ge=0)

    # Slow or idle clients (slowloris; bridge/http_guard.py). A request's head (a WebSocket
    # handshake is one) must arrive within handshake_timeout of the connection opening or of
    # the previous response; its body within body_timeout of the head; else 408 and closed.
    # Past max_pending_connections sockets in those phases the oldest is closed, once it has
    # been pending for pending_grace seconds (a storm's honest clients are not); 0: no cap.
    handshake_timeout: float = Field(5.0, gt=0)
    body_timeout: float = Field(10.0, gt=0)
    max_pending_connections: int = Field(512, ge=0)
    pending_grace: float = Field(1.0, ge=0)

    # Inbound rate limit per connection (docs/ops-runbook.md); 0 for rate or burst: no limit.
    rate_limit: float = Field(100.0, ge=0)  # messages/s sustained
    rate_burst: int = Field(1000, ge=0)  # messages at once
    rate_close_after: int = Field(10, ge=0)  # rejected in a row before 4529; 0: never close

    # Connection limits of this node (per process, not cluster-wide); 0: no limit.
    max_connections_per_client: int = Field(0, ge=0)  # one client_id's sockets; over it: 4529
    max_connections: int = Field(0, ge=0)  # all sockets of the node; over it: 1013

    # History and recovery (docs/design.md section 9); history_size 0 turns them off.
    history_size: int = Field(1000, ge=0)
    history_ttl: float = Field(300.0, gt=0)

    # SIGTERM (docs/ops-runbook.md §6): not ready for drain_seconds, then 1012 closes spread
    # over close_spread_seconds. Single-process nodes; uvicorn's own workers close all at once.
    drain_seconds: float = Field(0.0, ge=0)
    close_spread_seconds: float = Field(0.0, ge=0)

    # On a Redis Cluster: shard channels (SPUBLISH/SSUBSCRIBE, Redis >= 7), or classic pub/sub
    # relayed to every node over the cluster bus (for Redis < 7, and for comparison).
    cluster_pubsub: Literal["sharded", "classic"] = "sharded"

    redis_timeout: float = Field(2.0, gt=0)
    probe_interval: float = Field(5.0, gt=0)

    # Handshake tokens (bridge/auth.py): off unless a secret is set.
    auth_secret: str | None = None
    auth_audience: str | None = None
    api_token: str | None = None  # bearer token of the HTTP API (bridge/api_token.py)

    # Legacy integers one connection may address that its node had not cached (each costs a
    # store read, and an upstream call when one is set); over it: invalid-id. 0: no limit.
    new_ids_per_connection: int = Field(1000, ge=0)

    id_lookup_url: str | None = None
    id_lookup_timeout: float = Field(2.0, gt=0)
    id_lookup_token: str | None = None

    v2_refresh_interval: float = Field(1.0, gt=0)
    v2_usage_interval: float = Field(5.0, gt=0)
    v2_usage_ttl: float = Field(30 * 86400.0, gt=0)

    # Dead letters (bridge/dead_letters.py): samples kept per group and code, for how long.
    dead_letter_keep: int = Field(10, ge=1, le=1000)
    dead_letter_ttl: float = Field(3 * 86400.0, gt=0)
    # The node registry behind /ops/ (bridge/node_registry.py): seconds between heartbeats.
    node_heartbeat_interval: float = Field(0.5, gt=0)

    @field_validator("allowed_origins")
    @classmethod
    def _exact_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if not ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: list each one as scheme://host[:port], "
                    'with no path and no wildcard, e.g. ["https://app.example.com"]; a browser '
                    "sends exactly that, so this entry would match none (leave the list empty "
                    "to admit every origin)"
                )
        return origins

    @model_validator(mode="after")
    def _workers_need_redis(self) -> Settings:
        if self.workers > 1 and not self.redis_url:
            raise ValueError(
                "--workers > 1 needs --redis-url: each worker would otherwise have its own "
                "embedded broker and clients on different workers could not reach each other"
            )
        if not self.redis_url:
            self.redis_url = None
        return self
