"""Cut-outs teach only what they know (force weights) and the honest errors (issue 10, 3-4)."""

from __future__ import annotations

import copy
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.config import ConfigError, TrainingConfig, config_from_dict
from mlip_autopipec.inference.extraction import cut_force_weights, extract_environments
from mlip_autopipec.orchestration.report import learning_curve_series
from mlip_autopipec.orchestration.status import IterationRow
from mlip_autopipec.orchestration.summaries import TrainSummary
from mlip_autopipec.training.dataset import (
    WEIGHTS_ENERGY,
    WEIGHTS_FORCES,
    DatasetBuilder,
    DatasetError,
    LabeledStructure,
)
from mlip_autopipec.training.inputs import DataFiles, FitStart, build_input
from tests.conftest import MINIMAL_CONFIG

CUTOFF, BUFFER = 3.0, 2.0


def labeled(atoms: Atoms, seed: int = 0) -> Atoms:
    atoms = atoms.copy()
    forces = np.random.default_rng(seed).normal(size=(len(atoms), 3))
    atoms.calc = SinglePointCalculator(atoms, energy=-5.0 * len(atoms), forces=forces)
    return atoms


def test_cut_out_atoms_beyond_the_cutoff_get_force_weight_zero() -> None:
    frame = bulk("Si", "diamond", a=5.43, cubic=True).repeat((3, 3, 3))
    frame.arrays["gamma"] = np.where(np.arange(len(frame)) == 7, 5.0, 1.0)
    (env,) = extract_environments(frame, 2.0, CUTOFF, BUFFER, min_distance=1.5)
    assert not env.whole_cell and env.force_weights is not None
    weights = env.force_weights
    assert weights.shape == (len(env.atoms),)
    # diamond Si: the centre and its 4 nearest neighbours (2.35 Å) lie within 3 Å; the next
    # shell (3.84 Å) and everything out to cutoff + buffer is only there as surrounding.
    assert weights[0] == 1.0 and weights.sum() == 5.0
    distances = np.linalg.norm(env.atoms.positions - env.atoms.positions[0], axis=1)
    assert np.all(weights[distances > CUTOFF] == 0.0) and np.any(distances > CUTOFF)
    assert set(weights) == {0.0, 1.0}


def test_whole_cells_keep_every_force() -> None:
    frame = bulk("Si", "diamond", a=5.43, cubic=True)
    frame.arrays["gamma"] = np.full(len(frame), 5.0)
    (env,) = extract_environments(frame, 2.0, CUTOFF, BUFFER, min_distance=1.5)
    assert env.whole_cell and env.force_weights is None


def test_constructed_cut_out_weights() -> None:
    atoms = Atoms("Si4", positions=[[5, 5, 5], [7, 5, 5], [5, 8.1, 5], [5, 5, 8.0]], cell=[10] * 3)
    assert cut_force_weights(atoms, 3.0).tolist() == [1.0, 1.0, 0.0, 1.0]


def test_dataset_carries_energy_and_per_atom_force_weights(tmp_path: Path) -> None:
    atoms = labeled(bulk("Si", "diamond", a=5.43, cubic=True))
    cut = LabeledStructure(1, atoms, force_weights=[1, 0, 1, 1, 0, 1, 1, 1])
    plain = LabeledStructure(2, atoms)
    frame = DatasetBuilder({"Si": -5.0}).to_dataframe([cut, plain])
    assert frame[WEIGHTS_ENERGY].tolist() == [1.0, 1.0]
    assert frame[WEIGHTS_FORCES][0].tolist() == [1, 0, 1, 1, 0, 1, 1, 1]
    assert frame[WEIGHTS_FORCES][1].tolist() == [1.0] * 8
    DatasetBuilder({"Si": -5.0}).write_extxyz([cut], tmp_path / "d.extxyz")
    read_back = ase.io.read(tmp_path / "d.extxyz")
    assert read_back.arrays["force_weights"].tolist() == [1, 0, 1, 1, 0, 1, 1, 1]


@pytest.mark.parametrize("weights", [[1.0, 0.0], [1, 1, 1, 1, 1, 1, 1, -1.0]])
def test_wrong_force_weights_are_a_one_line_error(weights: list[float]) -> None:
    atoms = labeled(bulk("Si", "diamond", a=5.43, cubic=True))
    with pytest.raises(DatasetError, match="structure 3: .*force weights"):
        DatasetBuilder({"Si": -5.0}).to_dataframe([LabeledStructure(3, atoms, "train", weights)])


def test_pacemaker_input_uses_the_weights_in_the_data() -> None:
    files = DataFiles("train.pckl.gzip", None, {"Si": -5.0})
    data = build_input(TrainingConfig(), ["Si"], files, FitStart())["data"]
    assert data["ignore_weights"] is False and "weighting" not in data


def config_with_validation_set(tmp_path: Path, frames: list[Atoms]) -> dict:
    path = tmp_path / "validation.extxyz"
    ase.io.write(path, frames, format="extxyz")
    data = copy.deepcopy(MINIMAL_CONFIG)
    data["workflow"] = {"work_dir": str(tmp_path / "work"), "validation_set": "validation.extxyz"}
    return data


