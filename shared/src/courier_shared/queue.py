"""The turn request: what the gateway puts on the SQS FIFO queue and the worker takes off it.

It carries ids only; the worker reads the text from the database, so a queue message never holds
user content and stays far below SQS's size limit.
"""

from uuid import UUID

from pydantic import BaseModel, ConfigDict


class TurnRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    turn_id: UUID
    conversation_id: UUID
    tenant_id: str
    user_id: str
    origin_connection_id: str | None
    # Where the worker posts frames (https://{domainName}/{stage}); the worker's own setting wins if set.
    callback_url: str | None = None

    @property
    def group_id(self) -> str:
        """FIFO group: one conversation's turns run one at a time, in order."""
        return str(self.conversation_id)

    @property
    def deduplication_id(self) -> str:
        """FIFO dedup: the same turn enqueued twice within 5 minutes is delivered once."""
        return str(self.turn_id)
