"""`make bench`: Courier's coalesced streaming next to per-token posting, measured in the same run.

A 1,000-token answer at 100 tokens/s from the offline model goes through the worker's streaming
core (the real TurnRunner: Strands agent loop, outbox, publisher, store) to the local API Gateway's
@connections HTTP API over boto3, and on to a real WebSocket client that timestamps every frame.
The model waits `--ttft-ms` (300 ms) before its first token, as a real model does; latency counts
from each token's production. The per-token design posts each token as it arrives, awaiting each
post (the order-keeping naive loop). Both run with direct posts and with every post slowed by
80 ms (a distant Region).

Figures: @connections calls per 1,000 tokens; added latency from the model producing a token (its
place in the 100 tokens/s schedule) to the client receiving it, first token and p50/p99; database
writes per turn; the worker's cold-start import time.

    python -m courier_local.bench [--tokens 1000] [--rate 100] [--interval-ms 100] [--slow-ms 80]
                                  [--ttft-ms 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from strands import Agent
from strands.models import Model
from websockets.sync.client import connect

from courier_local.edge.websocket_api import LocalWebSocketApi
from courier_local.offline_model import OfflineModel
from courier_local.stack import LocalStack, StackOptions
from courier_shared.db.engine import build_engine
from courier_shared.db.store import ChatStore, Owner
from courier_shared.protocol import (
    Chunk,
    FinishMetadata,
    FinishPart,
    StartMetadata,
    StartPart,
    TextDeltaPart,
    dump_frame,
)
from courier_shared.protocol import Usage as WireUsage
from courier_shared.queue import TurnRequest
from courier_worker.adapters import ApiGatewayConnections
from courier_worker.composition import run_coroutine
from courier_worker.observability import logger as worker_logger
from courier_worker.ports import ConnectionPoster
from courier_worker.settings import WorkerSettings
from courier_worker.tools import ToolRegistry
from courier_worker.turn import TurnRunner

OWNER = Owner("bench", "bench-user")


# ---------------------------------------------------------------- instrumentation


class TimedModel(Model):
    """Wraps the offline model; notes when each token was due in its tokens-per-second schedule.

    A token's production time is its place in the schedule (first token + i / rate), not when the
    consumer pulled it: a real model keeps producing while a slow consumer falls behind.
    """

    def __init__(self, inner: OfflineModel) -> None:
        self.inner = inner
        self.tokens: list[str] = []
        self.first_token_at: float | None = None

    def update_config(self, **model_config: Any) -> None:
        self.inner.update_config(**model_config)

    def get_config(self) -> Any:
        return self.inner.get_config()

    def structured_output(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.structured_output(*args, **kwargs)

    async def stream(self, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        async for event in self.inner.stream(*args, **kwargs):
            delta = event.get("contentBlockDelta", {}).get("delta", {}) if isinstance(event, dict) else {}
            if "text" in delta:
                if self.first_token_at is None:
                    self.first_token_at = time.monotonic()
                self.tokens.append(delta["text"])
            yield event

    def produced_at(self) -> list[float]:
        assert self.first_token_at is not None
        rate = self.inner.tokens_per_second
        return [self.first_token_at + i / rate for i in range(len(self.tokens))]


class SlowPoster:
    """Every @connections call takes `delay_s` longer, as from a distant Region."""

    def __init__(self, inner: ConnectionPoster, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.calls = 0
        self._lock = threading.Lock()

    def post(self, endpoint_url: str, connection_id: str, data: bytes) -> None:
        with self._lock:
            self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        self.inner.post(endpoint_url, connection_id, data)


@dataclass
class Receiver:
    """A real WebSocket client in a thread, timestamping every frame until the turn ends."""

    url: str
    token: str
    frames: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    connection_id: str = ""

    @contextmanager
    def connected(self, api: LocalWebSocketApi) -> Iterator[Receiver]:
        before = set(api.connection_ids())
        subprotocols = ["courier.v1", f"bearer.{self.token}"]
        with connect(self.url, subprotocols=subprotocols, compression=None, max_size=None) as websocket:  # type: ignore[arg-type]
            while not (new := set(api.connection_ids()) - before):
                time.sleep(0.001)
            self.connection_id = new.pop()
            done = threading.Event()

            def receive() -> None:
                while True:
                    raw = websocket.recv()
                    frame = json.loads(raw)
                    self.frames.append((time.monotonic(), frame))
                    if frame.get("type") == "chunk" and frame["chunk"]["type"] in (
                        "finish",
                        "abort",
                        "error",
                    ):
                        done.set()
                        return

            thread = threading.Thread(target=receive, daemon=True)
            thread.start()
            yield self
            if not done.wait(300):
                raise TimeoutError("the turn did not end within 300 s")
            thread.join(1)

    def text_receipts(self) -> list[tuple[float, int]]:
        """(time received, cumulative characters of answer text) per text-delta frame."""
        out, total = [], 0
        for received_at, frame in self.frames:
            if frame.get("type") == "chunk" and frame["chunk"]["type"] == "text-delta":
                total += len(frame["chunk"]["delta"])
                out.append((received_at, total))
        return out


@dataclass
class RunResult:
    design: str
    post_delay_ms: int
    tokens: int
    posts: int
    latencies_ms: list[float]
    db_writes: int | None = None

    @property
    def posts_per_1000(self) -> float:
        return self.posts * 1000 / self.tokens

    @property
    def first_ms(self) -> float:
        return self.latencies_ms[0]

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def token_latencies(model: TimedModel, receiver: Receiver) -> list[float]:
    produced = model.produced_at()
    receipts = receiver.text_receipts()
    latencies, offset, r = [], 0, 0
    for token, at in zip(model.tokens, produced, strict=True):
        offset += len(token)
        while receipts[r][1] < offset:
            r += 1
        latencies.append((receipts[r][0] - at) * 1000)
    return latencies


# ---------------------------------------------------------------- the two designs


class Bench:
    """The streaming core under test, on the one local stack: its API Gateway (@connections and the
    clients' WebSockets, through the real authorizer and gateway) and its database."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        database_url = f"sqlite:///{workdir / 'bench.db'}"
        self.stack = LocalStack(
            StackOptions(port=0, database_url=database_url, state_dir=workdir / "state", token_rate=args.rate)
        )
        info = self.stack.start()
        for function in self.stack.functions.values():
            function.cold_start()  # warm before anything is measured
        self.api: LocalWebSocketApi = self.stack.api
        self.ws_url, self.callback_url = info.ws_url, info.callback_url
        self.token = self.stack.issue_token(OWNER.user_id, OWNER.tenant_id)
        self.engine = build_engine(database_url)
        self.store = ChatStore(self.engine)
        self.connections = ApiGatewayConnections(region_name="us-east-1")
        self.connections.client(self.callback_url)  # built at cold start, as build_worker does
        self.settings = WorkerSettings.model_validate(
            {"FLUSH_INTERVAL_MS": args.interval_ms, "CONNECTIONS_ENDPOINT_URL": self.callback_url}
        )

    def close(self) -> None:
        self.engine.dispose()
        self.stack.stop()

    def model(self) -> TimedModel:
        return TimedModel(
            OfflineModel(tokens_per_second=self.args.rate, first_token_delay_s=self.args.ttft_ms / 1000)
        )

    def courier(self, delay_ms: int) -> RunResult:
        model, poster = self.model(), SlowPoster(self.connections, delay_ms / 1000)
        runner = TurnRunner(
            settings=self.settings,
            store=self.store,
            model=model,
            poster=poster,
            bodies=None,
            tools=ToolRegistry(),
        )
        receiver = Receiver(self.ws_url, self.token)
        with receiver.connected(self.api):
            request = self._new_turn(receiver.connection_id)
            report = run_coroutine(lambda: runner.run(request))
        assert report.status is not None and report.status.value == "completed", report
        return RunResult(
            "Courier",
            delay_ms,
            len(model.tokens),
            poster.calls,
            token_latencies(model, receiver),
            report.db_writes,
        )

    def per_token(self, delay_ms: int) -> RunResult:
        model, poster = self.model(), SlowPoster(self.connections, delay_ms / 1000)
        receiver = Receiver(self.ws_url, self.token)
        with receiver.connected(self.api):
            run_coroutine(lambda: self._naive_turn(model, poster, receiver.connection_id))
        return RunResult(
            "per-token", delay_ms, len(model.tokens), poster.calls, token_latencies(model, receiver)
        )

    async def _naive_turn(self, model: TimedModel, poster: SlowPoster, connection_id: str) -> None:
        """The naive design: one @connections post per token, in order, as each token arrives."""
        turn_id, seq = uuid.uuid4(), 0
        url = self.callback_url

        async def post(part: Any) -> None:
            nonlocal seq
            frame = dump_frame(Chunk(turn_id=turn_id, attempt=1, seq=seq, chunk=part)).encode()
            seq += 1
            await asyncio.to_thread(poster.post, url, connection_id, frame)

        await post(
            StartPart(message_id=str(turn_id), message_metadata=StartMetadata(model="offline", attempt=1))
        )
        agent = Agent(model=model, callback_handler=None)
        async for event in agent.stream_async(f"lorem {self.args.tokens}"):
            if "data" in event:
                await post(TextDeltaPart(id="text-0", delta=event["data"]))
        await post(
            FinishPart(
                finish_reason="stop",
                message_metadata=FinishMetadata(
                    stop_reason="end_turn", usage=WireUsage(), latency_ms=0, time_to_first_token_ms=None
                ),
            )
        )

    def _new_turn(self, connection_id: str) -> TurnRequest:
        now = datetime.now(UTC)
        with self.store.unit_of_work() as repo:
            conversation = repo.create_conversation(OWNER, "bench", now)
            turn, _ = repo.create_turn(
                OWNER, conversation, uuid.uuid4(), f"lorem {self.args.tokens}", connection_id, now
            )
            return TurnRequest(
                turn_id=turn.id,
                conversation_id=conversation.id,
                tenant_id=OWNER.tenant_id,
                user_id=OWNER.user_id,
                origin_connection_id=connection_id,
            )


# ---------------------------------------------------------------- cold start


# What a container imports before it can serve its first event (the handler and its composition root).
COLD_START_MODULES = {
    "authorizer": "courier_authorizer.composition",
    "gateway": "courier_gateway.composition",
    "worker": "courier_worker.composition",
}


def cold_start_import_ms(module: str, runs: int = 3, *, bytecode: bool) -> float:
    """Median wall-clock ms to import `module` in a fresh interpreter.

    `bytecode=False` compiles every module from source, as Lambda does for a zip without .pyc files
    (its file system is read-only); `bytecode=True` reads .pyc files written by a first run.
    """
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as cache:
        env["PYTHONPYCACHEPREFIX"] = cache
        if not bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True)  # noqa: S603
        walls = []
        for _ in range(runs):
            out = subprocess.run(  # noqa: S603
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            walls.append(float(out.stdout.strip()) * 1000)
    return statistics.median(walls)


def cold_starts(runs: int) -> dict[str, tuple[float, float]]:
    """Service → (ms from source, ms with bytecode)."""
    return {
        service: (
            cold_start_import_ms(module, runs, bytecode=False),
            cold_start_import_ms(module, runs, bytecode=True),
        )
        for service, module in COLD_START_MODULES.items()
    }


# ---------------------------------------------------------------- report


def print_report(
    args: argparse.Namespace, results: list[RunResult], cold: dict[str, tuple[float, float]]
) -> None:
    interval = args.interval_ms
    print()
    print(
        f"Courier streaming benchmark: {args.tokens} tokens at {args.rate:g} tokens/s after a "
        f"{args.ttft_ms} ms time to first token; flush interval {interval} ms; local @connections over "
        "HTTP (boto3); a real WebSocket client. Latency = client receipt - the token's place in the "
        "model's schedule."
    )
    print()
    header = f"{'':44}{'Courier (coalesced)':>22}{'per-token posting':>22}"
    for delay in (0, args.slow_ms):
        courier = next(r for r in results if r.design == "Courier" and r.post_delay_ms == delay)
        naive = next(r for r in results if r.design == "per-token" and r.post_delay_ms == delay)
        print(header if delay == 0 else "")
        print(f"posts take +{delay} ms" + (" (as from a distant Region)" if delay else " (local)"))
        rows = [
            (f"@connections calls per {args.tokens} tokens", f"{courier.posts}", f"{naive.posts}"),
            ("added latency, first token", f"{courier.first_ms:.1f} ms", f"{naive.first_ms:.1f} ms"),
            ("added latency p50", f"{courier.percentile(50):.1f} ms", f"{naive.percentile(50):.1f} ms"),
            ("added latency p99", f"{courier.percentile(99):.1f} ms", f"{naive.percentile(99):.1f} ms"),
            ("added latency max", f"{max(courier.latencies_ms):.1f} ms", f"{max(naive.latencies_ms):.1f} ms"),
        ]
        for label, left, right in rows:
            print(f"  {label:42}{left:>22}{right:>22}")
    base = next(r for r in results if r.design == "Courier" and r.post_delay_ms == 0)
    slow = next(r for r in results if r.design == "Courier" and r.post_delay_ms == args.slow_ms)
    print()
    print(
        f"Courier database writes per turn: {base.db_writes} "
        f"(1 start + {base.db_writes - 2 if base.db_writes else 0} progress saves + 1 end, "
        f"for a {args.tokens / args.rate:.0f} s answer)"
    )
    if cold:
        print(
            "Cold-start imports (handler + composition root, fresh interpreter, "
            f"median of {args.import_runs}):"
        )
    for service, (from_source, with_bytecode) in cold.items():
        print(
            f"  {service:<11} {from_source:6.0f} ms compiled from source, "
            f"{with_bytecode:6.0f} ms with .pyc files  ({COLD_START_MODULES[service]})"
        )
    print()
    checks = [
        (f"calls per 1,000 tokens <= 110 (Courier {base.posts_per_1000:.0f})", base.posts_per_1000 <= 110),
        (f"first token <= 10 ms (Courier {base.first_ms:.1f} ms)", base.first_ms <= 10),
        (
            f"p99 <= interval + 30 ms = {interval + 30} ms (Courier {base.percentile(99):.1f} ms)",
            base.percentile(99) <= interval + 30,
        ),
        (
            f"p99 with +{args.slow_ms} ms posts < 300 ms (Courier {slow.percentile(99):.1f} ms)",
            slow.percentile(99) < 300,
        ),
    ]
    for label, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {label}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="model tokens per second")
    parser.add_argument("--interval-ms", type=int, default=100, help="Courier's flush interval")
    parser.add_argument("--slow-ms", type=int, default=80, help="extra time per post in the slow runs")
    parser.add_argument("--ttft-ms", type=int, default=300, help="the model's time to first token")
    parser.add_argument(
        "--import-runs", type=int, default=3, help="fresh interpreters timed for cold start (0: skip)"
    )
    args = parser.parse_args(argv)
    # Only local stand-ins are called: dummy credentials, and no per-turn INFO logs in the output.
    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench")):
        os.environ.setdefault(name, value)
    worker_logger.setLevel("WARNING")
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory() as workdir:
        bench = Bench(args, Path(workdir))
        try:
            for delay in (0, args.slow_ms):
                for design, run in (("Courier", bench.courier), ("per-token", bench.per_token)):
                    print(f"running {design} with posts +{delay} ms ...", flush=True)
                    results.append(run(delay))
        finally:
            bench.close()
    print_report(args, results, cold_starts(args.import_runs) if args.import_runs > 0 else {})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
