"""The worker's SQS batch handling on its own: records read with Powertools' model, FIFO groups,
unreadable records (no database: the turn runner is a stub)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from aws_events import sqs_event, sqs_record
from support import FakeClock

from courier_shared.protocol import TurnStatus
from courier_shared.queue import TurnRequest
from courier_worker.composition import Worker
from courier_worker.settings import WorkerSettings
from courier_worker.turn import TurnReport


class StubRunner:
    """Runs nothing: a turn in `failing` raises, any other is reported done."""

    def __init__(self, failing: set[uuid.UUID]) -> None:
        self.failing = failing
        self.ran: list[uuid.UUID] = []
        self.settings = WorkerSettings.model_validate({})
        self.clock = FakeClock().monotonic

    async def run(self, request: TurnRequest, *, deadline: float | None = None) -> TurnReport:
        self.ran.append(request.turn_id)
        if request.turn_id in self.failing:
            raise RuntimeError("the turn failed")
        return TurnReport(turn_id=request.turn_id, status=None)


def body(turn_id: uuid.UUID) -> str:
    return TurnRequest(
        turn_id=turn_id, conversation_id=uuid.uuid4(), tenant_id="t", user_id="u", origin_connection_id=None
    ).model_dump_json()


def unreadable_logs(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [r for r in caplog.records if r.getMessage() == "unreadable turn request: the record fails"]


def test_a_failed_record_fails_the_rest_of_its_group_and_other_groups_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing, after, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    runner = StubRunner({failing})
    event = sqs_event(
        sqs_record(body(failing), group_id="a", message_id="a1"),
        sqs_record(body(after), group_id="a", message_id="a2"),
        sqs_record(body(other), group_id="b", message_id="b1"),
    )

    response = Worker(runner=runner).handle(event)  # type: ignore[arg-type]

    assert response == {"batchItemFailures": [{"itemIdentifier": "a1"}, {"itemIdentifier": "a2"}]}
    assert runner.ran == [failing, other]  # a2 waits for a1: FIFO order within the group
    assert unreadable_logs(caplog) == []


def test_an_unreadable_record_is_logged_with_its_message_id_and_fails_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    readable = uuid.uuid4()
    runner = StubRunner(set())
    event = sqs_event(
        sqs_record('{"turn_id": "not a uuid", "secret": "my diagnosis"}', group_id="a", message_id="a1"),
        sqs_record(body(readable), group_id="b", message_id="b1"),
    )

    response = Worker(runner=runner).handle(event)  # type: ignore[arg-type]

    assert response == {"batchItemFailures": [{"itemIdentifier": "a1"}]}
    assert runner.ran == [readable]
    [log] = unreadable_logs(caplog)
    assert (log.message_id, log.problem, log.field) == ("a1", "uuid_parsing", "body.turn_id")  # type: ignore[attr-defined]
    assert "my diagnosis" not in str(log.__dict__)  # the body is never logged


def test_an_unreadable_record_behind_a_failed_one_of_its_group_fails_alone_not_the_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Powertools reads a record skipped after its group failed with the model outside its guard:
    without TurnRecordProcessor's catch, this batch would raise and every record come back."""
    failing, other = uuid.uuid4(), uuid.uuid4()
    runner = StubRunner({failing})
    event = sqs_event(
        sqs_record(body(failing), group_id="a", message_id="a1"),
        sqs_record("garbage", group_id="a", message_id="a2"),
        sqs_record(body(other), group_id="b", message_id="b1"),
    )

    response = Worker(runner=runner).handle(event)  # type: ignore[arg-type]

    assert response == {"batchItemFailures": [{"itemIdentifier": "a1"}, {"itemIdentifier": "a2"}]}
    assert runner.ran == [failing, other]
    assert [log.message_id for log in unreadable_logs(caplog)] == ["a2"]  # type: ignore[attr-defined]


def emf_metrics(stdout: str) -> dict[str, list[tuple[float, dict[str, str]]]]:
    """Every EMF metric printed: name → (value, dimensions) of each blob that carries it."""
    found: dict[str, list[tuple[float, dict[str, str]]]] = {}
    for line in stdout.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        [directive] = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Courier"
        dimensions = {name: blob[name] for names in directive["Dimensions"] for name in names}
        for metric in directive["Metrics"]:
            values = blob[metric["Name"]]
            for value in values if isinstance(values, list) else [values]:
                found.setdefault(metric["Name"], []).append((value, dimensions))
    return found


class ReportingRunner(StubRunner):
    def __init__(self, reports: dict[uuid.UUID, TurnReport]) -> None:
        super().__init__(set())
        self.reports = reports

    async def run(self, request: TurnRequest, *, deadline: float | None = None) -> TurnReport:
        return self.reports[request.turn_id]


def test_every_turn_publishes_what_an_operator_watches(capsys: pytest.CaptureFixture[str]) -> None:
    done, throttled = uuid.uuid4(), uuid.uuid4()
    reports = {
        done: TurnReport(
            turn_id=done,
            status=TurnStatus.COMPLETED,
            posts=10,
            frames=8,
            post_latency_ms=12,
            post_latency_max_ms=40,
            time_to_first_token_ms=300,
            output_tokens=42,
            duration_ms=900,
        ),
        throttled: TurnReport(turn_id=throttled, status=TurnStatus.FAILED, error_code="model_throttled"),
    }
    event = sqs_event(
        sqs_record(body(done), group_id="a", message_id="a1"),
        sqs_record(body(throttled), group_id="b", message_id="b1"),
    )

    Worker(runner=ReportingRunner(reports)).handle(event)  # type: ignore[arg-type]

    metrics = emf_metrics(capsys.readouterr().out)
    values = {name: [value for value, _ in seen] for name, seen in metrics.items()}
    assert values["TimeToFirstToken"] == [300] and values["OutputTokens"] == [42]
    assert values["PostLatency"] == [12] and values["PostLatencyMax"] == [40]
    assert sorted(values["FramesPosted"]) == [0, 10]
    outcomes = sorted(dims["Outcome"] for _, dims in metrics["TurnOutcomes"])
    assert outcomes == ["completed", "model_throttled"]
    assert all(dims["service"] == "courier-worker" for seen in metrics.values() for _, dims in seen)
