"""``aether-bridge v2 mode|usage|dead-letters``: the V2 phase-out from the command line.

With a Redis URL (``--redis-url`` or AETHER_REDIS_URL) it reads and writes the store the nodes
share, with no node running; with ``--url`` it asks a running node over HTTP instead (the only
way to reach a node on the embedded broker), with AETHER_API_TOKEN as its bearer token if set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

import httpx
from pydantic import ValidationError

from bridge.dead_letter_store import RedisDeadLetterStore
from bridge.dead_letters import dead_letters_json
from bridge.settings import Settings
from translators import open_id_mapper
from v3_core import BackendUnavailable, ConnectionRejected

from .policy import GLOBAL, MODES, Mode, iso_z
from .store import RedisV2Store
from .usage import usage_json

Json = dict[str, Any]
T = TypeVar("T")


class CliError(Exception):
    """A message for stderr; the command exits with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def add_parser(commands: Any) -> None:
    v2 = commands.add_parser("v2", help="phase legacy V2 clients out: mode and usage")
    sub = v2.add_subparsers(dest="v2_command", required=True)
    mode = sub.add_parser("mode", help="show the V2 mode, or set it globally or for one group")
    mode.add_argument("mode", nargs="?", choices=MODES, help="new mode; omit to show")
    mode.add_argument("--group", help="a group's Vision ID or legacy integer (default: global)")
    mode.add_argument("--clear", action="store_true", help="remove the group's (or global) mode")
    usage = sub.add_parser("usage", help="who still uses V2: groups, clients, counts, last seen")
    dead = sub.add_parser(
        "dead-letters", help="samples of refused legacy frames and undeliverable messages"
    )
    dead.add_argument("--limit", type=int, default=50, help="at most this many samples (50)")
    for command in (mode, usage, dead):
        command.add_argument("--redis-url", help="the nodes' Redis (AETHER_REDIS_URL)")
        command.add_argument("--url", help="a running node instead, e.g. http://127.0.0.1:8000")
        command.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    try:
        result = asyncio.run(_run(args))
    except CliError as exc:
        sys.stderr.write(f"aether-bridge v2: {exc}\n")
        return exc.code
    if args.json:
        text = json.dumps(result, indent=2)
    elif args.v2_command == "usage":
        text = format_usage(result)
    elif args.v2_command == "dead-letters":
        text = format_dead_letters(result)
    else:
        text = format_mode(result)
    sys.stdout.write(text + "\n")
    return 0


async def _run(args: argparse.Namespace) -> Json:
    change = _mode_change(args) if args.v2_command == "mode" else None
    admin = _admin(args)
    try:
        if args.v2_command == "usage":
            return await admin.usage()
        if args.v2_command == "dead-letters":
            return await admin.dead_letters(max(1, min(args.limit, 1000)))
        if change is None:
            return await admin.mode()
        return await admin.set_mode(args.group, change[0])
    finally:
        await admin.aclose()


def _mode_change(args: argparse.Namespace) -> tuple[Mode | None] | None:
    """``(mode,)`` to set, ``(None,)`` to clear, None to only show."""
    if args.clear and args.mode:
        raise CliError("give a mode or --clear, not both", code=2)
    if args.clear:
        return (None,)
    return (args.mode,) if args.mode else None


class Admin(Protocol):
    async def mode(self) -> Json: ...
    async def set_mode(self, group: str | None, mode: Mode | None) -> Json: ...
    async def usage(self) -> Json: ...
    async def dead_letters(self, limit: int) -> Json: ...
    async def aclose(self) -> None: ...


def _admin(args: argparse.Namespace) -> Admin:
    if args.url:
        return HttpAdmin(args.url)
    try:
        settings = Settings(**({"redis_url": args.redis_url} if args.redis_url else {}))
    except ValidationError as exc:
        raise CliError(str(exc.errors(include_url=False)[0]["msg"]), code=2) from exc
    if not settings.redis_url:
        raise CliError(
            "needs --redis-url (or AETHER_REDIS_URL) to reach the nodes' store, "
            "or --url of a running node",
            code=2,
        )
    return StoreAdmin(settings)


