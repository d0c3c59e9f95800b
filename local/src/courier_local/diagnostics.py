"""`kill -USR1 <pid of courier dev>`: what every thread and every asyncio task is waiting on.

The local stack runs every Lambda container in one process, each invocation with its own event
loop; when an answer seems stuck, this prints each thread's stack and each task's coroutine stack
to stderr, without stopping anything.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import io
import signal
import sys
from typing import Any, TextIO


def dump_waits(out: TextIO = sys.stderr) -> None:
    faulthandler.dump_traceback(file=out, all_threads=True)
    loops = [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()]
    for loop in loops:
        tasks = asyncio.all_tasks(loop)
        out.write(f"\n--- event loop {id(loop):#x}: {len(tasks)} tasks\n")
        for task in tasks:
            text = io.StringIO()
            task.print_stack(limit=12, file=text)
            out.write(text.getvalue())
    out.flush()


def install() -> None:
    def on_signal(_signum: int, _frame: Any) -> None:
        dump_waits()

    signal.signal(signal.SIGUSR1, on_signal)
