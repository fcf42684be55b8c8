"""What `run` shows while it works: a live bar per phase on a terminal, plain lines elsewhere.

Output that is not a terminal (CI, nohup, a batch job) gets one line when a phase starts, a
line at most every `PLAIN_INTERVAL` seconds while it advances, and its summary when it ends:
no control characters, nothing redrawn.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from mlip_autopipec.orchestration.summaries import PhaseSummary

PLAIN_INTERVAL = 30.0  # s between plain progress lines


def duration(seconds: float) -> str:
    """`3 min 46 s`, `12 s`, `1 h 05 min`."""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


class RunDisplay:
    """A PhaseObserver for the CLI (see orchestration.workflow)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self._progress: Progress | None = None
        self._task: Any = None
        self._phase = ""
        self._start = 0.0
        self._last_line = 0.0

    def __enter__(self) -> RunDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        """A phase that failed never finished: its live bar must not outlive the command."""
        self._stop_live()

    def _stop_live(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def started(self, iteration: int, name: str) -> None:
        self._phase = f"iteration {iteration}: {name}"
        self._start = self._last_line = time.monotonic()
        if not self.live:
            self.console.print(Text(f"{self._phase} ..."))
            return
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(self._phase, total=None, detail="")

    def advanced(self, done: int, total: int | None, detail: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total, detail=detail)
            return
        now = time.monotonic()
        finished = total is not None and done >= total
        if now - self._last_line < PLAIN_INTERVAL and not finished:
            return
        self._last_line = now
        count = f"{done}/{total}" if total is not None else f"{done}"
        elapsed = duration(now - self._start)
        self.console.print(Text(f"{self._phase}: {count} {detail} ({elapsed})"))

    def finished(self, iteration: int, name: str, summary: PhaseSummary, seconds: float) -> None:
        self._stop_live()
        line = f"iteration {iteration}: {name} done in {duration(seconds)}: {summary.describe()}"
        self.console.print(Text(line))
