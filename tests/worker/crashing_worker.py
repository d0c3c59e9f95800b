"""A worker in a process of its own, for tests that kill it: `python crashing_worker.py CONFIG_JSON`.

It polls the test's queue (moto, over HTTP) with the Lambda-style event source mapping, answers with a
slow scripted model, posts to the test's local API Gateway and stores in the test's Postgres. It
prints "ready" once polling; the test ends it with SIGKILL, as a runtime that dies would.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import boto3
from strands import tool

sys.path.insert(0, str(Path(__file__).parent))

from scripted_model import ScriptedModel

from courier_local.edge.sqs import EventSourceMapping
from courier_worker.adapters import ApiGatewayConnections, SqsVisibility
from courier_worker.composition import build_worker
from courier_worker.settings import WorkerSettings
from courier_worker.tools import CourierTool, ToolRegistry


def lookup_tool(log_path: str) -> CourierTool:
    """A tool whose every run leaves a line in `log_path`: a test counts runs across processes."""

    @tool
    def lookup(city: str) -> str:
        """Look up the time in a city."""
        with open(log_path, "a") as log:
            log.write(city + "\n")
        return f"12:00 in {city}"

    return CourierTool(tool=lookup, summarize=lambda _input: "Looking it up…")


def main(config: dict[str, object]) -> None:
    settings = WorkerSettings.model_validate(config["settings"])
    endpoint = str(config["sqs_endpoint_url"])
    script = config.get("script") or [{"text": str(config["answer"])}]
    worker = build_worker(
        settings,
        model=ScriptedModel(list(script), delay_s=float(str(config["delay_s"]))),  # type: ignore[call-overload]
        connections=ApiGatewayConnections(region_name=settings.aws_region),
        queue=SqsVisibility(endpoint_url=endpoint),
        tools=ToolRegistry([lookup_tool(str(config["tool_log"]))]) if config.get("tool_log") else None,
    )
    sqs = boto3.client(
        "sqs",
        region_name=str(config["region"]),  # the test stack's, where its queues are
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    EventSourceMapping(
        sqs,
        str(config["queue_url"]),
        worker.handle,
        visibility_timeout_s=int(str(config["visibility_timeout_s"])),
        wait_time_s=0.2,
        max_concurrency=1,
    ).start()
    print("ready", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
