"""Shared by the client tests: the TypeScript package, installed and built once per session."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ..conftest import ROOT

PACKAGE = ROOT / "clients" / "typescript"


def npm_run(command: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_UPDATE_NOTIFIER": "1", "npm_config_fund": "false"},
    )


@pytest.fixture(scope="session")
def ts_package() -> Path:
    """The package, installed with ``npm ci`` and built, once per session."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(
            "the TypeScript client tests need Node.js >= 20 and npm on PATH "
            "(Debian/Ubuntu: apt-get install nodejs npm; or https://nodejs.org)"
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    if int(re.sub(r"^v(\d+).*", r"\1", version) or 0) < 20:
        pytest.skip(f"the TypeScript client needs Node.js >= 20; this is {version}")
    for command in ([npm, "ci", "--no-audit", "--no-fund"], [npm, "run", "build"]):
        result = npm_run(command)
        if result.returncode != 0:
            pytest.fail(
                f"{' '.join(command[1:])} failed in {PACKAGE}:\n{result.stdout}\n{result.stderr}",
                pytrace=False,
            )
    return PACKAGE
