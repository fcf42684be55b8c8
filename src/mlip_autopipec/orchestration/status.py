"""Read-only summaries of a campaign for `status` and the report."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from mlip_autopipec.core import keys
from mlip_autopipec.core.composition import formula
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.fit_errors import (
    new_data_errors,
    new_data_force_errors_by_composition,
    stored_validation_errors,
)
from mlip_autopipec.orchestration.state import WorkflowState, phases_of
from mlip_autopipec.orchestration.summaries import InferSummary
from mlip_autopipec.orchestration.training import finished_fits


def status_rows(campaign: Campaign) -> list[tuple[int, dict[str, int]]]:
    """(iteration, {status: count}) sorted by iteration."""
    per_iteration: dict[int, dict[str, int]] = defaultdict(dict)
    for (iteration, status), count in campaign.database.status_counts().items():
        per_iteration[iteration][status] = count
    return sorted(per_iteration.items())


@dataclass
class IterationRow:
    iteration: int
    labeled: int = 0
    failed: int = 0
    total_labeled: int = 0
    train_rmse_forces: float | None = None
    test_rmse_forces: float | None = None  # the random test split
    test_rmse_energy: float | None = None
    # The previous fit on the structures this fit adds ("error on new data"), measured before it.
    new_data_rmse_forces: float | None = None
    new_data_rmse_energy: float | None = None
    n_new_data: int | None = None
    new_data_forces_by_composition: dict[str, float] = field(default_factory=dict)
    validation_rmse_forces: float | None = None
    validation_rmse_energy: float | None = None
    extrapolative_share: dict[str, float] = field(default_factory=dict)
    md_engine: str | None = None
    wall_times: dict[str, float] = field(default_factory=dict)


def iteration_rows(campaign: Campaign) -> list[IterationRow]:
    """One row per iteration: DFT counts, fit errors, MD extrapolation, wall time per phase."""
    counts = dict(status_rows(campaign))
    fits = dict(finished_fits(campaign))
    state = WorkflowState(campaign.layout.state_file)
    iterations = sorted(set(counts) | set(fits) | set(state.iterations()))
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
        _add_honest_errors(row, campaign)
        _add_phases(row, state)
        rows.append(row)
    return rows


def _add_honest_errors(row: IterationRow, campaign: Campaign) -> None:
    new = new_data_errors(campaign, row.iteration)
    if new is not None:
        row.new_data_rmse_forces, row.new_data_rmse_energy = new.rmse_forces, new.rmse_energy
        row.n_new_data = new.n_structures
    by_composition = new_data_force_errors_by_composition(campaign, row.iteration)
    row.new_data_forces_by_composition = {
        formula(key): value for key, value in sorted(by_composition.items())
    }
    validation = stored_validation_errors(campaign, row.iteration)
    if validation is not None:
        row.validation_rmse_forces = validation.rmse_forces
        row.validation_rmse_energy = validation.rmse_energy


def _add_phases(row: IterationRow, state: WorkflowState) -> None:
    for name in phases_of(row.iteration):
        wall_time = state.wall_time(row.iteration, name)
        if wall_time is not None:
            row.wall_times[name] = wall_time
    infer = state.summary(row.iteration, "infer")
    if isinstance(infer, InferSummary):
        row.extrapolative_share = dict(
            sorted(infer.extrapolative_share.items(), key=lambda item: float(item[0]))
        )
        row.md_engine = infer.engine


def stop_reason(campaign: Campaign) -> str | None:
    return WorkflowState(campaign.layout.state_file).stop_reason


def failed_phase(campaign: Campaign) -> str | None:
    """The phase that ended the last `run` with an error, and the error; None after success."""
    return WorkflowState(campaign.layout.state_file).failure
