"""The `make dev` terminal shows each JSON log line as one short line, and no metric lines."""

from __future__ import annotations

import io
import json

from courier_local.human_logs import HumanLogs, human_line

TURN = "e1f19abe-0787-4ccf-95fd-e4abb3c9c34a"
LOG = {
    "level": "WARNING",
    "location": "finish:120",
    "message": "database unavailable for the final write: waiting for it",
    "timestamp": "2026-11-27 18:50:07,123+0000",
    "service": "courier-worker",
    "cold_start": False,
    "function_arn": "arn:aws:lambda:eu-west-1:123456789012:function:courier-dev-worker",
    "turn_id": TURN,
    "attempt": 2,
}


def test_a_log_line_is_time_service_message_and_its_own_keys() -> None:
    assert human_line(json.dumps(LOG)) == (
        "18:50:07 worker     warning: database unavailable for the final write: waiting for it"
        "  turn_id=e1f19abe attempt=2"
    )


def test_metric_lines_are_dropped_and_other_output_passes_through() -> None:
    assert human_line(json.dumps({"_aws": {"Timestamp": 1}, "TurnOutcomes": [1.0]})) is None
    assert human_line("Press Ctrl-C to stop everything.") == "Press Ctrl-C to stop everything."
    assert human_line('{"not": "a log line"}') == '{"not": "a log line"}'


def test_the_stream_writes_whole_lines_as_they_complete() -> None:
    out = io.StringIO()
    stream = HumanLogs(out)
    text = json.dumps(LOG) + "\n"

    stream.write(text[:20])
    assert out.getvalue() == ""  # half a line waits for the rest
    stream.write(text[20:] + "plain\n")

    assert out.getvalue().splitlines() == [human_line(json.dumps(LOG)), "plain"]
