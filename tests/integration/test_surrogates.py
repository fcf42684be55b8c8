"""The real surrogates: CHGNet with its bundled weights, and a tiny MACE model trained here."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.config import SurrogateConfig, config_from_dict
from mlip_autopipec.core import keys
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.database import open_database
from mlip_autopipec.orchestration.exploration import run_exploration
from mlip_autopipec.surrogate import (
    Surrogate,
    SurrogateError,
    SurrogateFailure,
    SurrogatePrediction,
    create_surrogate,
)
from mlip_autopipec.surrogate.chgnet_wrapper import CHGNET_VERSION, load_chgnet
from mlip_autopipec.surrogate.mace_wrapper import MaceWrapper

MACE_RUN_TRAIN = Path(sys.executable).parent / "mace_run_train"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("network access is disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def si_structures() -> list[Atoms]:
    rng = np.random.default_rng(0)
    cubic = bulk("Si", "diamond", a=5.43, cubic=True)
    rattled = cubic.repeat((2, 1, 1))
    rattled.positions += rng.normal(0, 0.05, size=rattled.positions.shape)
    vacancy = cubic.copy()
    del vacancy[3]
    slab = bulk("Si", "diamond", a=5.43)
    slab.center(vacuum=6.0, axis=2)
    slab.pbc = (True, True, False)
    return [cubic, rattled, vacancy, slab]


def successes(results: list[SurrogatePrediction | SurrogateFailure]) -> list[SurrogatePrediction]:
    assert all(isinstance(result, SurrogatePrediction) for result in results), results
    return [result for result in results if isinstance(result, SurrogatePrediction)]


def assert_finite(predictions: list[SurrogatePrediction], structures: list[Atoms]) -> None:
    widths = {len(prediction.descriptor) for prediction in predictions}
    assert len(widths) == 1 and widths.pop() > 0
    for prediction, atoms in zip(predictions, structures, strict=True):
        assert np.isfinite(prediction.energy)
        assert prediction.forces.shape == (len(atoms), 3)
        assert np.all(np.isfinite(prediction.forces))
        assert np.all(np.isfinite(prediction.descriptor))


@pytest.fixture(scope="session")
def chgnet() -> Surrogate:
    return create_surrogate(SurrogateConfig(torch_threads=2, batch_size=3), ["Si"])


def test_chgnet_loads_and_predicts_offline(no_network: None) -> None:
    from pymatgen.io.ase import AseAtomsAdaptor

    model = load_chgnet.__wrapped__(CHGNET_VERSION, "cpu")  # not the cached one: really load
    structure = AseAtomsAdaptor.get_structure(bulk("Si", "diamond", a=5.43))
    prediction = model.predict_structure(structure, task="e")
    assert -6.0 < float(prediction["e"]) < -4.5


def test_chgnet_gives_finite_energies_forces_and_descriptors(
    chgnet: Surrogate, no_network: None
) -> None:
    structures = si_structures()
    predictions = successes(chgnet.predict(structures))
    assert_finite(predictions, structures)
    assert len(predictions[0].descriptor) == 64
    assert -6.0 < predictions[0].energy_per_atom < -4.5
    assert predictions[0].max_force < 0.05  # perfect crystal
    assert predictions[3].energy_per_atom > predictions[0].energy_per_atom  # surface costs


def test_chgnet_results_do_not_depend_on_batching_or_atom_order(chgnet: Surrogate) -> None:
    structures = si_structures()
    alone = successes(chgnet.predict([structures[1]]))[0]
    batched = successes(chgnet.predict(structures))[1]
    order = np.random.default_rng(1).permutation(len(structures[1]))
    shuffled = successes(chgnet.predict([structures[1][order]]))[0]
    assert batched.energy == pytest.approx(alone.energy, abs=1e-4)
    assert np.allclose(batched.descriptor, alone.descriptor, atol=1e-4)
    assert np.allclose(shuffled.descriptor, alone.descriptor, atol=1e-4)
    assert np.allclose(shuffled.forces, alone.forces[order], atol=1e-4)


def test_chgnet_descriptor_has_one_block_per_configured_element() -> None:
    surrogate = create_surrogate(SurrogateConfig(), ["Ge", "Si"])
    silicon = bulk("Si", "diamond", a=5.43, cubic=True)
    mixed = silicon.copy()
    mixed.symbols[:4] = "Ge"
    pure, alloy = successes(surrogate.predict([silicon, mixed]))
    assert len(pure.descriptor) == len(alloy.descriptor) == 128
    assert np.all(pure.descriptor[:64] == 0) and np.any(pure.descriptor[64:] != 0)
    assert np.any(alloy.descriptor[:64] != 0)


def test_a_structure_the_model_cannot_handle_fails_alone(chgnet: Surrogate) -> None:
    isolated = Atoms("Si2", positions=[[0, 0, 0], [9, 9, 9]], cell=[20, 20, 20], pbc=True)
    results = chgnet.predict([bulk("Si", "diamond", a=5.43), isolated, bulk("Si", "fcc", a=3.9)])
    assert isinstance(results[0], SurrogatePrediction)
    assert isinstance(results[1], SurrogateFailure) and "isolated" in results[1].error
    assert isinstance(results[2], SurrogatePrediction)


def test_torch_threads_come_from_the_config(chgnet: Surrogate) -> None:
    import torch

    create_surrogate(SurrogateConfig(torch_threads=1), ["Si"])
    assert torch.get_num_threads() == 1
    create_surrogate(SurrogateConfig(torch_threads=2), ["Si"])
    assert torch.get_num_threads() == 2


def test_mace_without_a_model_fails_fast_naming_the_setting() -> None:
    config = SurrogateConfig.model_construct(name="mace")  # skips the config's own check
    with pytest.raises(SurrogateError, match="exploration.surrogate.model_path"):
        MaceWrapper(config, ["Si"])


def test_mace_foundation_model_offline_says_to_set_model_path(
    no_network: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # an empty MACE cache: no model yet
    config = SurrogateConfig(name="mace", foundation_model="small")
    with pytest.raises(SurrogateError, match="exploration.surrogate.model_path"):
        create_surrogate(config, ["Si"])


def chgnet_labeled_training_set(chgnet: Surrogate) -> list[Atoms]:
    rng = np.random.default_rng(5)
    frames = []
    for strain in (-0.02, -0.01, 0.0, 0.01, 0.02, 0.03):
        atoms = bulk("Si", "diamond", a=5.43 * (1 + strain), cubic=True)
        atoms.positions += rng.normal(0, 0.05, size=atoms.positions.shape)
        frames.append(atoms)
    for atoms, prediction in zip(frames, successes(chgnet.predict(frames)), strict=True):
        atoms.calc = SinglePointCalculator(
            atoms, energy=prediction.energy, forces=prediction.forces
        )
    return frames


@pytest.fixture(scope="session")
def tiny_mace_model(tmp_path_factory: pytest.TempPathFactory, chgnet: Surrogate) -> Path:
    """A real MACE model: a few CHGNet-labeled Si cells, two epochs of mace_run_train."""
    if not MACE_RUN_TRAIN.exists():
        pytest.skip("mace_run_train is not installed")
    folder = tmp_path_factory.mktemp("mace")
    frames = chgnet_labeled_training_set(chgnet)
    for atoms in frames:  # MACE reads labels from REF_* keys (plain `energy` clashes with ASE)
        atoms.info["REF_energy"] = atoms.get_potential_energy()
        atoms.arrays["REF_forces"] = atoms.get_forces()
        atoms.calc = None
    ase.io.write(folder / "train.xyz", frames, format="extxyz")
    command = [
        str(MACE_RUN_TRAIN), "--name=tiny", "--train_file=train.xyz", "--valid_fraction=0.34",
        "--model=MACE", "--num_channels=8", "--max_L=0", "--r_max=4.0", "--num_interactions=2",
        "--correlation=2", "--max_num_epochs=2", "--batch_size=2", "--valid_batch_size=2",
        "--E0s=average", "--energy_key=REF_energy", "--forces_key=REF_forces", "--device=cpu",
        "--default_dtype=float64", "--seed=1", "--plot=False", "--eval_interval=1",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"mace_run_train failed:\n{done.stderr[-3000:]}")
    return folder / "tiny.model"


def mace_config_dict(config_dict: dict[str, Any], model: Path, work: Path) -> dict[str, Any]:
    config_dict["exploration"] = {
        "generation": {
            "seed": 3,
            "volumetric_strains": [-0.02, 0.0, 0.02],
            "shear_strains": [0.03],
            "rattle_stdev": [0.05],
            "rattles_per_structure": 1,
            "vacancies": 1,
        },
        "surrogate": {"name": "mace", "model_path": str(model), "torch_threads": 2},
        "selection": {"n_select": 4},
        "anchors": {"enabled": False},  # picks only; anchors: test_anchors, test_workflow
    }
    config_dict["workflow"] = {"work_dir": str(work)}
    return config_dict


@pytest.mark.slow
def test_mace_model_from_the_config_runs_the_real_mace_code_path(
    tiny_mace_model: Path, config_dict: dict[str, Any], tmp_path: Path
) -> None:
    config = config_from_dict(mace_config_dict(config_dict, tiny_mace_model, tmp_path))
    surrogate = create_surrogate(config.exploration.surrogate, config.system.elements)
    assert isinstance(surrogate, MaceWrapper)
    assert surrogate.identity.startswith("mace:tiny.model:")
    structures = si_structures()
    predictions = successes(surrogate.predict(structures))
    assert_finite(predictions, structures)
    assert len(predictions[0].descriptor) == 2 * 8  # invariant features of both layers


@pytest.mark.slow
def test_mace_forces_are_minus_the_energy_gradient(tiny_mace_model: Path) -> None:
    surrogate = create_surrogate(SurrogateConfig(name="mace", model_path=tiny_mace_model), ["Si"])
    atoms = si_structures()[1]
    step = 1e-4
    plus, minus = atoms.copy(), atoms.copy()
    plus.positions[2, 0] += step
    minus.positions[2, 0] -= step
    base, up, down = successes(surrogate.predict([atoms, plus, minus]))
    assert -(up.energy - down.energy) / (2 * step) == pytest.approx(base.forces[2, 0], abs=1e-4)


@pytest.mark.slow
def test_explore_with_the_mace_surrogate(
    tiny_mace_model: Path, config_dict: dict[str, Any], tmp_path: Path
) -> None:
    config = config_from_dict(mace_config_dict(config_dict, tiny_mace_model, tmp_path))
    summary = run_exploration(Campaign.open(config), iteration=0)
    assert summary.selection is not None and summary.selection.selected == 4
    database = open_database(config)
    assert database.count(**{keys.STATUS: keys.SELECTED}) == 4
    (row,) = database.select(id=database.ids(**{keys.STATUS: keys.SELECTED})[0])
    assert row.key_value_pairs[keys.SURROGATE_MODEL].startswith("mace:tiny.model:")
    assert len(row.data[keys.DESCRIPTOR]) == 16
