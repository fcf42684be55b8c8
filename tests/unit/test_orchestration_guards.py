"""Failures the orchestrator must catch before any work is submitted, and stopping rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ase.build import bulk

from mlip_autopipec.config import config_from_dict
from mlip_autopipec.core import keys
from mlip_autopipec.core.process import ExecutableNotFoundError
from mlip_autopipec.generation import SURFACE
from mlip_autopipec.inference.extraction import EXTRACT_ORIGIN
from mlip_autopipec.inference.planning import (
    NoStartStructureError,
    StartCandidate,
    start_structures,
)
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.inference import NON_BULK_ORIGINS
from mlip_autopipec.orchestration.labeling import label_selected
from mlip_autopipec.orchestration.summaries import (
    ExtractSummary,
    InferSummary,
    SelectSummary,
    read_summary,
)


def test_missing_pw_x_fails_fast_and_leaves_rows_selected(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config_dict["dft"]["command"] = ["no-such-pw.x"]
    campaign = Campaign.open(config_from_dict(config_dict, base_dir=tmp_path))
    campaign.database.add_structures([bulk("Si", "diamond", a=5.43)], keys.SELECTED, 0, "t")
    with pytest.raises(ExecutableNotFoundError, match="no-such-pw.x"):
        label_selected(campaign)
    assert [r.status for r in campaign.database.select()] == [keys.SELECTED]


def test_md_never_starts_from_cut_out_environments_or_slabs() -> None:
    box = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 2, 2))
    cell = bulk("Si", "diamond", a=5.43, cubic=True)
    assert {EXTRACT_ORIGIN, SURFACE} <= NON_BULK_ORIGINS
    cut_out = [StartCandidate(box, EXTRACT_ORIGIN, -1.0), StartCandidate(box, SURFACE, -1.0)]
    with pytest.raises(NoStartStructureError, match="no labeled bulk structure"):
        start_structures(cut_out, 2, NON_BULK_ORIGINS)
    starts = start_structures(
        [*cut_out, StartCandidate(cell, "builder:strain", -2.0)], 2, NON_BULK_ORIGINS
    )
    assert [len(a) for a in starts] == [8, 8]


def test_start_structures_prefer_large_then_low_energy_cells() -> None:
    small, large = bulk("Si", "diamond", a=5.43, cubic=True), bulk("Si").repeat((3, 3, 2))
    candidates = [
        StartCandidate(small, "a", -5.0),
        StartCandidate(large, "b", -4.0),
        StartCandidate(small.copy(), "c", -5.5),
    ]
    starts = start_structures(candidates, 4, NON_BULK_ORIGINS)
    assert [len(a) for a in starts] == [36, 8, 8, 36]
    assert all(a.calc is None for a in starts)


def test_stop_when_nothing_new_survives_selection_or_extraction() -> None:
    assert SelectSummary(iteration=1, selected=0).stop_reason() is not None
    assert SelectSummary(iteration=1, selected=3).stop_reason() is None
    assert "no new candidates" in str(ExtractSummary(iteration=1, candidates=0).stop_reason())
    assert ExtractSummary(iteration=1, candidates=2).stop_reason() is None


def converged_md(**changes: Any) -> InferSummary:
    values: dict[str, Any] = {
        "iteration": 2,
        "runs": 2,
        "extrapolative_share": {"300": 0.0, "900": 0.05},
        "fit_test_rmse_forces": 40.0,
        "max_extrapolative_fraction": 0.1,
        "target_force_rmse": 0.05,
    }
    return InferSummary(**{**values, **changes})


def test_convergence_needs_low_share_no_halt_and_low_test_error() -> None:
    assert "converged at iteration 2" in str(converged_md().stop_reason())
    assert converged_md(halted=1).stop_reason() is None
    assert converged_md(extrapolative_share={"300": 0.2}).stop_reason() is None
    assert converged_md(fit_test_rmse_forces=60.0).stop_reason() is None
    assert converged_md(fit_test_rmse_forces=None).stop_reason() is None


def test_summaries_read_back_from_workflow_json_as_written() -> None:
    summary = converged_md(engine="lammps")
    stored = {"wall_time": 12.5, **summary.to_json()}
    assert read_summary("infer", 2, stored) == summary
    assert read_summary("select", 4, {"selected": 0, "wall_time": 1.0}).stop_reason() == (
        SelectSummary(iteration=4, selected=0).stop_reason()
    )
