"""Which project code a run measured: a committed revision, or the live working tree.

Other work lands in the working tree while a benchmark runs, so ``--project-rev REV`` unpacks
that commit with ``git archive`` (read-only for the repository) and the servers import it.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("v3_core", "translators", "bridge")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def unpack(rev: str, into: Path) -> tuple[Path, str]:
    """Extract the project packages of ``rev`` under ``into``; return the tree and short hash."""
    short = _git("rev-parse", "--short", rev)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev, *PACKAGES],
        capture_output=True,
        check=True,
    ).stdout
    tree = into / f"src-{short}"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    return tree, short


def describe_working_tree() -> str:
    """``abc1234`` or ``abc1234 + uncommitted changes`` for the live tree; ``unknown`` off git."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--", *PACKAGES)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} + uncommitted changes" if dirty else head
