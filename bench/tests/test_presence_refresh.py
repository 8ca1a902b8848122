"""``bench.presence_refresh`` against a real throwaway Redis, tiny."""

from __future__ import annotations

import pytest

from bench import presence_refresh


def test_it_prints_the_cpu_of_a_refresh_and_a_sweep(capsys: pytest.CaptureFixture[str]):
    argv = ["--connections", "300", "--group-size", "100", "--repeat", "2"]
    assert presence_refresh.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| node CPU | best | median |"
    assert lines[2].startswith("| touch 300 connections | ")
    assert lines[3].startswith("| sweep 3 groups | ")
    for line in lines[2:]:
        best, median = (float(cell.split()[0]) for cell in line.strip("| ").split(" | ")[1:])
        assert 0 < best <= median
