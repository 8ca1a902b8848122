"""Handshake authentication (docs/reliability.md, X2 and X3): a signed token per socket, opt-in.

With ``AETHER_AUTH_SECRET`` set, every WebSocket must present a JWT (HS256) whose ``sub`` is the
path's client ID and whose ``groups`` name the path's group (or ``"*"``), with an ``exp``; with
``AETHER_AUTH_AUDIENCE`` set, its ``aud`` must name it (one tenant's tokens open no socket of
another). The token comes in the query (``?token=...``) or as the second of two subprotocols,
``aether.bearer, <token>`` (browsers cannot set headers on a WebSocket). It is taken out of
the query string before anything logs the path, and never logged. Pure apart from the clock.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jwt

from v3_core import CloseCode, ConnectionRejected

BEARER_SUBPROTOCOL = "aether.bearer"
ALGORITHMS = ("HS256",)


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    secret: str
    audience: str | None = None


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a socket presented: the token, and the subprotocol to accept it with."""

    token: str | None
    subprotocol: str | None = None


def take_credentials(scope: MutableMapping[str, Any]) -> Credentials:
    """The token of a handshake, removed from ``scope["query_string"]`` (logged by uvicorn)."""
    pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    tokens = [value for key, value in pairs if key == "token"]
    if tokens:
        rest = [(key, value) for key, value in pairs if key != "token"]
        scope["query_string"] = urlencode(rest).encode("latin-1")
        return Credentials(tokens[0])
    offered = list(scope.get("subprotocols") or ())
    if len(offered) >= 2 and offered[0] == BEARER_SUBPROTOCOL:
        return Credentials(offered[1], BEARER_SUBPROTOCOL)
    return Credentials(None)


def authenticate(policy: TokenPolicy, token: str | None, group_id: str, client_id: str) -> float:
    """The token's expiry (unix seconds) if it opens this socket; else ConnectionRejected
    (4501, with a reason that names what is wrong and never echoes the token)."""
    if not token:
        raise _refused("a token is required: ?token=... or the subprotocols aether.bearer, TOKEN")
    try:
        claims = jwt.decode(
            token,
            policy.secret,
            algorithms=list(ALGORITHMS),
            audience=policy.audience,
            options={"require": ["exp", "sub"], "verify_aud": policy.audience is not None},
        )
    except jwt.ExpiredSignatureError:
        raise _refused("the token has expired") from None
    except jwt.InvalidAudienceError:
        raise _refused("the token is for another audience") from None
    except jwt.InvalidTokenError as exc:
        raise _refused(f"the token is not valid ({type(exc).__name__})") from None
    if claims.get("sub") != client_id:
        raise _refused("the token is for another client_id")
    groups = claims.get("groups")
    if not (groups == "*" or (isinstance(groups, list) and group_id in groups)):
        raise _refused("the token does not admit this group_id")
    return float(claims["exp"])


def _refused(reason: str) -> ConnectionRejected:
    return ConnectionRejected(CloseCode.UNAUTHORIZED, reason)
