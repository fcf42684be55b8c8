"""Label.from_atoms: the one validator of a DFT label, with the messages a user sees."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.core.label import Label, LabelError
from mlip_autopipec.errors import UserError


def silicon(**results: Any) -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43)
    if results:
        atoms.calc = SinglePointCalculator(atoms)
        atoms.calc.results.update(results)
    return atoms


def test_a_sound_label_round_trips_through_attach() -> None:
    forces = np.arange(6.0).reshape(2, 3)
    label = Label.from_atoms(silicon(energy=-215.0, forces=forces, magmoms=[1, 1]), "x")
    assert label.energy == -215.0 and np.array_equal(label.forces, forces) and label.stress is None
    labeled = label.attach(bulk("Si", "diamond", a=5.43))
    assert set(labeled.calc.results) == {"energy", "forces"}
    assert labeled.get_potential_energy() == -215.0


def test_3x3_stress_becomes_voigt_in_ases_order() -> None:
    full = np.array([[1.0, 6.0, 5.0], [6.0, 2.0, 4.0], [5.0, 4.0, 3.0]])
    label = Label.from_atoms(silicon(energy=-1.0, forces=np.zeros((2, 3)), stress=full), "x")
    assert label.stress is not None and label.stress.tolist() == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ({}, "f.xyz[2]: no DFT energy and forces (the structure has no results)"),
        ({"energy": -1.0}, "f.xyz[2]: no DFT forces in the results"),
        ({"forces": np.zeros((2, 3))}, "f.xyz[2]: no DFT energy in the results"),
        ({"energy": np.nan, "forces": np.zeros((2, 3))}, "f.xyz[2]: energy is not finite (nan)"),
        ({"energy": "high", "forces": np.zeros((2, 3))}, "energy 'high' is not a number"),
        ({"energy": [1.0, 2.0], "forces": np.zeros((2, 3))}, "energy has 2 values, expected one"),
        ({"energy": -1.0, "forces": np.zeros((3, 3))}, "forces have shape (3, 3), expected (2, 3)"),
        ({"energy": -1.0, "forces": np.full((2, 3), np.inf)}, "f.xyz[2]: forces are not finite"),
        (
            {"energy": -1.0, "forces": np.zeros((2, 3)), "stress": np.zeros(5)},
            "stress has shape (5,), expected 6 (Voigt) or 3x3 components",
        ),
        (
            {"energy": -1.0, "forces": np.zeros((2, 3)), "stress": [0, 0, np.nan, 0, 0, 0]},
            "f.xyz[2]: stress is not finite",
        ),
        (
            {"energy": -1.0, "forces": np.zeros((2, 3)), "stress": np.triu(np.ones((3, 3)))},
            "f.xyz[2]: 3x3 stress is not symmetric",
        ),
    ],
)
def test_unsound_labels_are_refused_naming_where_and_what(
    results: dict[str, Any], message: str
) -> None:
    atoms = silicon(**results) if results else silicon()
    with pytest.raises(LabelError) as caught:
        Label.from_atoms(atoms, "f.xyz[2]")
    assert message in str(caught.value) and str(caught.value).startswith("f.xyz[2]: ")
    assert isinstance(caught.value, UserError)


def test_attach_refuses_a_structure_of_another_size() -> None:
    label = Label(energy=-1.0, forces=np.zeros((3, 3)))
    with pytest.raises(LabelError, match="forces for 3 atoms, structure has 2"):
        label.attach(bulk("Si", "diamond", a=5.43))


@pytest.mark.parametrize(
    ("results", "why"),
    [
        ({"energy": 1e300, "forces": np.zeros((2, 3))}, "beyond any DFT total energy"),
        ({"energy": -10.0, "forces": np.full((2, 3), 1e6)}, "beyond any DFT force"),
        (
            {"energy": -10.0, "forces": np.zeros((2, 3)), "stress": np.full(6, 1e4)},
            "beyond any DFT stress",
        ),
    ],
)
def test_labels_of_no_physical_magnitude_are_refused(results: dict, why: str) -> None:
    with pytest.raises(LabelError, match=why):
        Label.from_results(results, 2, "row 1")
