"""A progress line on standard error: redrawn in place on a terminal, else plain lines.

On a terminal the line is redrawn at most ten times a second, cut to the terminal's width. Into a
file or a pipe (a log, CI) a line is written each time another tenth of the work is done, and at
least every :data:`PLAIN_EVERY_S` seconds, so a log shows progress without a line per chunk; the
last line says when all is done.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

REDRAW_EVERY_S = 0.1
PLAIN_EVERY_S = 10.0
PLAIN_STEPS = 10
"""Plain lines: one each time another 1/PLAIN_STEPS of the work is done."""


def size_text(count: int) -> str:
    """Bytes for people: ``812 B``, ``14.2 kB``, ``3.1 MB``, ``1.4 GB``."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def duration_text(seconds: float) -> str:
    """``0:07``, ``12:30``, ``2:05:00``."""
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


class ProgressLine:
    """The progress of one piece of work on ``stream``: its updates, then its last line."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        terminal: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.clock = clock
        self.started = clock()
        self.shown_at = self.started
        self.shown_step = 0
        self.drawn = False

    def elapsed(self) -> float:
        return max(self.clock() - self.started, 1e-6)

    def rate_and_eta(self, done: int, fraction: float, unit: str) -> str:
        """``N <unit>/s · ETA m:ss`` from the work done so far (the ETA by the fraction done)."""
        elapsed = self.elapsed()
        rate = f"{done / elapsed:,.0f} {unit}/s"
        if fraction <= 0:
            return f"{rate} · ETA --"
        left = elapsed * (1 - min(fraction, 1.0)) / fraction
        return f"{rate} · ETA {duration_text(left)}"

    def update(self, fraction: float, text: str) -> None:
        """Show ``text`` (``fraction`` of the work done) if it is time to."""
        now = self.clock()
        if self.terminal:
            if now - self.shown_at >= REDRAW_EVERY_S or not self.drawn:
                self._draw(text)
                self.shown_at = now
            return
        step = int(min(max(fraction, 0.0), 1.0) * PLAIN_STEPS)
        crossed = self.shown_step < step < PLAIN_STEPS  # all done: the last line says it
        if crossed or now - self.shown_at >= PLAIN_EVERY_S:
            print(text, file=self.stream, flush=True)
            self.shown_at, self.shown_step = now, max(step, self.shown_step)

    def finish(self, text: str) -> None:
        """The last line, always shown (a terminal's line is then left as it is)."""
        if self.terminal:
            self._draw(text)
            self.drawn = False
            print(file=self.stream, flush=True)
        else:
            print(text, file=self.stream, flush=True)

    def abandon(self) -> None:
        """End a line drawn on a terminal, so that a message after it starts a line of its own."""
        if self.terminal and self.drawn:
            print(file=self.stream, flush=True)
            self.drawn = False

    def _width(self) -> int:
        """The terminal's columns: ``COLUMNS``, else the stream's terminal, else 100."""
        given = os.environ.get("COLUMNS", "")
        if given.isdigit() and int(given) > 0:
            return int(given)
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 100
        except (OSError, ValueError):  # not a terminal after all, or no file descriptor
            return 100

    def _draw(self, text: str) -> None:
        width = self._width()
        line = text if len(text) < width else text[: max(width - 2, 1)] + "…"
        print(f"\r{line}\x1b[K", end="", file=self.stream, flush=True)
        self.drawn = True
