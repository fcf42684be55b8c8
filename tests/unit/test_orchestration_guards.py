"""Failures the orchestrator must catch before any work is submitted, and stopping rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ase.build import bulk

from mlip_autopipec.config import InferenceConfig, config_from_dict
from mlip_autopipec.core import keys
from mlip_autopipec.core.process import ExecutableNotFoundError
from mlip_autopipec.generation import SURFACE
from mlip_autopipec.inference.extraction import EXTRACT_ORIGIN
from mlip_autopipec.inference.planning import NoStartStructureError, StartCandidate, plan_md
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.inference import NOTHING_MEASURED, START_KINDS_BY_ORIGIN
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


def test_md_never_starts_from_cut_out_environments_and_slabs_get_nvt_only() -> None:
    box = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 2, 2))
    cell = bulk("Si", "diamond", a=5.43, cubic=True)
    assert START_KINDS_BY_ORIGIN[EXTRACT_ORIGIN] is None
    assert START_KINDS_BY_ORIGIN[SURFACE] == "surface"
    inference = InferenceConfig(temperatures=[300.0], pressures=[0.0, 1000.0])
    with pytest.raises(NoStartStructureError, match="no labeled bulk, vacancy or surface"):
        plan_md([StartCandidate(box, EXTRACT_ORIGIN, -1.0)], inference, 1, START_KINDS_BY_ORIGIN)
    candidates = [
        StartCandidate(box, EXTRACT_ORIGIN, -1.0),
        StartCandidate(box, SURFACE, -1.0),
        StartCandidate(cell, "builder:strain", -2.0),
    ]
    runs = plan_md(candidates, inference, 1, START_KINDS_BY_ORIGIN)
    assert [(len(atoms), spec.start, spec.pressure) for atoms, spec in runs] == [
        (8, "bulk", 0.0), (8, "bulk", 1000.0), (64, "surface", None)
    ]  # fmt: skip
    assert all(atoms.calc is None for atoms, _ in runs)


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
        "judged_rmse_forces": 45.0,
        "judged_by": "validation-set",
    }
    return InferSummary(**{**values, **changes})


def test_convergence_needs_low_share_no_halt_and_low_honest_error() -> None:
    assert "converged at iteration 2" in str(converged_md().stop_reason())
    assert "validation-set force RMSE" in str(converged_md().stop_reason())
    assert converged_md(halted=1).stop_reason() is None
    assert converged_md(extrapolative_share={"300": 0.2}).stop_reason() is None
    assert converged_md(judged_rmse_forces=60.0).stop_reason() is None
    # A low random-test-split error alone is not enough: no honest figure, no convergence.
    nothing = converged_md(judged_rmse_forces=None, judged_by=NOTHING_MEASURED)
    assert nothing.stop_reason() is None


def test_an_infer_entry_from_before_honest_errors_keeps_its_verdict_on_resume() -> None:
    old = converged_md(judged_rmse_forces=None, judged_by=None)
    assert "converged at iteration 2" in str(old.stop_reason())
    assert (
        converged_md(
            judged_rmse_forces=None, judged_by=None, fit_test_rmse_forces=60.0
        ).stop_reason()
        is None
    )


def test_an_old_infer_summary_without_honest_keys_reads_back() -> None:
    old = {"runs": 2, "extrapolative_share": {"300": 0.0}, "fit_test_rmse_forces": 40.0}
    summary = read_summary("infer", 1, {**old, "wall_time": 3.0})
    assert summary == InferSummary(iteration=1, **old)
    assert summary.stop_reason() is None


def test_summaries_read_back_from_workflow_json_as_written() -> None:
    summary = converged_md(engine="lammps")
    stored = {"wall_time": 12.5, **summary.to_json()}
    assert read_summary("infer", 2, stored) == summary
    assert read_summary("select", 4, {"selected": 0, "wall_time": 1.0}).stop_reason() == (
        SelectSummary(iteration=4, selected=0).stop_reason()
    )
