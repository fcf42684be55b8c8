"""Score a finished potential on labeled structures it was not trained on, with pyace's calculator.

Same units as pacemaker's own summary (metrics.py): energy RMSE in meV/atom on the energy minus
the fit's reference energies, force RMSE in meV/Å per Cartesian component. Atoms with force
weight 0 (the broken outer shell of a cut-out) are left out of the force RMSE, as they are
left out of the fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlip_autopipec.core.cells import as_computed
from mlip_autopipec.core.quiet_imports import pyace_calculator
from mlip_autopipec.training.dataset import FORCE_WEIGHTS_ARRAY, DatasetBuilder, LabeledStructure
from mlip_autopipec.training.metrics import ErrorSummary, MetricsError


def trained_row_ids(data_files: Sequence[Path]) -> set[int]:
    """Database ids of the structures in a fit's data files (train and test pickles)."""
    ids: set[int] = set()
    for path in data_files:
        if path.is_file():
            frame = pd.read_pickle(path, compression="gzip")
            ids.update(int(row_id) for row_id in frame["db_id"])
    return ids


def score(
    potential: Path,
    structures: Sequence[LabeledStructure],
    reference_energies: Mapping[str, float],
) -> ErrorSummary | None:
    """RMSEs of `potential` on `structures`; None when there are none."""
    if not structures:
        return None
    calculator = pyace_calculator(str(potential))
    builder = DatasetBuilder(reference_energies)
    energy_errors, force_errors = [], []
    for structure in structures:
        atoms = as_computed(structure.atoms)
        atoms.calc = calculator
        predicted = float(atoms.get_potential_energy())
        reference = builder.corrected_energy(structure.atoms, structure.energy)
        energy_errors.append((predicted - reference) / len(atoms))
        counted = structure.atom_weights > 0
        difference = np.asarray(atoms.get_forces()) - structure.forces
        force_errors.append(difference[counted].ravel())
    forces = np.concatenate(force_errors)
    summary = ErrorSummary(
        n_structures=len(structures),
        n_atoms=sum(len(s.atoms) for s in structures),
        rmse_energy=1e3 * float(np.sqrt(np.mean(np.square(energy_errors)))),
        rmse_forces=1e3 * float(np.sqrt(np.mean(np.square(forces)))) if forces.size else 0.0,
    )
    if not (np.isfinite(summary.rmse_energy) and np.isfinite(summary.rmse_forces)):
        raise MetricsError(f"{potential} predicts non-finite energies or forces")
    return summary


def read_labeled_structures(path: Path) -> list[LabeledStructure]:
    """Every frame of a labeled file (extxyz or anything ASE reads), numbered from 0."""
    import ase.io

    frames = ase.io.read(path, index=":")
    return [
        LabeledStructure(index, atoms, force_weights=_force_weights(atoms))
        for index, atoms in enumerate(frames)
    ]


def _force_weights(atoms: Any) -> list[float] | None:
    """The per-atom force weights an exported cut-out carries (None: every atom counts)."""
    weights = atoms.arrays.get(FORCE_WEIGHTS_ARRAY)
    return None if weights is None else [float(w) for w in weights]
