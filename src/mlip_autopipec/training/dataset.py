"""DatasetBuilder: labeled structures -> pacemaker's DataFrame pickle and extxyz.

Everything here works on plain data (Atoms carrying a SinglePointCalculator and the database id);
it never opens the database. The train/test split is a pure function of a stable key, so a
structure assigned to the test set stays there in every iteration.

Weights: every structure gets pacemaker's `w_energy` (1.0) and per-atom `w_forces` columns
(1.0, or 0.0 for the atoms of a cut-out environment whose neighbourhood the cut broke). With
both columns present pacemaker applies no weighting policy of its own ("Both weighting columns
... are found" in its log); it divides the energy weights by their sum and the force weights
by theirs over train+test, so 1.0 everywhere is exactly its default uniform weighting, and
a zero weight takes an atom's force out of the loss.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import ase.io
import numpy as np
import pandas as pd
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.core.cells import as_computed
from mlip_autopipec.core.label import Label, LabelError
from mlip_autopipec.errors import UserError

logger = logging.getLogger(__name__)

WEIGHTS_ENERGY = "w_energy"  # pacemaker's column names (pyace.const)
WEIGHTS_FORCES = "w_forces"

Split = Literal["train", "test"]
TRAIN: Split = "train"
TEST: Split = "test"

FORCE_WEIGHTS_ARRAY = "force_weights"  # per-atom array of extxyz files we write and read

# Changing the salt would move structures between train and test: never change it.
_SPLIT_SALT = b"mlip-autopipec/split/v1:"


class DatasetError(UserError, ValueError):
    """Labeled data are unfit for training; the message names the structure and the problem."""


@dataclass(frozen=True)
class LabeledStructure:
    """One DFT-labeled structure as training sees it: its database id, atoms and split."""

    row_id: int
    atoms: Atoms
    split: Split = TRAIN
    force_weights: Sequence[float] | None = None  # per atom; None: 1.0 for every atom
    energy_weight: float = 1.0  # relative to 1 for ordinary data (anchors weigh more)

    @property
    def atom_weights(self) -> np.ndarray:
        """Per-atom force weights, checked: one finite non-negative value per atom."""
        if self.force_weights is None:
            return np.ones(len(self.atoms))
        weights = np.asarray(self.force_weights, dtype=float)
        if weights.shape != (len(self.atoms),):
            raise DatasetError(
                f"structure {self.row_id}: {weights.size} force weights for {len(self.atoms)} atoms"
            )
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise DatasetError(f"structure {self.row_id}: force weights must be finite and >= 0")
        return weights

    @property
    def label(self) -> Label:
        """The DFT label the structure carries, checked (DatasetError naming it otherwise)."""
        try:
            return Label.from_atoms(self.atoms, f"structure {self.row_id}")
        except LabelError as error:
            raise DatasetError(str(error)) from None

    @property
    def energy(self) -> float:
        return self.label.energy

    @property
    def forces(self) -> np.ndarray:
        return self.label.forces

    @property
    def stress(self) -> np.ndarray | None:
        return self.label.stress


def periodic(atoms: Atoms) -> np.ndarray:
    """The periodicity pacemaker is given: the cell as pw.x computed it (slabs included)."""
    return np.asarray(as_computed(atoms).pbc)


def assign_split(key: str, test_fraction: float) -> Split:
    """`test` for a fixed fraction of keys, decided by a hash: the same key, the same answer.

    The key should identify the structure for good (its structure hash or database id).
    Raising test_fraction only moves structures from train to test, never the other way.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    digest = hashlib.sha256(_SPLIT_SALT + key.encode()).digest()
    uniform = int.from_bytes(digest[:8], "big") / 2.0**64
    return TEST if uniform < test_fraction else TRAIN


def composition_matrix(atoms_list: Sequence[Atoms], elements: Sequence[str]) -> np.ndarray:
    """Number of atoms of each element (columns, in `elements` order) per structure (rows)."""
    matrix = np.zeros((len(atoms_list), len(elements)))
    column = {symbol: index for index, symbol in enumerate(elements)}
    for row, atoms in enumerate(atoms_list):
        for symbol in atoms.get_chemical_symbols():
            if symbol not in column:
                raise DatasetError(f"element {symbol} is not among {', '.join(elements)}")
            matrix[row, column[symbol]] += 1
    return matrix


