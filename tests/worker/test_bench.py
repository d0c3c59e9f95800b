"""`make bench` runs end to end and reports Courier's figures next to per-token posting."""

from __future__ import annotations

import re
import subprocess
import sys

from courier_local import bench


def test_bench_prints_both_designs_side_by_side() -> None:
    # In a process of its own, as `make bench` runs it: its stack's moto state and the worker's log level
    # are process-wide (in the test process it met queues that other worker tests had reconfigured).
    result = subprocess.run(
        [sys.executable, "-m", "courier_local.bench", "--tokens", "60", "--rate", "300", "--ttft-ms", "50",
         "--slow-ms", "20", "--import-runs", "0"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    calls = [tuple(map(int, m)) for m in re.findall(r"@connections calls per 60 tokens\s+(\d+)\s+(\d+)", out)]
    assert len(calls) == 2
    for courier, per_token in calls:
        assert per_token == 62  # start + 60 tokens + finish
        assert courier < per_token / 2
    assert re.search(r"database writes per turn: \d+", out)
    assert "Cold-start imports" not in out  # --import-runs 0 skips them


def test_cold_start_is_measured_in_a_fresh_interpreter() -> None:
    from_source = bench.cold_start_import_ms("courier_authorizer.composition", 1, bytecode=False)
    with_bytecode = bench.cold_start_import_ms("courier_authorizer.composition", 1, bytecode=True)
    assert 0 < with_bytecode < from_source
