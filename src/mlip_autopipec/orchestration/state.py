"""What workflow.json holds: the finished phases of every iteration, their wall time and
typed summary, and why the loop stopped. Read by `run` to resume and by `status`/`report`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlip_autopipec.core.files import write_atomically
from mlip_autopipec.orchestration.summaries import PhaseSummary, read_summary

FIRST_ITERATION_PHASES = ("explore", "label", "train")
LATER_ITERATION_PHASES = ("infer", "extract", "select", "label", "train")


def phases_of(iteration: int) -> tuple[str, ...]:
    return FIRST_ITERATION_PHASES if iteration == 0 else LATER_ITERATION_PHASES


class WorkflowState:
    """Finished phases per iteration, in workflow.json (replaced atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"iterations": {}, "stop_reason": None}
        if path.is_file():
            self.data = json.loads(path.read_text())

    def summary(self, iteration: int, name: str) -> PhaseSummary | None:
        entry = self._entry(iteration, name)
        return None if entry is None else read_summary(name, iteration, entry)

    def wall_time(self, iteration: int, name: str) -> float | None:
        entry = self._entry(iteration, name)
        return None if entry is None else float(entry.get("wall_time", 0.0))

    def iterations(self) -> list[int]:
        return sorted(int(key) for key in self.data["iterations"])

    def _entry(self, iteration: int, name: str) -> dict[str, Any] | None:
        entry: dict[str, Any] | None = self.data["iterations"].get(str(iteration), {}).get(name)
        return entry

    def finish(self, iteration: int, name: str, wall_time: float, summary: PhaseSummary) -> None:
        entry = {"wall_time": round(wall_time, 2), **summary.to_json()}
        self.data["iterations"].setdefault(str(iteration), {})[name] = entry
        self.data.pop("failed", None)
        self.save()

    def fail(self, iteration: int, name: str, error: str) -> None:
        """The phase that ended the last `run` with an error, until a phase finishes."""
        self.data["failed"] = {"iteration": iteration, "phase": name, "error": error}
        self.save()

    @property
    def failure(self) -> str | None:
        failed: dict[str, Any] | None = self.data.get("failed")
        if failed is None:
            return None
        return f"iteration {failed['iteration']} {failed['phase']} failed: {failed['error']}"

    def stop(self, reason: str) -> None:
        self.data["stop_reason"] = reason
        self.save()

    @property
    def stop_reason(self) -> str | None:
        reason: str | None = self.data.get("stop_reason")
        return reason

    def save(self) -> None:
        write_atomically(self.path, json.dumps(self.data, indent=1, sort_keys=True))
