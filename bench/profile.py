"""Optional py-spy sampling of one server process, summarised as markdown tables.

py-spy samples from outside (``--nonblocking``: it never pauses the target), so the server runs
its own code unchanged; the profiler's own CPU lands on the machine, so profiled runs are for
finding hot spots, not for the headline figures.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

TOP = 15
MAX_S = 120  # a safety bound; finish() normally stops it much earlier
_LOCATION = re.compile(r"\s*\((.*?):\d+\)$")


def py_spy_hook(pid: int, logdir: Path) -> Callable[[], str | None]:
    """Start ``py-spy record`` on ``pid``; the returned callable stops it and summarises."""
    exe = Path(sys.executable).parent / "py-spy"
    binary = str(exe) if exe.exists() else shutil.which("py-spy")
    if binary is None:
        return lambda: "py-spy not installed (pip install py-spy)"
    out = logdir / f"profile-{pid}.txt"
    proc = subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(MAX_S),
            "--rate",
            "200",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def finish() -> str | None:
        proc.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return "py-spy did not stop"
        if not out.exists():
            return f"py-spy failed: {err.decode(errors='replace')[-300:]}"
        return summarise(out.read_text())

    return finish


def _short(frame: str) -> str:
    """``send (…/site-packages/uvicorn/protocols/x.py:12)`` -> ``send (uvicorn/protocols/x.py)``."""
    match = _LOCATION.search(frame)
    if not match:
        return frame
    path = match.group(1)
    for marker in ("site-packages/", "lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker.startswith("lib/"):
                path = path.split("/", 1)[-1]
    path = path.removeprefix("/work/main/")
    return f"{frame[: match.start()].strip()} ({path})"


def summarise(collapsed: str) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "py-spy recorded no samples"
    # The chain of roots (runpy, uvicorn.run, the event loop) holds nearly every sample: skip it.
    roots = inclusive.most_common(1)[0][1] * 0.98
    callers = [(f, c) for f, c in inclusive.most_common() if c < roots][:TOP]
    rows = ["| self % | function | | inclusive % | function |", "|---:|---|---|---:|---|"]
    for (fs, cs), (fi, ci) in zip(own.most_common(TOP), callers, strict=False):
        rows.append(f"| {100 * cs / total:.1f} | `{fs}` | | {100 * ci / total:.1f} | `{fi}` |")
    return f"{total} samples\n\n" + "\n".join(rows)
