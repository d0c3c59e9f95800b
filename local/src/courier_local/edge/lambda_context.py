"""A Lambda context object for invoking handlers locally.

It has the attributes and the method Powertools and handlers read from the real
`awslambdaric` context, so a handler cannot tell the difference.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LambdaContext:
    function_name: str = "courier-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    timeout_s: float = 60.0
    region: str = "us-east-1"
    account_id: str = "123456789012"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # The remaining time's time source: a test that injects the handler's clock passes it here too.
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    # The deadline on `clock`, fixed when the context is built (= when the invocation starts).
    deadline: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.deadline = self.clock() + self.timeout_s

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/[{self.function_version}]{self.aws_request_id.replace('-', '')}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - self.clock()) * 1000))
