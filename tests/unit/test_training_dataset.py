"""DatasetBuilder, the stable split and the reference energies, on the recorded real Si data."""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.training.dataset import (
    TEST,
    TRAIN,
    DatasetBuilder,
    DatasetError,
    LabeledStructure,
    assign_split,
    fit_reference_energies,
)
from mlip_autopipec.training.splits import SplitEntry, decide_splits
from tests.conftest import DATA_DIR

SI_DATA = DATA_DIR / "si_labeled.extxyz"


@pytest.fixture(scope="module")
def si_structures() -> list[LabeledStructure]:
    frames = ase.io.read(SI_DATA, index=":")
    return [
        LabeledStructure(int(a.info["db_id"]), a, assign_split(str(a.info["db_id"]), 0.25))
        for a in frames
    ]


def test_split_is_a_pure_function_of_the_key() -> None:
    keys_ = [f"hash:{index:05d}" for index in range(4000)]
    first = [assign_split(key, 0.2) for key in keys_]
    assert first == [assign_split(key, 0.2) for key in keys_]
    fraction = first.count(TEST) / len(first)
    assert 0.17 < fraction < 0.23
    assert all(split == TRAIN for split in (assign_split(key, 0.0) for key in keys_))


def test_raising_test_fraction_only_moves_structures_into_test() -> None:
    keys_ = [f"id:{index}" for index in range(2000)]
    small = {key for key in keys_ if assign_split(key, 0.1) == TEST}
    large = {key for key in keys_ if assign_split(key, 0.3) == TEST}
    assert small and small < large


def test_split_rejects_fraction_outside_range() -> None:
    with pytest.raises(ValueError, match="test_fraction"):
        assign_split("x", 1.0)


def _record(row_id: int, structure_hash: str | None = None, split: str | None = None) -> SplitEntry:
    return SplitEntry(row_id, structure_hash, split)


def test_stored_split_is_kept_even_when_the_hash_says_otherwise() -> None:
    fresh = [_record(i, structure_hash=f"h{i}") for i in range(200)]
    splits, new = decide_splits(fresh, 0.3)
    assert new == splits and set(splits.values()) == {TRAIN, TEST}
    flipped = {TRAIN: TEST, TEST: TRAIN}
    stored = [
        _record(r.row_id, structure_hash=f"h{r.row_id}", split=flipped[splits[r.row_id]])
        for r in fresh[:100]
    ]
    again, new_again = decide_splits(stored + fresh[100:], 0.3)
    assert all(again[r.row_id] == flipped[splits[r.row_id]] for r in fresh[:100])
    assert set(new_again) == {r.row_id for r in fresh[100:]}
    assert all(again[i] == splits[i] for i in new_again)


def test_split_key_prefers_the_structure_hash() -> None:
    assert _record(7, structure_hash="abc").key == "hash:abc"
    assert _record(7).key == "id:7"


def _labeled(atoms: Atoms, energy: float, row_id: int) -> LabeledStructure:
    atoms = atoms.copy()
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=np.zeros((len(atoms), 3)))
    return LabeledStructure(row_id, atoms)


def test_reference_energies_recover_per_element_energies() -> None:
    true = {"Si": -107.3, "Ge": -103.9}
    structures = []
    for index, (n_si, n_ge) in enumerate([(2, 0), (1, 1), (3, 5), (0, 2), (4, 4)]):
        atoms = Atoms(["Si"] * n_si + ["Ge"] * n_ge, positions=np.eye(3)[[0] * (n_si + n_ge)])
        energy = n_si * true["Si"] + n_ge * true["Ge"]
        structures.append(_labeled(atoms, energy, index))
    fitted = fit_reference_energies(structures, ["Si", "Ge", "C"])
    assert set(fitted) == {"Si", "Ge"}
    assert fitted == pytest.approx(true, abs=1e-9)


