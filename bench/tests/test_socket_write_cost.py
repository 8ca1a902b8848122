"""``bench.socket_write_cost`` over real loopback sockets, tiny: it prints one row per count."""

from __future__ import annotations

import pytest

from bench import socket_write_cost


def test_it_prints_the_cpu_per_write_for_each_count_and_group(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(socket_write_cost, "SETTLE_S", 0.05)
    argv = ["--conns", "20,40", "--groups", "5,10", "--seconds", "0.2", "--rate", "2000"]
    assert socket_write_cost.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| connections | groups of 5 | groups of 10 |"
    rows = {line.split(" | ")[0]: line for line in lines[2:]}
    assert set(rows) == {"| 20", "| 40"}
    for row in rows.values():
        cells = row.strip("| ").split(" | ")[1:]
        assert len(cells) == 2
        assert all(float(cell.removesuffix(" µs")) > 0 for cell in cells)
