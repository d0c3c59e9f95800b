"""`make load`: N connections x M turns against `courier dev` on Postgres, checked and measured.

The stack runs as a subprocess, as a person starts it (`courier dev --port 0 …`), on a fresh database
(created on the server of `--admin-url` and dropped afterwards, unless `--database-url` names one).
Each connection is its own user with one conversation, and sends its next turn when the previous one
has ended, so the gateway's per-user limits (20 sends a minute, 3 open turns, frame rates) are never
what is measured. Every connection sends its first turn at the same moment: a burst of N turns.

Each turn asks the offline model for `lorem W` (W words). Checked, from what the clients receive:

- completed / lost (no ack, or no ending within `--turn-timeout-s`; the connection then stops, and
  its turns not yet sent count as lost too) / failed (an `error` ending, an `error` answer to
  sendMessage, or API Gateway's "Endpoint request timed out"), with the reasons;
- per turn and attempt, chunk `seq` contiguous from 0 (duplicates and gaps counted apart); a chunk of
  an earlier turn arriving after the next turn was sent counts as out of order;
- afterwards, each conversation's `getHistory`: its turns in the order they were sent, each stored
  `completed` with exactly the text the client saw.

Measured: turn time (sendMessage sent → ending received) and time to the first text, p50/p99;
throughput; CPU time and resident memory of the `courier dev` process (from /proc: Linux only).
The benchmark client runs on the same machine and competes for its cores; its own CPU is printed too.
Loopback only, bounded: at most `--connections` sockets, each turn bounded by `--turn-timeout-s`.

    python -m courier_local.load [--connections 200] [--turns 5] [--words 25] [--token-rate 50]
        [--worker-concurrency 4] [--db-pool-size 5] [--admin-url URL | --database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed

from courier_local.chat_client import (
    ChatConnection,
    ConnectionLost,
    CourierError,
    RequestFailed,
)
from courier_local.commands.db import shown

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
GATEWAY_TIMEOUT = "Endpoint request timed out"  # API Gateway's answer after its 29 s integration timeout
READY_WITHIN_S = 90.0
CONNECT_CONCURRENCY = 20  # sockets opened at once while setting up (the burst is the sends, not these)


@dataclass(frozen=True)
class LoadOptions:
    connections: int = 200
    turns: int = 5
    words: int = 25  # each turn asks the offline model for "lorem <words>"
    token_rate: float = 50.0
    # The whole stack is one Python process, so about one core's worth of work (the GIL): more
    # worker slots add no throughput, only threads that starve the gateway (at 16, acks for some
    # sends took over 15 s). 4 slots keep acks within seconds; 5 connections per function suffice.
    worker_concurrency: int = 4
    db_pool_size: int = 5
    admin_url: str = DEFAULT_ADMIN_URL  # a fresh database is created on this server ...
    database_url: str | None = None  # ... unless this one is given (then it is neither created nor dropped)
    turn_timeout_s: float = 300.0  # a turn with no ending by then is lost (queueing included)
    stack_args: tuple[str, ...] = ()  # more `courier dev` options (tests: --aws-calls-log)
    keep_logs: bool = False  # keep the stack's directory (dev.out, dev.err) and print where it is


# ---------------------------------------------------------------- what the clients saw


@dataclass
class TurnRecord:
    connection: int
    index: int
    turn_id: str | None = None
    conversation_id: str | None = None
    status: str = "lost"  # completed, failed, cancelled, interrupted, lost
    reason: str | None = None  # why it failed or was lost
    text: str = ""
    elapsed_s: float | None = None
    first_text_s: float | None = None
    ended_at: float | None = None  # time.monotonic() when its ending arrived

    def acked(self, ack: dict[str, Any]) -> None:
        self.turn_id, self.conversation_id = str(ack["turnId"]), str(ack["conversationId"])


@dataclass
class StreamCheck:
    """Watches every frame one connection receives: seq per turn and attempt, and late turns."""

    next_seq: dict[tuple[str, int], int] = field(default_factory=dict)
    ended_turns: set[str] = field(default_factory=set)  # turns this connection has moved past
    duplicates: int = 0
    gaps: int = 0
    out_of_order: int = 0
    gateway_timeouts: int = 0

    def __call__(self, frame: dict[str, Any]) -> None:
        if frame.get("message") == GATEWAY_TIMEOUT and "type" not in frame:
            self.gateway_timeouts += 1
            return
        if frame.get("type") != "chunk":
            return
        turn_id, attempt, seq = str(frame.get("turnId")), int(frame["attempt"]), int(frame["seq"])
        if turn_id in self.ended_turns:
            self.out_of_order += 1
        expected = self.next_seq.get((turn_id, attempt), 0)
        if seq < expected:
            self.duplicates += 1
        elif seq > expected:
            self.gaps += 1
        self.next_seq[(turn_id, attempt)] = max(expected, seq + 1)


@dataclass
class HistoryCheck:
    conversations: int = 0
    out_of_order: int = 0  # conversations whose history does not list the turns in the order sent
    stored_differs: int = 0  # completed turns whose stored text or status is not what the client saw
    unreadable: int = 0  # conversations whose history could not be read


@dataclass
class ProcessUsage:
    cpu_s: float = 0.0
    rss_start_mb: float = 0.0
    rss_peak_mb: float = 0.0


@dataclass
class LoadReport:
    options: LoadOptions
    turns: list[TurnRecord]
    streams: list[StreamCheck]
    history: HistoryCheck
    wall_s: float
    busy_s: float  # from the burst to the last ending (a lost turn's wait is not in it)
    stack: ProcessUsage
    client_cpu_s: float
    reconnects: int
    database: str

    @property
    def total(self) -> int:
        return self.options.connections * self.options.turns

    def count(self, status: str) -> int:
        return sum(1 for turn in self.turns if turn.status == status)

    @property
    def completed(self) -> int:
        return self.count("completed")

    @property
    def lost(self) -> int:
        return self.count("lost") + (self.total - len(self.turns))

    @property
    def unsent(self) -> int:
        """Turns never sent: their connection had lost an earlier turn (counted in `lost`)."""
        return self.total - len(self.turns)

    @property
    def failed(self) -> int:
        return len(self.turns) - self.completed - self.count("lost")

    @property
    def duplicates(self) -> int:
        return sum(s.duplicates for s in self.streams)

    @property
    def gaps(self) -> int:
        return sum(s.gaps for s in self.streams)

    @property
    def out_of_order(self) -> int:
        return sum(s.out_of_order for s in self.streams) + self.history.out_of_order

    @property
    def gateway_timeouts(self) -> int:
        return sum(s.gateway_timeouts for s in self.streams)

    @property
    def clean(self) -> bool:
        """Every turn completed, nothing duplicated, missing or out of order, history as seen."""
        return (
            self.completed == self.total
            and self.duplicates == 0
            and self.gaps == 0
            and self.out_of_order == 0
            and self.gateway_timeouts == 0
            and self.history.stored_differs == 0
            and self.history.unreadable == 0
        )


# ---------------------------------------------------------------- the stack under load


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the admin URL's server, dropped (even if in use) afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    name = f"courier_load_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def stack_environment() -> dict[str, str]:
    """No real AWS: dummy credentials, and the database only from --database-url (also the e2e
    tests' `courier dev` environment: tests/e2e/devstack.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "DATABASE_URL"}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 (a dummy: nothing reaches AWS)
        AWS_REGION="us-east-1",
        PYTHONUNBUFFERED="1",
    )
    return env