def test_reference_energy_of_real_si_is_the_least_squares_solution(
    si_structures: list[LabeledStructure],
) -> None:
    reference = fit_reference_energies(si_structures, ["Si"])["Si"]
    counts = np.array([len(s.atoms) for s in si_structures], dtype=float)
    residuals = np.array([s.energy for s in si_structures]) - counts * reference
    assert abs(residuals @ counts) < 1e-6 * np.abs(residuals).sum() * counts.max()
    per_atom = [s.energy / len(s.atoms) for s in si_structures]
    assert min(per_atom) < reference < max(per_atom)


def test_pacemaker_reads_the_dataframe(
    si_structures: list[LabeledStructure], tmp_path: Path
) -> None:
    from pyace.preparedata import ACEDataset

    references = fit_reference_energies(si_structures, ["Si"])
    builder = DatasetBuilder(references)
    train = [s for s in si_structures if s.split == TRAIN]
    test = [s for s in si_structures if s.split == TEST]
    assert builder.write_pacemaker(train, tmp_path / "train.pckl.gzip") == len(train)
    builder.write_pacemaker(test, tmp_path / "test.pckl.gzip")
    config = {"filename": str(tmp_path / "train.pckl.gzip")}
    config["test_filename"] = str(tmp_path / "test.pckl.gzip")
    dataset = ACEDataset(config, cutoff=5.0, elements=["Si"], evaluator_name="pyace")
    assert len(dataset.fitting_data) == len(train) and len(dataset.test_data) == len(test)
    expected = [s.energy - len(s.atoms) * references["Si"] for s in train]
    assert dataset.fitting_data["energy_corrected"].to_numpy() == pytest.approx(expected)
    first = dataset.fitting_data.iloc[0]
    assert np.allclose(first["forces"], train[0].forces)
    assert first["name"] == f"row_{train[0].row_id}"


def test_extxyz_keeps_energy_forces_stress_and_split(
    si_structures: list[LabeledStructure], tmp_path: Path
) -> None:
    builder = DatasetBuilder({"Si": -107.0})
    path = tmp_path / "data.extxyz"
    assert builder.write_extxyz(si_structures, path) == len(si_structures)
    back = ase.io.read(path, index=":")
    for original, read in zip(si_structures, back, strict=True):
        assert read.get_potential_energy() == pytest.approx(original.energy, abs=1e-8)
        assert np.allclose(read.get_forces(), original.forces)
        assert original.stress is not None
        assert np.allclose(read.get_stress(), original.stress)
        assert read.info["db_id"] == original.row_id and read.info["split"] == original.split
        corrected = original.energy + 107.0 * len(original.atoms)
        assert read.info["energy_corrected"] == pytest.approx(corrected)


def test_builder_names_the_structure_with_bad_data() -> None:
    builder = DatasetBuilder({"Si": -107.0})
    unlabeled = LabeledStructure(12, bulk("Si"))
    with pytest.raises(DatasetError, match="structure 12: no DFT energy and forces"):
        builder.to_dataframe([unlabeled])
    nan = _labeled(bulk("Si"), float("nan"), 13)
    with pytest.raises(DatasetError, match="structure 13: .*not finite"):
        builder.to_dataframe([nan])
    with pytest.raises(DatasetError, match="no reference energy for Ge"):
        builder.to_dataframe([_labeled(bulk("Ge"), -200.0, 14)])


def test_a_slab_reaches_pacemaker_periodic_like_the_cell_pw_x_computed() -> None:
    """pacemaker refuses mixed periodicity; pw.x computed the slab with its vacuum, 3D-periodic."""
    from mlip_autopipec.generation.transforms import slab

    atoms = slab(bulk("Si", "diamond", a=5.43), (1, 1, 1), 4, 6.0)
    assert atoms.pbc.tolist() == [True, True, False]
    frame = DatasetBuilder({"Si": 0.0}).to_dataframe([_labeled(atoms, -10.0, 7)])
    written = frame["ase_atoms"][0]
    assert written.pbc.all()
    assert np.allclose(written.cell.array, atoms.cell.array)
    assert atoms.pbc.tolist() == [True, True, False]  # the stored structure is left as it is
