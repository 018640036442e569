"""Progress of long work, where the user can see it: a bar in a notebook or on a terminal, a
plain line every few seconds when stderr is a log file (CI), nothing when switched off."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

LINE_EVERY_S = 5.0


def _in_notebook() -> bool:
    """Inside a Jupyter kernel (a running ZMQ shell), not merely with ipykernel imported."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


class Progress:
    """`update(n)` as work is done; `close()` at the end. The mode is chosen once, from where
    stderr goes: a notebook widget, a terminal bar (tqdm), or a dated line every LINE_EVERY_S."""

    def __init__(self, total: int | None, desc: str, unit: str, *, enabled: bool = True,
                 stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total, self.desc, self.unit, self.done = total, desc, unit, 0
        self.started = self._last = time.monotonic()
        self.postfix: dict[str, Any] = {}
        self.bar = None
        self.lines = False
        if not enabled:
            return
        notebook = stream is None and _in_notebook()
        if notebook or self.stream.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=None if notebook else self.stream)
        else:
            self.lines = True

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.done += n
        self.postfix.update(postfix)
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(**postfix, refresh=False)
            self.bar.update(n)
        elif self.lines and time.monotonic() - self._last >= LINE_EVERY_S:
            self._line()

    def _line(self) -> None:
        self._last = time.monotonic()
        of = f"/{self.total:,}" if self.total else ""
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        print(f"{self.desc}: {self.done:,}{of} {self.unit}{share}{extra}, {time.monotonic() - self.started:.0f} s",
              file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.lines and self.done and time.monotonic() - self.started >= LINE_EVERY_S:
            self._line()  # long work ends with its final count


@contextmanager
def ticking(desc: str, *, enabled: bool = True, stream: TextIO | None = None) -> Iterator[None]:
    """For work that reports no steps (a notebook executing): a line every LINE_EVERY_S saying it goes on."""
    out = stream or sys.stderr
    if not enabled:
        yield
        return
    stop = threading.Event()
    started = time.monotonic()

    def tick() -> None:
        while not stop.wait(LINE_EVERY_S):
            print(f"{desc}: {time.monotonic() - started:.0f} s", file=out, flush=True)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
