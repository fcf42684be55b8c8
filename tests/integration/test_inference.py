"""Phase D on a real pacemaker potential fitted to the recorded QE data (narrow: small Si cells)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from mlip_autopipec.config import InferenceConfig
from mlip_autopipec.core import keys
from mlip_autopipec.inference.ase_md import run_ase_md
from mlip_autopipec.inference.engines import MDEngineSpec, run_md_task
from mlip_autopipec.inference.md_types import MDResult, MDRunSpec
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.inference import (
    extract_candidates,
    potential_files,
    run_inference,
)
from tests.integration.conftest import TrainedCampaign

pytestmark = pytest.mark.slow


def md_spec(
    temperature: float, lower: float, upper: float, steps: int = 300, max_restarts: int = 0
) -> MDRunSpec:
    inference = InferenceConfig(
        steps=steps,
        gamma_every=5,
        gamma_lower=lower,
        gamma_upper=upper,
        max_frames=50,
        max_restarts=max_restarts,
    )
    return MDRunSpec.from_config(inference, f"T{temperature:g}", temperature, None, seed=3)


def supercell():
    return bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 1, 1))


def test_hot_md_keeps_frames_above_lower_and_stops_at_upper(
    trained_campaign: TrainedCampaign, tmp_path: Path
) -> None:
    potential = potential_files(trained_campaign.result)
    result = run_ase_md(supercell(), potential, md_spec(4000, 1.5, 4.0), tmp_path)
    assert result.error is None
    assert result.halted, result.max_gamma_per_check
    assert result.steps_done < 300
    assert result.max_gamma_per_check[-1] >= 4.0
    assert all(g < 4.0 for g in result.max_gamma_per_check[:-1])
    assert result.frames
    for frame in result.frames:
        assert frame.arrays["gamma"].shape == (16,)
        assert frame.info["max_gamma"] >= 1.5
        assert frame.info["max_gamma"] == pytest.approx(frame.arrays["gamma"].max())
    above_lower = sum(g >= 1.5 for g in result.max_gamma_per_check)
    assert len(result.frames) == above_lower


def test_cold_md_runs_to_the_end_without_frames(
    trained_campaign: TrainedCampaign, tmp_path: Path
) -> None:
    potential = potential_files(trained_campaign.result)
    result = run_ase_md(supercell(), potential, md_spec(50, 5.0, 50.0, steps=100), tmp_path)
    assert not result.halted and result.error is None
    assert result.steps_done == 100 and result.frames == []
    assert len(result.max_gamma_per_check) == 100 // 5 + 1
    assert result.extrapolative_share(5.0) == 0.0


def assert_restarted_from_last_trusted(result: MDResult, spec: MDRunSpec) -> None:
    """What a run with restarts must show, whichever engine ran it."""
    assert result.error is None and len(result.segments) >= 2, result.max_gamma_per_check
    for before, after in zip(result.segments, result.segments[1:], strict=False):
        assert before.halted and before.last_trusted is not None
        trusted = before.last_trusted
        assert trusted.info["max_gamma"] < spec.gamma_upper
        np.testing.assert_array_equal(after.start.positions, trusted.positions)
        np.testing.assert_array_equal(after.start.cell[:], trusted.cell[:])
        # the engine really started there: its first check sees the trusted frame's gamma
        assert after.max_gamma_per_check[0] == pytest.approx(trusted.info["max_gamma"], rel=1e-6)
        assert after.seed != before.seed  # fresh velocities
        assert after.first_step == before.first_step + before.steps_done
    assert sum(s.steps_done for s in result.segments) == result.steps_done <= spec.steps
    assert result.halts == sum(s.halted for s in result.segments)
    kept = [g for g in result.max_gamma_per_check if g >= spec.gamma_lower]
    assert len(result.frames) == min(len(kept), spec.max_frames)  # >= lower, every segment
    assert all(f.info["max_gamma"] >= spec.gamma_lower for f in result.frames)
    later = result.segments[1].first_step
    assert any(f.info["step"] > later for f in result.frames)  # kept after the first restart


def test_a_halted_run_restarts_from_its_last_trusted_frame(
    trained_campaign: TrainedCampaign, tmp_path: Path
) -> None:
    potential = potential_files(trained_campaign.result)
    spec = md_spec(4000, 1.5, 4.0, steps=300, max_restarts=2)
    result = run_md_task(supercell(), spec, MDEngineSpec("ase"), potential, tmp_path)
    assert_restarted_from_last_trusted(result, spec)


def test_inference_phase_runs_md_on_dask_and_extracts_candidates(
    trained_campaign: TrainedCampaign, tmp_path: Path
) -> None:
    config = trained_campaign.copy_to(tmp_path)
    inference = InferenceConfig(
        temperatures=[300.0, 3000.0], steps=200, gamma_every=5, gamma_lower=1.5, gamma_upper=6.0
    )
    campaign = Campaign.open(config.model_copy(update={"inference": inference}))
    fit = trained_campaign.result
    summary = run_inference(campaign, 1, fit)
    assert [run.temperature for run in summary.runs] == [300.0, 3000.0]
    assert [run.start for run in summary.runs] == ["bulk", "bulk"]  # imported periodic cells
    for run in summary.runs:
        assert sum(run.segment_steps) == run.steps_done <= 200
        assert run.restarts == len(run.segment_steps) - 1 <= 3
    shares = summary.share_by_temperature()
    assert shares[3000.0] > shares[300.0]
    added = extract_candidates(campaign, 1, fit)
    assert added > 0
    database = campaign.database
    candidates = database.select(**{keys.STATUS: keys.CANDIDATE, keys.ITERATION: 1})
    assert len(candidates) == added
    for record in candidates:
        assert record.origin == "md:extract"
        assert record.key_value_pairs["md_run"] == "T3000_bulk_r0"
        assert record.key_value_pairs["centre_gamma"] >= 1.5
        assert record.key_value_pairs["md_step"] >= 0
    again = run_inference(campaign, 1, fit)  # finished: read back, not rerun
    assert again == summary
    assert extract_candidates(campaign, 1, fit) == added  # no duplicates on a rerun
    assert (campaign.layout.md_dir(1) / "md_summary.json").is_file()
