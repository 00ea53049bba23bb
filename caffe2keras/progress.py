"""The progress line of ``caffe2keras convert`` on stderr.

On a terminal, once a conversion has run for ``delay`` seconds (small models finish before
and print nothing), one line is redrawn in place: the stage, a bar when the stage can count
its work, and the elapsed time. The line is erased when the conversion ends. Anywhere else
(a pipe, a log file, CI) nothing is drawn; the summary printed at the end is the record.
Stage timings are kept either way.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable

BAR_WIDTH = 24


class Progress:
    """Stages of a conversion, timed; drawn on ``stream`` when it is a terminal."""

    def __init__(self, stream=None, enabled: bool | None = None, delay: float = 0.5,
                 interval: float = 0.1):
        self.stream = sys.stderr if stream is None else stream
        self.enabled = _is_terminal(self.stream) if enabled is None else enabled
        self.delay, self.interval = delay, interval
        self.timings: dict[str, float] = {}
        self._start = time.perf_counter()
        self._label = ""
        self._count: tuple[Callable[[], int], int] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._drawn = False

    @contextmanager
    def stage(self, label: str, done: Callable[[], int] | None = None, total: int = 0):
        """Time the body as stage ``label``; ``done()`` counts the finished part of ``total``."""
        with self._lock:
            self._label, self._count = label, (done, total) if done and total else None
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="caffe2keras-progress",
                                            daemon=True)
            self._thread.start()
        begun = time.perf_counter()
        try:
            yield self
        finally:
            self.timings[label] = self.timings.get(label, 0.0) + time.perf_counter() - begun

    def close(self) -> None:
        """Stop drawing and erase the line."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            if self._drawn:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._drawn = False

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def line(self) -> str:
        """The current progress line (without the carriage return)."""
        elapsed = time.perf_counter() - self._start
        text = f"caffe2keras: {self._label}"
        if self._count is not None:
            done_fn, total = self._count
            done = min(max(done_fn(), 0), total)
            filled = round(BAR_WIDTH * done / total)
            text += f" [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}"
        return f"{text}  {elapsed:.1f} s"

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if time.perf_counter() - self._start < self.delay:
                continue
            with self._lock:
                if self._stop.is_set():
                    return
                self.stream.write("\r\x1b[K" + self.line())
                self.stream.flush()
                self._drawn = True


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
