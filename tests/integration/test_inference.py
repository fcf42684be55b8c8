"""Phase D on a real pacemaker potential fitted to the recorded QE data (narrow: small Si cells)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from mlip_autopipec.config import InferenceConfig
from mlip_autopipec.core import keys
from mlip_autopipec.inference.ase_md import run_ase_md
from mlip_autopipec.inference.lammps import lammps_has_ml_pace, run_lammps_md
from mlip_autopipec.inference.md import MDRunSpec
from mlip_autopipec.orchestration.database import open_database
from mlip_autopipec.orchestration.inference import (
    extract_candidates,
    md_folder,
    potential_files,
    run_inference,
)
from tests.integration.conftest import TrainedCampaign

pytestmark = pytest.mark.slow


def md_spec(temperature: float, lower: float, upper: float, steps: int = 300) -> MDRunSpec:
    inference = InferenceConfig(
        steps=steps, gamma_every=5, gamma_lower=lower, gamma_upper=upper, max_frames=50
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


def test_inference_phase_runs_md_on_dask_and_extracts_candidates(
    trained_campaign: TrainedCampaign, tmp_path: Path
) -> None:
    config = trained_campaign.copy_to(tmp_path)
    inference = InferenceConfig(
        temperatures=[300.0, 3000.0], steps=200, gamma_every=5, gamma_lower=1.5, gamma_upper=6.0
    )
    config = config.model_copy(update={"inference": inference})
    fit = trained_campaign.result
    summary = run_inference(config, 1, fit)
    assert [run.temperature for run in summary.runs] == [300.0, 3000.0]
    shares = summary.share_by_temperature()
    assert shares[3000.0] > shares[300.0]
    added = extract_candidates(config, 1, fit)
    assert added > 0
    database = open_database(config)
    candidates = database.select(**{keys.STATUS: keys.CANDIDATE, keys.ITERATION: 1})
    assert len(candidates) == added
    for record in candidates:
        assert record.origin == "md:extract"
        assert record.key_value_pairs["md_run"] == "T3000_r0"
        assert record.key_value_pairs["centre_gamma"] >= 1.5
        assert record.key_value_pairs["md_step"] >= 0
    again = run_inference(config, 1, fit)  # finished: read back, not rerun
    assert again == summary
    assert extract_candidates(config, 1, fit) == added  # no duplicates on a rerun
    assert (md_folder(config, 1) / "md_summary.json").is_file()


LMP = shutil.which("lmp") or shutil.which("lmp_serial")


@pytest.mark.skipif(
    LMP is None or not lammps_has_ml_pace(LMP),
    reason="no LAMMPS with ML-PACE here (PyPI and Debian builds lack pair_style pace)",
)
def test_lammps_engine_matches_semantics(trained_campaign: TrainedCampaign, tmp_path: Path) -> None:
    potential = potential_files(trained_campaign.result)
    spec = replace(md_spec(4000, 1.5, 4.0), lammps_command=(str(LMP),))
    result = run_lammps_md(supercell(), potential, spec, tmp_path / "lmp")
    assert result.halted and result.frames
    assert np.all([f.info["max_gamma"] >= 1.5 for f in result.frames])
