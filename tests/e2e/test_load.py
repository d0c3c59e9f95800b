"""`make load` in small: its benchmark runs `courier dev` on a fresh Postgres database, drives a few
connections through a few turns each, and finds every turn completed, in order and stored as seen.
No timing is asserted: the figures are the benchmark's to print."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from courier_local.load import LoadOptions, format_report, run_load
from e2e.devstack import aws_calls_log_args

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_a_small_load_completes_every_turn_in_order_without_loss_or_duplicates(
    postgres_database_factory: Callable[[], str],
) -> None:
    options = LoadOptions(
        connections=3,
        turns=2,
        words=12,
        token_rate=60,
        worker_concurrency=2,
        db_pool_size=3,
        database_url=postgres_database_factory(),
        turn_timeout_s=60,
        stack_args=tuple(aws_calls_log_args()),
    )

    report = run_load(options)

    summary = format_report(report)
    assert report.total == 6
    assert report.completed == 6, summary
    assert report.lost == 0 and report.failed == 0, summary
    assert report.duplicates == 0 and report.gaps == 0 and report.out_of_order == 0, summary
    assert report.gateway_timeouts == 0, summary
    assert report.history.conversations == 3, summary
    assert report.history.stored_differs == 0 and report.history.unreadable == 0, summary
    assert all(len(turn.text.split()) == 12 for turn in report.turns), summary  # "lorem 12"
    assert report.clean
    assert report.stack.rss_peak_mb > 0 and report.stack.cpu_s > 0  # /proc was read
