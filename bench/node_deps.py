"""The Node.js baselines' runtime: ``node`` on PATH and ``npm ci`` from the committed lockfile.

The bench installs the packages itself (once, and again when the lockfile changes) so a run
measures exactly the pinned socket.io stack; without ``node`` or ``npm`` those systems are
skipped with a line saying why, never a crash.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

NODE_DIR = Path(__file__).parent / "baselines" / "node"
SERVER_JS = NODE_DIR / "server.js"
LOCKFILE = NODE_DIR / "package-lock.json"
STAMP = NODE_DIR / "node_modules" / ".bench-lock-sha256"
NPM_CI_TIMEOUT_S = 300.0


def node_path() -> str | None:
    """``node`` as found on PATH now (the test suite changes PATH to check the skip)."""
    return shutil.which("node")


def _lock_digest() -> str:
    return hashlib.sha256(LOCKFILE.read_bytes()).hexdigest()


def installed() -> bool:
    """True if ``node_modules`` was installed by ``npm ci`` from the current lockfile."""
    try:
        return STAMP.read_text().strip() == _lock_digest()
    except OSError:
        return False


def ensure() -> str | None:
    """Make the Node.js baselines runnable; ``None`` if they are, else why not (one line)."""
    if node_path() is None:
        return "`node` not found on PATH (install Node.js >= 18 to run the Node.js baselines)"
    if installed():
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "`npm` not found on PATH, and bench/baselines/node/node_modules is missing or stale"
    try:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"`npm ci` in {NODE_DIR} took over {NPM_CI_TIMEOUT_S:.0f} s"
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        return f"`npm ci` in {NODE_DIR} failed ({done.returncode}): {last}"
    STAMP.write_text(_lock_digest() + "\n")
    return None


def versions() -> str:
    """``node vX; socket.io a.b.c, ...`` for the report header, or '' without node."""
    node = node_path()
    if node is None or not installed():
        return ""
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
    packages = []
    for name in ("socket.io", "@socket.io/redis-adapter", "redis"):
        manifest = NODE_DIR / "node_modules" / name / "package.json"
        try:
            packages.append(f"{name} {json.loads(manifest.read_text())['version']}")
        except (OSError, ValueError, KeyError):
            continue
    return f"node {version}; {', '.join(packages)}"
