"""Worker pieces on their own: settings, the @connections adapter's retries, error classification, tools,
the handler's lazy composition."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aws_events import sqs_event, sqs_record
from botocore.exceptions import ClientError, ReadTimeoutError
from pydantic import ValidationError
from strands.types.exceptions import EventLoopException, ModelThrottledException

from courier_shared.lambda_entry import LambdaEntry
from courier_worker import handler
from courier_worker.adapters import ApiGatewayConnections
from courier_worker.bedrock import AbortableBedrockModel, bedrock_client_config
from courier_worker.failures import classify_model_error
from courier_worker.ports import ConnectionGone, ConnectionUnavailable
from courier_worker.settings import WorkerSettings
from courier_worker.tools import current_time, default_tools, trim_output

# ---------------------------------------------------------------- settings


def test_settings_defaults_and_validation() -> None:
    settings = WorkerSettings.model_validate({})
    assert (settings.flush_interval_ms, settings.listener_grace_s, settings.save_interval_s) == (
        100,
        5.0,
        2.0,
    )
    assert settings.control_poll_ms <= 500
    with pytest.raises(ValidationError):
        WorkerSettings.model_validate({"CONTROL_POLL_MS": 900})  # cancel must be seen within 500 ms
    with pytest.raises(ValidationError):
        WorkerSettings.model_validate({"CONNECTIONS_ENDPOINT_URL": "wss://example.com/prod"})
    with pytest.raises(ValidationError):
        WorkerSettings.model_validate({"SAVE_INTERVAL_S": 5})


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_ID", "eu.anthropic.claude-haiku-4-5-20251001-v1:0")
    monkeypatch.setenv("FLUSH_INTERVAL_MS", "250")
    monkeypatch.setenv("LISTENER_GRACE_S", "0")
    settings = WorkerSettings()
    assert (settings.model_id, settings.flush_interval_s, settings.listener_grace_s) == (
        "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
        0.25,
        0.0,
    )


def test_bedrock_client_is_tuned_to_fit_a_lambda() -> None:
    settings = WorkerSettings.model_validate({"BEDROCK_READ_TIMEOUT_S": 45, "BEDROCK_MAX_ATTEMPTS": 2})
    config = bedrock_client_config(settings)
    assert config.read_timeout == 45
    assert config.retries == {"total_max_attempts": 2, "mode": "standard"}


# ---------------------------------------------------------------- @connections adapter


class FlakyConnections(BaseHTTPRequestHandler):
    """@connections that answers from a per-connection script of statuses, then 200."""

    script: dict[str, list[int]] = {}
    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        connection_id = self.path.rsplit("/", 1)[-1]
        body = self.rfile.read(int(self.headers["Content-Length"]))
        statuses = self.script.get(connection_id, [])
        status = statuses.pop(0) if statuses else 200
        if status == 200:  # before answering: the client may check `received` as soon as it has the answer
            self.received.append((connection_id, body))
        error = {410: "GoneException", 429: "LimitExceededException", 500: "InternalServerErrorException"}
        self.send_response(status)
        if status != 200:
            self.send_header("x-amzn-ErrorType", error[status])
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[str]:
    FlakyConnections.script, FlakyConnections.received = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyConnections)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/dev"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_throttled_posts_are_retried_with_backoff_and_delivered_once(flaky: str) -> None:
    sleeps: list[float] = []
    poster = ApiGatewayConnections(region_name="us-east-1", sleep=sleeps.append)
    FlakyConnections.script["c1"] = [429, 500]
    poster.post(flaky, "c1", b"frame-1")
    poster.post(flaky, "c1", b"frame-2")
    assert FlakyConnections.received == [("c1", b"frame-1"), ("c1", b"frame-2")]
    assert sleeps == [0.05, 0.1]


def test_gone_and_persistent_errors_are_reported(flaky: str) -> None:
    poster = ApiGatewayConnections(region_name="us-east-1", attempts=3, sleep=lambda _: None)
    FlakyConnections.script["gone"] = [410]
    with pytest.raises(ConnectionGone):
        poster.post(flaky, "gone", b"x")
    FlakyConnections.script["down"] = [500, 500, 500]
    with pytest.raises(ConnectionUnavailable):
        poster.post(flaky, "down", b"x")
    assert FlakyConnections.received == []


# ---------------------------------------------------------------- error classification


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "secret details"}}, "ConverseStream")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ModelThrottledException("slow down"), "model_throttled"),
        (client_error("ValidationException"), "model_rejected"),
        (client_error("AccessDeniedException"), "model_access_denied"),
        (client_error("ResourceNotFoundException"), "model_not_found"),
        (client_error("SomethingNew"), "model_error"),
        (ReadTimeoutError(endpoint_url="http://bedrock"), "model_unavailable"),
        (RuntimeError("bug"), "internal"),
    ],
)
def test_model_errors_map_to_stored_codes_and_safe_texts(error: Exception, code: str) -> None:
    failure = classify_model_error(error)
    assert failure.code == code
    assert "secret" not in failure.safe_text


def test_wrapped_errors_are_classified_by_their_cause() -> None:
    try:
        try:
            raise client_error("AccessDeniedException")
        except ClientError as inner:
            raise EventLoopException(inner, {}) from inner
    except EventLoopException as outer:
        assert classify_model_error(outer).code == "model_access_denied"


# ---------------------------------------------------------------- tools


def test_current_time_answers_in_the_zone_and_rejects_unknown_zones() -> None:
    answer = current_time(time_zone="Asia/Kolkata")
    assert answer["timeZone"] == "Asia/Kolkata" and answer["localTime"].endswith("+05:30")
    assert current_time(time_zone=" europe/paris")["timeZone"] == "Europe/Paris"
    unknown = current_time(time_zone="Nowhere/Land")
    assert unknown["status"] == "error"
    assert "Unknown time zone 'Nowhere/Land'" in unknown["content"][0]["text"]


@pytest.mark.parametrize(
    "zone",
    # Directories of the zone database ("Europe" raised IsADirectoryError), paths, data files of
    # the tzdata package, a name too long for the file system, NUL, empty.
    [
        "Europe",
        "America/Argentina",
        "America/Argentina/",
        "../etc/passwd",
        "/etc/passwd",
        "zone.tab",
        "__init__.py",
        "x" * 300,
        "UTC\x00",
        "",
        " ",
        ".",
    ],
)
def test_current_time_answers_every_string_with_a_result_or_a_tool_error(zone: str) -> None:
    answer = current_time(time_zone=zone)
    assert answer["status"] == "error"
    assert len(answer["content"][0]["text"]) < 300  # short enough to show


def test_a_region_gets_zones_to_choose_from() -> None:
    text = current_time(time_zone="America/Argentina")["content"][0]["text"]
    assert "America/Argentina/Buenos_Aires" in text


def test_registry_summaries_never_fail() -> None:
    registry = default_tools()
    assert registry.names == ["current_time"]
    assert registry.summary("current_time", {"time_zone": "UTC"}) == "Checking the time in UTC…"
    assert registry.summary("unknown_tool", {}) == "Using unknown_tool…"


def test_tool_output_is_trimmed_to_a_safe_size() -> None:
    small = {"a": 1}
    assert trim_output(small) == small
    trimmed = trim_output({"rows": ["x" * 100] * 100}, max_bytes=500)
    assert isinstance(trimmed, str) and trimmed.endswith("…") and len(trimmed.encode()) <= 500


# ---------------------------------------------------------------- handler


def test_the_handler_builds_once_per_container_and_acks_finished_turns(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    monkeypatch.setenv("MODEL_ID", "us.anthropic.claude-haiku-4-5-20251001-v1:0")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setattr(
        handler, "lambda_handler", LambdaEntry(handler.logger, handler.build)
    )  # a new container
    body = json.dumps(
        {
            "turn_id": str(uuid.uuid4()),  # no such turn: nothing to do, acknowledged
            "conversation_id": str(uuid.uuid4()),
            "tenant_id": "t",
            "user_id": "u",
            "origin_connection_id": None,
        }
    )
    event = sqs_event(
        sqs_record(body, group_id="g", message_id="m1"),
        sqs_record("{not json", group_id="other", message_id="m2"),
    )
    context = type(
        "Context",
        (),
        {
            "function_name": "w",
            "memory_limit_in_mb": 512,
            "aws_request_id": "x",
            "invoked_function_arn": "arn:aws:lambda:us-east-1:1:function:w",
        },
    )()
    assert handler.lambda_handler(event, context) == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    handle = handler.lambda_handler.cold_start()
    worker = handle.__self__  # type: ignore[attr-defined]
    assert isinstance(worker.runner.model, AbortableBedrockModel)
    handler.lambda_handler(event, context)
    assert handler.lambda_handler.cold_start() is handle  # built once per container
    worker.runner.store.engine.dispose()