def test_validation_set_is_checked_at_load(tmp_path: Path) -> None:
    good = labeled(bulk("Si", "diamond", a=5.43, cubic=True))
    config = config_from_dict(config_with_validation_set(tmp_path, [good]), base_dir=tmp_path)
    assert config.workflow.validation_set == tmp_path / "validation.extxyz"


def test_validation_frame_without_forces_is_named(tmp_path: Path) -> None:
    good = labeled(bulk("Si", "diamond", a=5.43, cubic=True))
    unlabeled = bulk("Si", "diamond", a=5.5, cubic=True)
    unlabeled.calc = SinglePointCalculator(unlabeled, energy=-40.0)
    data = config_with_validation_set(tmp_path, [good, unlabeled])
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data, base_dir=tmp_path)
    (line,) = [p for p in caught.value.problems if "validation" in p]
    assert "validation.extxyz frame 1: no forces" in line and "\n" not in line


def test_validation_frame_with_a_foreign_element_is_named(tmp_path: Path) -> None:
    foreign = labeled(bulk("Ge", "diamond", a=5.66, cubic=True))
    data = config_with_validation_set(tmp_path, [foreign])
    with pytest.raises(ConfigError, match=r"validation.extxyz frame 0: element\(s\) Ge"):
        config_from_dict(data, base_dir=tmp_path)


def test_missing_validation_set_is_named(tmp_path: Path) -> None:
    data = copy.deepcopy(MINIMAL_CONFIG)
    data["workflow"] = {"work_dir": str(tmp_path / "work"), "validation_set": "nope.xyz"}
    with pytest.raises(ConfigError, match="nope.xyz not found"):
        config_from_dict(data, base_dir=tmp_path)


def test_learning_curve_puts_error_on_new_data_at_what_the_scored_fit_saw() -> None:
    rows = [
        IterationRow(0, total_labeled=10, train_rmse_forces=50.0, test_rmse_forces=80.0),
        IterationRow(1, total_labeled=16, train_rmse_forces=40.0, new_data_rmse_forces=300.0),
    ]
    series = learning_curve_series(rows)
    assert series["error on new data"] == [(10, 300.0)]
    assert series["test split"] == [(10, 80.0)]
    assert series["train"] == [(10, 50.0), (16, 40.0)]
    assert "validation set" not in series


def test_train_summary_reads_old_and_new_keys() -> None:
    old = TrainSummary.from_json({"potential": "p", "n_train": 3, "test_rmse_forces": 9.0})
    assert old.new_data_rmse_forces is None
    new = TrainSummary(n_train=3, test_rmse_forces=9.0, new_data_rmse_forces=120.0, n_new_data=4)
    assert TrainSummary.from_json(new.to_json()) == new
    assert "new data 120.0 on 4" in new.describe() and "test split 9.0" in new.describe()


def test_force_weights_survive_labeling_and_export(tmp_path: Path) -> None:
    from mlip_autopipec.core import keys
    from mlip_autopipec.core.database import DatabaseManager, LabelUpdate
    from mlip_autopipec.orchestration.campaign import Campaign, CampaignLayout
    from mlip_autopipec.orchestration.importing import export_labeled

    config = config_from_dict(
        {**copy.deepcopy(MINIMAL_CONFIG), "workflow": {"work_dir": str(tmp_path / "work")}},
        base_dir=tmp_path,
    )
    database = DatabaseManager(tmp_path / "db.db", 1.0, ["Si"])
    atoms = bulk("Si", "diamond", a=5.43)
    weights = {keys.FORCE_WEIGHTS: [1.0, 0.0]}
    (row_id,) = database.add_structures([atoms], keys.CANDIDATE, 1, "md:extract", data=[weights])
    database.set_status([row_id], keys.SELECTED)
    database.set_status([row_id], keys.LABELING)
    update = LabelUpdate(row_id, keys.LABELED, energy=-10.0, forces=np.zeros((2, 3)))
    database.store_results([update])
    assert database.get(row_id).data[keys.FORCE_WEIGHTS] == [1.0, 0.0]
    campaign = Campaign(config, database, CampaignLayout(tmp_path / "work"))
    export_labeled(campaign, tmp_path / "out.extxyz")
    assert ase.io.read(tmp_path / "out.extxyz").arrays["force_weights"].tolist() == [1.0, 0.0]
    # ... and come back with a re-import and in a validation set made from the export
    from mlip_autopipec.orchestration.importing import import_files
    from mlip_autopipec.training.evaluation import read_labeled_structures

    other = Campaign(
        config, DatabaseManager(tmp_path / "other.db", 1.0, ["Si"]), CampaignLayout(tmp_path / "w")
    )
    assert import_files(other, [tmp_path / "out.extxyz"], keys.LABELED, 0) == (1, 0)
    (imported,) = other.database.select(**{keys.STATUS: keys.LABELED})
    assert imported.data[keys.FORCE_WEIGHTS] == [1.0, 0.0]
    (scored,) = read_labeled_structures(tmp_path / "out.extxyz")
    assert list(scored.force_weights or []) == [1.0, 0.0]