def fit_reference_energies(
    structures: Sequence[LabeledStructure], elements: Sequence[str]
) -> dict[str, float]:
    """Per-element energies (eV) that best explain the total energies, by least squares.

    Subtracting them leaves a formation-like energy near zero per atom, which is what
    pacemaker fits best. Elements absent from the data get no entry.
    """
    if not structures:
        raise DatasetError("no labeled structures to fit reference energies on")
    present = [el for el in elements if any(el in s.atoms.symbols for s in structures)]
    matrix = composition_matrix([s.atoms for s in structures], present)
    energies = np.array([s.energy for s in structures])
    solution, *_ = np.linalg.lstsq(matrix, energies, rcond=None)
    return {symbol: float(value) for symbol, value in zip(present, solution, strict=True)}


class DatasetBuilder:
    """Turns labeled structures into the files the fitting tools read."""

    def __init__(self, reference_energies: Mapping[str, float]) -> None:
        self.reference_energies = dict(reference_energies)

    def corrected_energy(self, atoms: Atoms, energy: float) -> float:
        """Total energy minus the per-element reference energies (pacemaker's energy_corrected)."""
        missing = sorted(set(atoms.get_chemical_symbols()) - set(self.reference_energies))
        if missing:
            raise DatasetError(f"no reference energy for {', '.join(missing)}")
        return energy - sum(self.reference_energies[symbol] for symbol in atoms.symbols)

    def to_dataframe(self, structures: Iterable[LabeledStructure]) -> pd.DataFrame:
        """pacemaker's columns: ase_atoms, energy, forces, energy_corrected, w_energy, w_forces
        (+ name, db_id)."""
        rows = [self._row(structure) for structure in structures]
        columns = ["name", "db_id", "ase_atoms", "energy", "forces", "energy_corrected"]
        columns += [WEIGHTS_ENERGY, WEIGHTS_FORCES]
        return pd.DataFrame(rows, columns=columns)

    def _row(self, structure: LabeledStructure) -> dict[str, object]:
        label, atoms = structure.label, structure.atoms
        energy, forces = label.energy, label.forces
        plain = Atoms(
            numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=periodic(atoms)
        )
        return {
            "name": f"row_{structure.row_id}",
            "db_id": structure.row_id,
            "ase_atoms": plain,
            "energy": energy,
            "forces": forces,
            "energy_corrected": self.corrected_energy(atoms, energy),
            WEIGHTS_ENERGY: structure.energy_weight,
            WEIGHTS_FORCES: structure.atom_weights,
        }

    def write_pacemaker(self, structures: Iterable[LabeledStructure], path: Path) -> int:
        """Write the gzipped DataFrame pickle pacemaker reads; returns the number of rows."""
        frame = self.to_dataframe(structures)
        if frame.empty:
            raise DatasetError(f"{path.name}: no structures to write")
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_pickle(path, compression="gzip", protocol=4)
        logger.info("wrote %d structures to %s", len(frame), path)
        return len(frame)

    def write_extxyz(self, structures: Iterable[LabeledStructure], path: Path) -> int:
        """extxyz with energy, forces, stress (when known), db_id, split and energy_corrected."""
        frames = [self._extxyz_frame(structure) for structure in structures]
        path.parent.mkdir(parents=True, exist_ok=True)
        ase.io.write(path, frames, format="extxyz")
        return len(frames)

    def _extxyz_frame(self, structure: LabeledStructure) -> Atoms:
        atoms = structure.atoms
        frame = Atoms(
            numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=periodic(atoms)
        )
        results: dict[str, object] = {"energy": structure.energy, "forces": structure.forces}
        if structure.stress is not None:
            results["stress"] = structure.stress
        frame.calc = SinglePointCalculator(frame, **results)
        frame.arrays[FORCE_WEIGHTS_ARRAY] = structure.atom_weights
        frame.info.update(
            {
                "db_id": structure.row_id,
                "split": structure.split,
                "energy_corrected": self.corrected_energy(atoms, structure.energy),
            }
        )
        return frame


def choose_reference_energies(
    configured: Mapping[str, float] | None,
    previous: Mapping[str, float] | None,
    structures: Sequence[LabeledStructure],
    elements: Sequence[str],
) -> dict[str, float]:
    """Configured isolated-atom energies; else the ones the previous fit used (so energies stay
    comparable and up-fitting starts close); else a least-squares fit on the training set."""
    if configured is not None:
        return dict(configured)
    present = {symbol for s in structures for symbol in s.atoms.get_chemical_symbols()}
    if previous is not None and present <= set(previous):
        return dict(previous)
    return fit_reference_energies([s for s in structures if s.split == TRAIN], elements)
