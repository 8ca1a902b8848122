"""``python -m bench``: run the scenarios on the project and its baselines, print markdown.

One redis-server (started here, on a free port) serves every session; each session starts and
stops its own server processes and load-generator workers, so nothing outlives the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from bench import node_deps, procs, revision
from bench.measured import SessionResult
from bench.profile import py_spy_hook
from bench.report import render
from bench.scenarios import catalogue
from bench.session import Env, run_session
from bench.systems import DEFAULT_SYSTEMS, SRC_ENV, SYSTEMS

DEFAULT_SCENARIOS = ("fanout", "legacy", "noisy", "idle-small", "idle-big", "storm")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few seconds per scenario")
    parser.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help="comma-separated, from: " + ", ".join((*DEFAULT_SCENARIOS, "history")),
    )
    parser.add_argument(
        "--systems",
        default=",".join(DEFAULT_SYSTEMS),
        help="comma-separated, from: " + ", ".join(SYSTEMS) + " (default: all but variants)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run every session N times and report medians"
    )
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes")
    parser.add_argument("--write", type=Path, help="also write the markdown report here")
    parser.add_argument("--json", type=Path, help="also dump raw results as JSON here")
    parser.add_argument(
        "--profile",
        metavar="SYSTEM",
        help="py-spy the first node of SYSTEM during one step (see --profile-step)",
    )
    parser.add_argument("--logdir", type=Path, help="keep server and Redis logs in this directory")
    parser.add_argument(
        "--project-rev",
        help="measure this commit of the project (git archive into a temp dir), not the tree",
    )
    parser.add_argument(
        "--project-src",
        type=Path,
        help="run the project from this source tree (e.g. an older commit, via git archive)",
    )
    parser.add_argument(
        "--profile-step",
        default="saturation",
        help="the step to profile: fan-out, saturation, heavy, traffic, a legacy step "
        "(v3-1, v2-1, ...), or connect",
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def _workdir(keep: Path | None) -> Iterator[str]:
    """Server and Redis logs (and unpacked sources) go here: ``--logdir`` keeps them."""
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="aether-bench-") as tmp:
            yield tmp
        return
    keep.mkdir(parents=True, exist_ok=True)
    yield str(keep)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _project_code(args: argparse.Namespace, tmp: Path) -> str:
    """Point the project's servers at the code to measure; say which code that is."""
    if args.project_rev:
        tree, short = revision.unpack(args.project_rev, tmp)
        os.environ[SRC_ENV] = str(tree)
        return f"commit {short} (unpacked with git archive)"
    if args.project_src:
        os.environ[SRC_ENV] = str(args.project_src.resolve())
        return f"source tree {args.project_src}"
    return f"working tree at {revision.describe_working_tree()}"


def drop_unavailable(wanted: set[str]) -> set[str]:
    """``wanted`` without the Node.js systems if ``node`` or ``npm ci`` is not available.

    Runs ``npm ci`` first when the packages are missing or older than the lockfile; the
    reason for a skip is printed once, and the run goes on with the other systems.
    """
    node = sorted(name for name in wanted if SYSTEMS[name].node)
    if not node:
        return wanted
    reason = node_deps.ensure()
    if reason is None:
        return wanted
    print(f"[bench] skipping {', '.join(node)}: {reason}", file=sys.stderr)
    return wanted - set(node)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios = catalogue(args.quick)
    wanted = set(filter(None, args.systems.split(",")))
    if unknown := wanted - set(SYSTEMS):
        raise SystemExit(
            f"unknown system(s) {', '.join(sorted(unknown))}; known: {', '.join(SYSTEMS)}"
        )
    wanted = drop_unavailable(wanted)
    plan = [
        (scenarios[name], SYSTEMS[system])
        for name in args.scenarios.split(",")
        if name
        for system in scenarios[name].systems
        if system in wanted
    ]
    procs.raise_fd_limit()
    # SIGTERM unwinds like Ctrl-C, so every server, worker and Redis is stopped on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    results: list[SessionResult] = []
    started = time.monotonic()
    with (
        _workdir(args.logdir) as tmp,
        procs.redis_server(Path(tmp)) as redis,
    ):
        project = _project_code(args, Path(tmp))
        env = Env(redis, Path(tmp), args.workers, profile_step=args.profile_step)
        # Repeats go round the whole plan, so a noisy minute hits every system alike.
        for attempt in range(args.repeat):
            for scenario, system in plan:
                profile = system.name == args.profile and attempt == 0
                env.profiler = py_spy_hook if profile else None
                print(f"[bench] {scenario.name} / {system.name} #{attempt + 1}", file=sys.stderr)
                result = run_session(system, scenario, env)
                if result.error:
                    print(f"[bench]   error: {result.error}", file=sys.stderr)
                results.append(result)
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    elapsed = time.monotonic() - started
    markdown = render(results, scenarios, command, elapsed, args.quick, project)
    print(markdown)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(markdown)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1, default=str))
    return 0
