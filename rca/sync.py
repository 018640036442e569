"""The sync face of rca's async work: one way to run a coroutine from a script, from papermill and
from a Jupyter cell, where an event loop is already running (there it runs on its own loop in a
worker thread, so the kernel's loop is neither blocked from inside nor patched)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T], *, thread_name: str = "rca") -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name) as pool:
        return pool.submit(asyncio.run, coro).result()
