"""JSON Schemas of the wire protocol, generated from the Pydantic models into docs/schemas/.

`python -m courier_shared.schemas docs/schemas` (or `make schemas`) rewrites them; a test fails
when the checked-in files differ from what the models generate.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from courier_shared.protocol import ChatRequest, ChatResponse, ChunkPart, ClientFrame, ServerFrame

# Client frames are documented as Courier accepts them, server frames as Courier sends them.
SCHEMAS: dict[str, tuple[Any, JsonSchemaMode]] = {
    "client-frame.schema.json": (ClientFrame, "validation"),
    "server-frame.schema.json": (ServerFrame, "serialization"),
    "chunk-part.schema.json": (ChunkPart, "serialization"),
    # The AI SDK's WebSocketChatTransport envelope (ai@7), as Courier accepts and answers it.
    "chat-request.schema.json": (ChatRequest, "validation"),
    "chat-response.schema.json": (ChatResponse, "serialization"),
}


def generate() -> dict[str, str]:
    """File name → schema text, exactly as checked in."""
    rendered = {}
    for name, (model, mode) in SCHEMAS.items():
        schema = TypeAdapter(model).json_schema(by_alias=True, mode=mode)
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": name, **schema}
        rendered[name] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return rendered


def write(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in generate().items():
        (directory / name).write_text(text)
        print(f"wrote {directory / name}")


if __name__ == "__main__":
    write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas"))
