"""Force weights reach pacemaker, and error on new data is recorded before the fit and survives
a failed fit (real pacemaker on the recorded Si data; a crashing stand-in for the failure)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import ase.io
import numpy as np
import pandas as pd
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.config import config_from_dict
from mlip_autopipec.core import keys
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.database import open_database
from mlip_autopipec.orchestration.status import iteration_rows
from mlip_autopipec.orchestration.training import train_phase
from mlip_autopipec.training.dataset import TEST, LabeledStructure
from mlip_autopipec.training.evaluation import score
from mlip_autopipec.training.pacemaker import FITTING_DATA_INFO, TrainingError
from tests.conftest import write_config
from tests.integration.conftest import SI_DATA, TrainedCampaign, training_config_dict
from tests.integration.test_training import FAKE_PACEMAKER, labeled_records

pytestmark = pytest.mark.slow

TINY_FIT = {"maxiter": 3, "upfit": False}


def test_score_reproduces_pacemakers_test_split_rmse(trained_campaign: TrainedCampaign) -> None:
    result = trained_campaign.result
    records = labeled_records(trained_campaign, TEST)
    structures = [LabeledStructure(r.id, r.atoms) for r in records]
    summary = score(result.potential, structures, result.metrics.reference_energies)
    assert summary is not None and result.metrics.test is not None
    assert summary.rmse_energy == pytest.approx(result.metrics.test.rmse_energy, rel=1e-3)
    assert summary.rmse_forces == pytest.approx(result.metrics.test.rmse_forces, rel=1e-3)


def add_cut_out(config_root: Path) -> tuple[int, int]:
    """A labeled 'cut-out' in iteration 1 whose atom 0 has force weight 0 (row id, n atoms)."""
    database = open_database(config_from_dict(training_config_dict(config_root), config_root))
    (record,) = database.select(id=2)
    atoms = record.atoms.copy()
    atoms.positions[1] += 0.05
    atoms.calc = SinglePointCalculator(atoms, **record.atoms.calc.results)
    weights = [0.0] + [1.0] * (len(atoms) - 1)
    data = [{keys.FORCE_WEIGHTS: weights}]
    (row_id,) = database.add_structures([atoms], keys.LABELED, 1, "md:extract", data=data)
    return row_id, len(atoms)


def campaign_at(root: Path, validation: Path | None = None, **training: object) -> Campaign:
    data = training_config_dict(root, **{**TINY_FIT, **training})
    if validation is not None:
        data["workflow"]["validation_set"] = str(validation)
    write_config(root, data)
    return Campaign.open(config_from_dict(data, base_dir=root))


def test_error_on_new_data_survives_a_failed_fit_and_weights_reach_pacemaker(
    trained_campaign: TrainedCampaign, tmp_path: Path
) -> None:
    trained_campaign.copy_to(tmp_path)
    row_id, n_atoms = add_cut_out(tmp_path)
    crashing = campaign_at(tmp_path, command=[sys.executable, str(FAKE_PACEMAKER), "crash"])
    with pytest.raises(TrainingError, match="pacemaker failed"):
        train_phase(crashing, 1)
    errors_file = tmp_path / "work/errors/iter_001.json"
    recorded = json.loads(errors_file.read_text())
    assert recorded["db_ids"] == [row_id]  # only what iter_000 was not trained on
    assert recorded["fit"].endswith("potentials/iter_000")
    assert recorded["errors"]["n_structures"] == 1 and recorded["errors"]["rmse_forces"] > 0
    stamp = (errors_file.stat().st_mtime_ns, errors_file.read_bytes())

    validation = tmp_path / "validation.extxyz"
    ase.io.write(validation, list(ase.io.read(SI_DATA, index=":3")), format="extxyz")
    summary = train_phase(campaign_at(tmp_path, validation), 1)

    assert (errors_file.stat().st_mtime_ns, errors_file.read_bytes()) == stamp  # reused
    assert summary.new_data_rmse_forces == recorded["errors"]["rmse_forces"]
    assert summary.new_data_rmse_energy == recorded["errors"]["rmse_energy"]
    assert summary.n_new_data == 1 and summary.test_rmse_forces is not None
    assert summary.n_validation == 3 and summary.validation_rmse_forces is not None
    (row,) = [r for r in iteration_rows(campaign_at(tmp_path)) if r.iteration == 1]
    assert row.new_data_rmse_forces == summary.new_data_rmse_forces

    folder = tmp_path / "work/potentials/iter_001"
    assert "Both weighting columns" in (folder / "pacemaker.log").read_text()
    fitted = pd.read_pickle(folder / FITTING_DATA_INFO, compression="gzip")
    weights = np.asarray(fitted.set_index("name").loc[f"row_{row_id}", "w_forces"], float)
    assert len(weights) == n_atoms and weights[0] == 0.0
    assert np.allclose(weights[1:], weights[1])  # the others as any atom of the data set
    others = np.concatenate([np.asarray(w, float) for w in fitted["w_forces"]])
    assert np.isclose(np.max(others), weights[1]) and weights[1] > 0
    assert np.allclose(fitted["w_energy"], fitted["w_energy"].iloc[0])  # energies all equal