class StoreAdmin:
    """Straight to the Redis the nodes share; they apply a change within a second."""

    def __init__(self, settings: Settings) -> None:
        assert settings.redis_url is not None
        self._settings = settings
        self._store = RedisV2Store(
            settings.redis_url,
            prefix=settings.channel_prefix,
            timeout=settings.redis_timeout,
            usage_ttl=settings.v2_usage_ttl,
        )

    async def mode(self) -> Json:
        return (await self._unavailable_as_error(self._store.policy())).as_json()

    async def set_mode(self, group: str | None, mode: Mode | None) -> Json:
        scope = GLOBAL if group is None else await self._group_vision_id(group)
        await self._unavailable_as_error(self._store.set_mode(scope, mode))
        return await self.mode()

    async def usage(self) -> Json:
        return usage_json(await self._unavailable_as_error(self._store.usage()))

    async def dead_letters(self, limit: int) -> Json:
        s = self._settings
        assert s.redis_url is not None
        store = RedisDeadLetterStore(
            s.redis_url, prefix=s.channel_prefix, timeout=s.redis_timeout, ttl=s.dead_letter_ttl
        )
        try:
            letters = await self._unavailable_as_error(store.recent(limit))
            counts = await self._unavailable_as_error(store.counts())
        finally:
            await store.aclose()
        return dead_letters_json(letters, counts)

    async def _group_vision_id(self, group: str) -> str:
        # The same mapping the nodes use: the Redis ID store, then the upstream API if set.
        s = self._settings
        async with open_id_mapper(
            s.redis_url,
            prefix=s.channel_prefix,
            lookup_url=s.id_lookup_url,
            lookup_timeout=s.id_lookup_timeout,
            lookup_token=s.id_lookup_token,
            redis_timeout=s.redis_timeout,
        ) as mapper:
            try:
                return (await mapper.resolve("group", group)).vision_id
            except ConnectionRejected as exc:
                raise CliError(f"--group: {exc.reason}", code=2) from exc

    async def _unavailable_as_error(self, pending: Awaitable[T]) -> T:
        try:
            return await pending
        except BackendUnavailable as exc:
            raise CliError(str(exc)) from exc

    async def aclose(self) -> None:
        await self._store.aclose()


class HttpAdmin:
    """Through a running node's ``/v2/mode`` and ``/v2/usage``."""

    def __init__(self, url: str) -> None:
        token = os.environ.get("AETHER_API_TOKEN")
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=url, timeout=10, headers=headers)

    async def mode(self) -> Json:
        return await self._call("GET", "/v2/mode")

    async def set_mode(self, group: str | None, mode: Mode | None) -> Json:
        body: Json = {"mode": mode} if group is None else {"mode": mode, "group_id": group}
        return await self._call("PUT", "/v2/mode", json=body)

    async def usage(self) -> Json:
        return await self._call("GET", "/v2/usage")

    async def dead_letters(self, limit: int) -> Json:
        return await self._call("GET", "/v2/dead-letters", params={"limit": limit})

    async def _call(self, method: str, path: str, **kwargs: Any) -> Json:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(f"{self._http.base_url}: {exc!r}") from exc
        try:
            body: Json = response.json()
        except ValueError as exc:
            raise CliError(f"{response.status_code}: not a JSON answer from {path}") from exc
        if response.status_code >= 400:
            raise CliError(f"{response.status_code} {body.get('code')}: {body.get('detail')}")
        return body

    async def aclose(self) -> None:
        await self._http.aclose()


def format_mode(policy: Json) -> str:
    lines = [f"global: {policy['global']}"]
    lines += [f"group {group}: {mode}" for group, mode in policy["groups"].items()]
    return "\n".join(lines)


def format_usage(report: Json) -> str:
    """One row per client, most recently seen groups first."""
    header = ("group", "legacy", "client", "legacy", "messages", "connects", "last seen")
    rows = [header] + [
        (
            group["group_id"],
            group["group_legacy"] or "-",
            client["client_id"],
            client["client_legacy"] or "-",
            str(client["messages"]),
            str(client["connects"]),
            client["last_seen"],
        )
        for group in report["groups"]
        for client in group["clients"]
    ]
    if len(rows) == 1:
        return "no V2 usage recorded"
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def format_dead_letters(report: Json) -> str:
    """Counts per code, then one block per sample, newest first."""
    counts = report["counts"]
    lines = ["counts: " + (", ".join(f"{c}={n}" for c, n in counts.items()) or "none")]
    for d in report["dead_letters"]:
        when = iso_z(d["at"])
        group = d["group_id"] + (f" ({d['group_legacy']})" if d["group_legacy"] else "")
        client = d["client_id"] + (f" ({d['client_legacy']})" if d["client_legacy"] else "")
        lines.append(
            f"{when}  {d['code']}  node {d['node']}  group {group}  client {client or '-'}"
        )
        lines.append(f"    {d['detail']}")
        if d["sample"]:
            sample = d["sample"] if len(d["sample"]) <= 200 else d["sample"][:200] + "…"
            lines.append(f"    sample ({d['size']} bytes): {sample}")
    if not report["dead_letters"]:
        lines.append("no dead letters kept")
    return "\n".join(lines)
