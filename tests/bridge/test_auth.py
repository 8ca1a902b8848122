"""Scenarios X2 and X3 (docs/reliability.md): handshake tokens, opt-in with AETHER_AUTH_SECRET.

No, malformed, expired, other-audience or other-client tokens are refused (accepted, then
closed 4501 with a reason); a good one opens the socket by query or by subprotocol; the token
never reaches a log line; a socket whose token expires is closed with 4501 at expiry.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import jwt
import pytest

from bridge.auth import (
    BEARER_SUBPROTOCOL,
    Credentials,
    TokenPolicy,
    authenticate,
    take_credentials,
)
from bridge.settings import Settings
from v3_core import ConnectionRejected

from ..conftest import RunningServer, serve_app
from ..helpers import MS, close_of, connect, recv_msg, send_json

SECRET = "test-secret-of-at-least-32-bytes-long!"
AUDIENCE = "tenant-a"


def token(
    *,
    sub: str = "alice",
    groups: Any = ("g1",),
    ttl: float = 60.0,
    aud: str | None = AUDIENCE,
    secret: str = SECRET,
) -> str:
    claims: dict[str, Any] = {"sub": sub, "groups": list(groups), "exp": time.time() + ttl}
    if groups == "*":
        claims["groups"] = "*"
    if aud is not None:
        claims["aud"] = aud
    return jwt.encode(claims, secret, algorithm="HS256")


# -- the pure part -------------------------------------------------------------------------

POLICY = TokenPolicy(SECRET, AUDIENCE)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        (None, "a token is required"),
        ("not.a.jwt", "the token is not valid (DecodeError)"),
        ({"ttl": -5}, "the token has expired"),
        ({"aud": "tenant-b"}, "the token is for another audience"),
        ({"secret": "another-secret-of-at-least-32-bytes!"}, "InvalidSignatureError"),
        ({"sub": "bob"}, "another client_id"),
        ({"groups": ["g2"]}, "does not admit this group_id"),
    ],
)
def test_a_token_that_does_not_open_this_socket_is_refused_with_4501(
    claims: dict[str, Any] | str | None, reason: str
) -> None:
    # Built here, not at collection: a token made minutes earlier may have expired since.
    presented = token(**claims) if isinstance(claims, dict) else claims
    with pytest.raises(ConnectionRejected) as refused:
        authenticate(POLICY, presented, "g1", "alice")
    assert refused.value.close_code == 4501
    assert reason in refused.value.reason
    assert presented is None or presented not in refused.value.reason


def test_a_good_token_gives_its_expiry_and_a_wildcard_admits_any_group() -> None:
    assert authenticate(POLICY, token(), "g1", "alice") > time.time()
    assert authenticate(POLICY, token(groups="*"), "any-group", "alice") > time.time()


def test_the_token_is_taken_out_of_the_query_string() -> None:
    scope: dict[str, Any] = {"query_string": f"a=1&token={token()}&b=2".encode()}
    assert take_credentials(scope).token is not None
    assert scope["query_string"] == b"a=1&b=2"
    offered = {"query_string": b"", "subprotocols": [BEARER_SUBPROTOCOL, "tok"]}
    assert take_credentials(offered) == Credentials("tok", BEARER_SUBPROTOCOL)
    assert take_credentials({"query_string": b"", "subprotocols": ["chat"]}).token is None


# -- over real sockets ---------------------------------------------------------------------


@pytest.fixture
async def server(make_settings: Callable[..., Settings]) -> AsyncIterator[RunningServer]:
    settings = make_settings(auth_secret=SECRET, auth_audience=AUDIENCE)
    async with serve_app(settings) as running:
        yield running


async def test_no_token_and_a_bad_token_are_refused_with_4501(server: RunningServer) -> None:
    bare = await connect(server.ws, "/v3/ws/group/g1/client/alice")
    assert await close_of(bare) == (
        4501,
        "a token is required: ?token=... or the subprotocols aether.bearer, TOKEN",
    )
    expired = await connect(server.ws, f"/v3/ws/group/g1/client/alice?token={token(ttl=-1)}")
    assert await close_of(expired) == (4501, "the token has expired")
    legacy = await connect(server.ws, f"/ws/group/g1/client/bob?token={token()}")
    assert await close_of(legacy) == (4501, "the token is for another client_id")


async def test_a_refusal_by_subprotocol_completes_the_handshake_so_the_code_is_seen(
    server: RunningServer,
) -> None:
    """A client that offered the bearer subprotocol must have it echoed even when refused:
    else it fails the handshake (browsers do, as RFC 6455 says) and sees 1006, not 4501."""
    for path, why in (
        ("/v3/ws/group/g1/client/alice", "the token has expired"),
        ("/v3/ws/group/g1/client/alice?recover=nonsense", "recover"),
    ):
        ttl = -1 if "expired" in why else 60
        ws = await connect(
            server.ws,
            path,
            subprotocols=[BEARER_SUBPROTOCOL, token(ttl=ttl)],
        )
        assert ws.subprotocol == BEARER_SUBPROTOCOL
        code, reason = await close_of(ws)
        assert (code, why in (reason or "")) == (4501 if ttl < 0 else 1008, True)


async def test_a_good_token_opens_the_socket_by_query_and_by_subprotocol(start_node) -> None:
    """On a real ``aether-bridge serve`` at log level info: the token is in no log line."""
    env = {"AETHER_AUTH_SECRET": SECRET, "AETHER_AUTH_AUDIENCE": AUDIENCE}
    node = start_node(env=env)
    by_query, by_subprotocol = token(), token(sub="bob")
    alice = await connect(node.ws, f"/v3/ws/group/g1/client/alice?token={by_query}&x=1")
    bob = await connect(
        node.ws,
        "/v3/ws/group/g1/client/bob",
        subprotocols=[BEARER_SUBPROTOCOL, by_subprotocol],
    )
    async with alice, bob:
        assert bob.subprotocol == BEARER_SUBPROTOCOL
        await send_json(alice, {"msg_type": "msg", "target": "group", "msg": "hi"})
        assert (await recv_msg(bob))["msg"] == "hi"
    refused = await connect(node.ws, f"/v3/ws/group/g1/client/carol?token={by_query}")
    assert (await close_of(refused))[0] == 4501
    log = node.log.read_text()
    assert '"WebSocket /v3/ws/group/g1/client/alice?x=1" [accepted]' in log  # logged, bare
    assert by_query not in log
    assert by_subprotocol not in log


async def test_a_socket_is_closed_with_4501_when_its_token_expires(server: RunningServer) -> None:
    ws = await connect(server.ws, f"/v3/ws/group/g1/client/alice?token={token(ttl=1.5)}")
    started = time.monotonic()
    await send_json(ws, {"msg_type": "msg", "target": "echo", "msg": "still valid"})
    assert (await recv_msg(ws))["msg"] == "still valid"
    code, reason = await close_of(ws)
    assert (code, reason) == (4501, "the token has expired")
    assert 1.0 <= time.monotonic() - started <= 1.5 + 2000 * MS
