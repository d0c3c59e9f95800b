"""One observability shape for every Lambda: one Powertools Logger per service, used by every module
of that service, and EMF metrics for what an operator watches (the worker's are tested with its
batch handling in worker/test_records.py)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path

import pytest
from fakes import MemoryChatStore
from gateway_client import make_gateway_harness, make_owner
from support import FakeClock

from courier_shared.db.store import Listener
from courier_shared.protocol import StartMetadata, StartPart
from courier_worker.ports import ConnectionGone
from courier_worker.streaming import Outbox, Publisher

SERVICES = Path(__file__).resolve().parents[2] / "services"


@pytest.mark.parametrize("service", ["authorizer", "gateway", "worker", "migrator"])
def test_every_module_of_a_service_logs_through_its_one_powertools_logger(service: str) -> None:
    package = SERVICES / service / "src" / f"courier_{service}"
    elsewhere = {
        path.name: text
        for path in package.glob("*.py")
        if path.name != "observability.py" and (text := path.read_text())
    }
    assert re.search(r"^logger = Logger\(", (package / "observability.py").read_text(), re.M)
    assert [name for name, text in elsewhere.items() if re.search(r"getLogger|Logger\(", text)] == []
    logging_modules = [name for name, text in elsewhere.items() if re.search(r"\blogger\.\w+\(", text)]
    imports_it = re.compile(rf"from courier_{service}\.observability import [^\n]*\blogger\b")
    for name in logging_modules:
        assert imports_it.search(elsewhere[name]), name


def test_the_shared_library_logs_only_through_the_logger_its_caller_passes() -> None:
    """courier_shared runs inside every service: a logger of its own would log beside the service's
    (and, a stdlib one, unseen in Lambda); `courier_shared.db.aws.connect` takes the service's."""
    shared = SERVICES.parent / "shared" / "src" / "courier_shared"
    own_loggers = [
        str(path.relative_to(shared))
        for path in sorted(shared.rglob("*.py"))
        if re.search(r"getLogger\(|\bLogger\(", path.read_text())
    ]
    assert own_loggers == []


def test_the_streaming_core_logs_as_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    class GonePoster:
        def post(self, endpoint_url: str, connection_id: str, data: bytes) -> None:
            raise ConnectionGone(connection_id)

    async def publish() -> None:
        publisher = Publisher(
            turn_id=uuid.uuid4(),
            attempt=1,
            endpoint_url="https://example/prod",
            poster=GonePoster(),
            outbox=Outbox(flush_interval_s=0.05),
            listeners=[Listener("gone-1")],
            clock=FakeClock().monotonic,
        )
        publisher.start()
        publisher.emit(StartPart(message_id="t", message_metadata=StartMetadata(model="m", attempt=1)))
        await publisher.close()

    asyncio.run(publish())

    [record] = [r for r in caplog.records if r.getMessage() == "listener gone"]
    assert record.name == "courier-worker"  # the worker's Powertools logger, not a module's own


def refusals(stdout: str) -> list[str]:
    codes = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"Refusals"' in line:
            blob = json.loads(line)
            assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Courier"
            assert blob["service"] == "courier-gateway" and blob["Refusals"] in (1, [1])
            codes.append(blob["ErrorCode"])
    return codes


def test_the_gateway_counts_its_refusals_by_code(capsys: pytest.CaptureFixture[str]) -> None:
    harness = make_gateway_harness(MemoryChatStore(), MAX_MESSAGE_CHARS=10)
    client = harness.client(make_owner())
    capsys.readouterr()

    assert client.send({"action": "ping"})["type"] == "pong"
    assert client.send_message("hello")["type"] == "ack"
    assert refusals(capsys.readouterr().out) == []  # answered frames are not refusals

    client.send_message("far too long for the limit")
    client.raw("not json")
    client.send({"action": "cancel", "turnId": str(uuid.uuid4())})
    harness.client(None).connect()
    assert refusals(capsys.readouterr().out) == ["too_large", "bad_request", "not_found", "unauthorized"]
