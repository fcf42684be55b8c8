"""Read-only summaries of a campaign for `status` and the report."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from mlip_autopipec.config import MLIPConfig
from mlip_autopipec.core import keys
from mlip_autopipec.orchestration.database import open_database
from mlip_autopipec.orchestration.training import finished_fits
from mlip_autopipec.orchestration.workflow import WorkflowState, phases_of


def status_rows(config: MLIPConfig) -> list[tuple[int, dict[str, int]]]:
    """(iteration, {status: count}) sorted by iteration."""
    per_iteration: dict[int, dict[str, int]] = defaultdict(dict)
    for (iteration, status), count in open_database(config).status_counts().items():
        per_iteration[iteration][status] = count
    return sorted(per_iteration.items())


@dataclass
class IterationRow:
    iteration: int
    labeled: int = 0
    failed: int = 0
    total_labeled: int = 0
    train_rmse_forces: float | None = None
    test_rmse_forces: float | None = None
    test_rmse_energy: float | None = None
    extrapolative_share: dict[str, float] = field(default_factory=dict)
    wall_times: dict[str, float] = field(default_factory=dict)


def iteration_rows(config: MLIPConfig) -> list[IterationRow]:
    """One row per iteration: DFT counts, fit errors, MD extrapolation, wall time per phase."""
    counts = dict(status_rows(config))
    fits = dict(finished_fits(config))
    state = WorkflowState(config.workflow.work_dir)
    iterations = sorted(set(counts) | set(fits) | {int(k) for k in state.data["iterations"]})
    rows = []
    total = 0
    for iteration in (i for i in iterations if i >= 0):
        row = IterationRow(iteration)
        row.labeled = counts.get(iteration, {}).get(keys.LABELED, 0)
        row.failed = counts.get(iteration, {}).get(keys.FAILED, 0)
        total += row.labeled
        row.total_labeled = total
        if iteration in fits:
            metrics = fits[iteration].metrics
            row.train_rmse_forces = metrics.train.rmse_forces
            if metrics.test is not None:
                row.test_rmse_forces = metrics.test.rmse_forces
                row.test_rmse_energy = metrics.test.rmse_energy
        for name in phases_of(iteration):
            phase: dict[str, Any] | None = state.phase(iteration, name)
            if phase is not None:
                row.wall_times[name] = phase["wall_time"]
                if name == "infer":
                    shares = phase.get("extrapolative_share", {})
                    row.extrapolative_share = dict(sorted(shares.items(), key=_as_number))
        rows.append(row)
    return rows


def _as_number(item: tuple[str, float]) -> float:
    return float(item[0])


def stop_reason(config: MLIPConfig) -> str | None:
    reason: str | None = WorkflowState(config.workflow.work_dir).data.get("stop_reason")
    return reason