def courier_command() -> list[str]:
    """The `courier` executable of this environment (COURIER_LOAD_COMMAND overrides it, to debug)."""
    override = os.environ.get("COURIER_LOAD_COMMAND")
    return shlex.split(override) if override else [str(Path(sys.executable).parent / "courier")]


class Stack:
    """`courier dev` in a subprocess, in its own directory; stopped with SIGINT as Ctrl-C does."""

    def __init__(self, options: LoadOptions, database_url: str, workdir: Path) -> None:
        self.workdir = workdir
        state_dir = workdir / ".courier"
        command = [
            *courier_command(),
            "dev",
            "--port",
            "0",
            "--database-url",
            database_url,
            "--state-dir",
            str(state_dir),
            "--worker-concurrency",
            str(options.worker_concurrency),
            "--db-pool-size",
            str(options.db_pool_size),
            "--token-rate",
            str(options.token_rate),
            *options.stack_args,
        ]
        self.state_file = state_dir / "dev.json"
        with (workdir / "dev.out").open("wb") as out, (workdir / "dev.err").open("wb") as err:
            self.process = subprocess.Popen(  # noqa: S603 (our own courier executable)
                command, cwd=workdir, env=stack_environment(), stdout=out, stderr=err
            )
        self.info: dict[str, Any] = {}

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_WITHIN_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"`courier dev` exited with {self.process.returncode}:\n{self.logs()}")
            with contextlib.suppress(OSError, ValueError):  # not written, or not flushed yet
                self.info = json.loads(self.state_file.read_text())
                return
            time.sleep(0.1)
        raise RuntimeError(f"`courier dev` was not ready within {READY_WITHIN_S:.0f} s:\n{self.logs()}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def token(self, user: str, tenant: str = "load") -> str:
        query = urllib.parse.urlencode({"user": user, "tenant": tenant})
        with urllib.request.urlopen(f"{self.info['dev_token_url']}?{query}", timeout=10) as response:  # noqa: S310
            return str(json.loads(response.read())["token"])

    def logs(self) -> str:
        return "".join(
            f"--- {name}\n{(self.workdir / name).read_text(errors='replace')[-4000:]}\n"
            for name in ("dev.out", "dev.err")
            if (self.workdir / name).exists()
        )

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


# /proc/<pid>/stat fields 14 and 15 (utime, stime) are in clock ticks; /proc/<pid>/status has VmRSS.
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process_tree(pid: int) -> list[int]:
    """The process and its descendants (the stack runs in one process today; this keeps it honest)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for member in _process_tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def rss_mb(pid: int) -> float:
    total_kb = 0
    for member in _process_tree(pid):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


async def sample_memory(pid: int, usage: ProcessUsage, stop: asyncio.Event) -> None:
    while not stop.is_set():
        usage.rss_peak_mb = max(usage.rss_peak_mb, rss_mb(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


# ---------------------------------------------------------------- the load


async def open_connection(url: str, token: str, check: StreamCheck) -> ChatConnection:
    # Reconnects stay possible (and are counted), but a drop on loopback is itself a finding.
    # The ack may take up to API Gateway's 29 s integration timeout; after that the gateway answers
    # "Endpoint request timed out" (counted), so the client never gives up first.
    connection = ChatConnection(url, token, on_frame=check, open_timeout_s=30.0, ack_timeout_s=35.0)
    await connection.open()
    return connection


async def converse(
    index: int,
    connection: ChatConnection,
    check: StreamCheck,
    options: LoadOptions,
    start: asyncio.Event,
) -> list[TurnRecord]:
    """One user's conversation: each turn sent when the previous one has ended."""
    records: list[TurnRecord] = []
    conversation_id: str | None = None
    await start.wait()
    for turn in range(options.turns):
        record = TurnRecord(index, turn)
        records.append(record)
        sent_at = time.monotonic()
        timeouts_before = check.gateway_timeouts
        try:
            result = await asyncio.wait_for(
                connection.run_turn(
                    f"lorem {options.words}",
                    conversation_id,
                    on_ack=record.acked,
                ),
                options.turn_timeout_s,
            )
        except RequestFailed as error:
            record.status, record.reason = "failed", f"sendMessage answered {error.code}"
            continue
        except TimeoutError:
            record.elapsed_s = time.monotonic() - sent_at
            if check.gateway_timeouts > timeouts_before:
                record.status, record.reason = "failed", GATEWAY_TIMEOUT
            elif record.turn_id is None:
                record.reason = "no ack"
            else:
                record.reason = f"no ending within {options.turn_timeout_s:.0f} s"
            break  # the connection's state is unknown: its remaining turns count as lost
        except (ConnectionLost, CourierError) as error:
            record.reason = f"connection lost: {error}"
            break
        conversation_id = result.conversation_id
        check.ended_turns.add(result.turn_id)
        record.turn_id, record.conversation_id = result.turn_id, result.conversation_id
        record.status, record.text = result.status, result.text
        record.elapsed_s, record.first_text_s = result.elapsed_s, result.first_text_s
        record.ended_at = time.monotonic()
        if check.gateway_timeouts > timeouts_before:  # it ran, but its sender was told it timed out
            record.status, record.reason = "failed", GATEWAY_TIMEOUT
        elif result.status != "completed":
            record.reason = f"{result.status}: {result.error_text or ''}".rstrip(": ")
    return records


async def check_history(connection: ChatConnection, records: list[TurnRecord], history: HistoryCheck) -> None:
    """The stored conversation: the turns in the order sent, each as the client saw it."""
    sent = [r for r in records if r.turn_id is not None]
    if not sent:
        return
    history.conversations += 1
    try:
        page = await connection.history(str(sent[0].conversation_id), limit=min(100, len(sent)))
    except (CourierError, TimeoutError, OSError, ConnectionClosed):  # e.g. closed idle while waiting
        history.unreadable += 1
        return
    stored = {turn["turnId"]: turn for turn in page["turns"]}
    order = [turn["turnId"] for turn in page["turns"]]
    if order != [r.turn_id for r in sent][-len(order) :]:
        history.out_of_order += 1
    for record in sent:
        turn = stored.get(record.turn_id)
        if record.status != "completed" or turn is None:
            continue
        if turn["status"] != "completed" or turn["assistantText"] != record.text:
            history.stored_differs += 1


async def drive(stack: Stack, options: LoadOptions, database: str) -> LoadReport:
    run = uuid.uuid4().hex[:6]
    users = [f"load-{run}-{i}" for i in range(options.connections)]
    tokens = await asyncio.gather(*(asyncio.to_thread(stack.token, user) for user in users))
    checks = [StreamCheck() for _ in users]
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def opened(i: int) -> ChatConnection:
        async with gate:
            return await open_connection(str(stack.info["ws_url"]), tokens[i], checks[i])

    connections = await asyncio.gather(*(opened(i) for i in range(options.connections)))
    usage = ProcessUsage(rss_start_mb=rss_mb(stack.pid))
    usage.rss_peak_mb = usage.rss_start_mb
    cpu_before = cpu_seconds(stack.pid)
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(sample_memory(stack.pid, usage, stop_sampling))
    start = asyncio.Event()
    conversations = [
        asyncio.create_task(converse(i, connections[i], checks[i], options, start))
        for i in range(options.connections)
    ]
    started, client_cpu = time.monotonic(), time.process_time()
    start.set()
    per_connection = await asyncio.gather(*conversations)
    wall_s, client_cpu = time.monotonic() - started, time.process_time() - client_cpu
    usage.cpu_s = cpu_seconds(stack.pid) - cpu_before
    endings = [r.ended_at for records in per_connection for r in records if r.ended_at is not None]
    busy_s = (max(endings) - started) if endings else wall_s
    stop_sampling.set()
    await sampler
    history = HistoryCheck()
    for connection, records in zip(connections, per_connection, strict=True):
        with contextlib.suppress(CourierError, TimeoutError, OSError):
            await check_history(connection, records, history)
    await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
    return LoadReport(
        options=options,
        turns=[record for records in per_connection for record in records],
        streams=checks,
        history=history,
        wall_s=wall_s,
        busy_s=busy_s,
        stack=usage,
        client_cpu_s=client_cpu,
        reconnects=sum(c.reconnects for c in connections),
        database=database,
    )


def run_load(options: LoadOptions) -> LoadReport:
    """Start the stack on a fresh database, run the load, stop the stack, drop the database."""
    workdir = Path(tempfile.mkdtemp(prefix="courier-load-"))
    try:
        with contextlib.ExitStack() as cleanup:
            database_url = options.database_url or cleanup.enter_context(fresh_database(options.admin_url))
            stack = Stack(options, database_url, workdir)
            cleanup.callback(stack.stop)
            stack.wait_ready()
            report = asyncio.run(drive(stack, options, shown(database_url)))
            code = stack.stop()
            if code != 0:
                raise RuntimeError(f"`courier dev` exited with {code} on SIGINT:\n{stack.logs()}")
    finally:
        if options.keep_logs:
            print(f"courier dev's output is in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return report


# ---------------------------------------------------------------- the report


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 1,000 values is the 990th)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def format_report(report: LoadReport) -> str:
    o = report.options
    times = [t.elapsed_s * 1000 for t in report.turns if t.status == "completed" and t.elapsed_s is not None]
    firsts = [t.first_text_s * 1000 for t in report.turns if t.first_text_s is not None]
    lines = [
        f'Courier load: {o.connections} connections x {o.turns} turns ("lorem {o.words}" at '
        f"{o.token_rate:g} tokens/s), worker concurrency {o.worker_concurrency}, pool {o.db_pool_size}, "
        f"{report.database}",
        f"  turns       {report.total} · {report.completed} completed · {report.lost} lost · "
        f"{report.failed} failed" + (f" ({report.unsent} of the lost never sent)" if report.unsent else ""),
    ]
    if times:
        lines.append(
            f"  turn time   p50 {percentile(times, 0.5):,.0f} ms · p99 {percentile(times, 0.99):,.0f} ms · "
            f"max {max(times):,.0f} ms (sendMessage → ending)"
        )
    if firsts:
        lines.append(
            f"  first text  p50 {percentile(firsts, 0.5):,.0f} ms · p99 {percentile(firsts, 0.99):,.0f} ms"
        )
    lines += [
        f"  throughput  {report.completed / report.busy_s:.1f} turns/s ({report.completed} endings in "
        f"{report.busy_s:.1f} s; the run took {report.wall_s:.1f} s)",
        f"  stream      {report.duplicates} duplicate chunks · {report.gaps} seq gaps · "
        f"{sum(s.out_of_order for s in report.streams)} late chunks of an earlier turn · "
        f'{report.reconnects} reconnects · {report.gateway_timeouts} "{GATEWAY_TIMEOUT}"',
        f"  history     {report.history.conversations} conversations: {report.history.out_of_order} out of "
        f"order · {report.history.stored_differs} stored ≠ seen · {report.history.unreadable} unreadable",
        f"  courier dev CPU {report.stack.cpu_s:.1f} s = {100 * report.stack.cpu_s / report.wall_s:.0f}% of "
        f"one core · RSS {report.stack.rss_start_mb:.0f} MB before, {report.stack.rss_peak_mb:.0f} MB peak",
        f"  this client CPU {report.client_cpu_s:.1f} s (same machine, same cores)",
    ]
    reasons = Counter(t.reason for t in report.turns if t.status != "completed" and t.reason)
    for reason, count in reasons.most_common(5):
        lines.append(f"  {count:>5} x {reason}")
    lines.append("  result      " + ("clean" if report.clean else "NOT CLEAN"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    defaults = LoadOptions()
    parser.add_argument("--connections", type=int, default=defaults.connections)
    parser.add_argument("--turns", type=int, default=defaults.turns, help="turns per connection")
    parser.add_argument("--words", type=int, default=defaults.words, help="words per answer")
    parser.add_argument("--token-rate", type=float, default=defaults.token_rate)
    parser.add_argument("--worker-concurrency", type=int, default=defaults.worker_concurrency)
    parser.add_argument("--db-pool-size", type=int, default=defaults.db_pool_size)
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("TEST_DATABASE_URL", DEFAULT_ADMIN_URL),
        help="Postgres server to create (and drop) a fresh database on. Default: TEST_DATABASE_URL.",
    )
    parser.add_argument("--database-url", default=None, help="use this database instead of a fresh one")
    parser.add_argument("--turn-timeout-s", type=float, default=defaults.turn_timeout_s)
    parser.add_argument("--keep-logs", action="store_true", help="keep courier dev's output files")
    args = parser.parse_args(argv)
    if not 1 <= args.connections <= 2000 or not 1 <= args.turns <= 100 or not 1 <= args.words <= 5000:
        parser.error("bounded: 1..2000 connections, 1..100 turns, 1..5000 words")
    options = LoadOptions(
        connections=args.connections,
        turns=args.turns,
        words=args.words,
        token_rate=args.token_rate,
        worker_concurrency=args.worker_concurrency,
        db_pool_size=args.db_pool_size,
        admin_url=args.admin_url,
        database_url=args.database_url,
        turn_timeout_s=args.turn_timeout_s,
        keep_logs=args.keep_logs,
    )
    print(
        f"Starting courier dev and {options.connections} clients "
        f"({options.connections * options.turns} turns)…",
        file=sys.stderr,
    )
    report = run_load(options)
    print(format_report(report))
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
