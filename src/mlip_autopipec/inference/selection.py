"""D-optimal selection in the current ACE basis: MaxVol conditioned on the fit's active set.

This is `pace_select -a`: pyace's `select_structures_maxvol` runs MaxVol over the per-atom
B-basis projections of the candidates stacked on the active set's rows, and a candidate is
picked when some of its atoms enter the new maximum-volume set (ranked by how many do).

Only atoms with an extrapolation grade gamma > 1 w.r.t. the active set can grow its volume:
gamma is the largest factor by which swapping that atom in multiplies the volume. Candidates
whose every atom has gamma <= `GAMMA_TOLERANCE` are dropped before MaxVol, so they are never
picked, even when MaxVol's own start (an LU pivoting over all rows) would happen to land on
them. `GAMMA_TOLERANCE` is also MaxVol's `tol` (swap while a coefficient exceeds it): pyace's
default 1.01, i.e. a pick must grow the volume by more than 1%; exactly 1 would make MaxVol
chase rounding noise of the rows already in the set.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipec.core.cells import as_computed
from mlip_autopipec.core.quiet_imports import pyace_logging_untouched

logger = logging.getLogger(__name__)

GAMMA_TOLERANCE = 1.01


@dataclass(frozen=True)
class MaxVolSelection:
    indices: tuple[int, ...]
    """Picked candidates, the most informative first (MaxVol's order)."""
    gammas: tuple[float, ...]
    """Each pick's largest per-atom gamma w.r.t. the active set it was chosen against."""
    extrapolative: int
    """How many candidates had gamma > GAMMA_TOLERANCE (could be picked at all)."""


def select_maxvol(
    candidates: Sequence[Atoms],
    potential: Path,
    active_set: Path,
    max_count: int,
    gamma_tolerance: float = GAMMA_TOLERANCE,
) -> MaxVolSelection:
    """Up to `max_count` candidates that grow the active set's volume most; fewer when fewer
    lie outside it (never padded with candidates the potential already covers)."""
    if max_count <= 0 or not candidates:
        return MaxVolSelection((), (), 0)
    with pyace_logging_untouched():
        from pyace.activelearning import load_active_inverse_set
        from pyace.basis import ACEBBasisSet, BBasisConfiguration

    candidates = [as_computed(atoms) for atoms in candidates]
    basis = ACEBBasisSet(BBasisConfiguration(str(potential)))
    inverse = load_active_inverse_set(str(active_set))
    gammas = max_gamma_per_structure(candidates, basis, inverse)
    outside = np.flatnonzero(gammas > gamma_tolerance)
    picked = _maxvol_over(
        [candidates[i] for i in outside], basis, inverse, max_count, gamma_tolerance
    )
    indices = tuple(int(outside[i]) for i in picked)
    if len(indices) < max_count:
        logger.info(
            "MaxVol picked %d of %d wanted: %d of %d candidates lie outside the active set",
            len(indices),
            max_count,
            len(outside),
            len(candidates),
        )
    return MaxVolSelection(indices, tuple(float(gammas[i]) for i in indices), len(outside))


def max_gamma_per_structure(
    structures: Sequence[Atoms], basis: Any, active_inverse: dict[int, np.ndarray]
) -> np.ndarray:
    """The largest per-atom extrapolation grade of each structure (pyace's own formula)."""
    with pyace_logging_untouched():
        from pyace.activelearning import compute_B_projections, compute_extrapolation_grade

    projections, owners = compute_B_projections(
        basis, list(structures), return_structure_ind_dict=True
    )
    per_atom = compute_extrapolation_grade(projections, active_inverse)
    result = np.zeros(len(structures))
    for species, grades in per_atom.items():
        np.maximum.at(result, owners[species], grades)
    return result


def _maxvol_over(
    structures: list[Atoms],
    basis: Any,
    active_inverse: dict[int, np.ndarray],
    max_count: int,
    gamma_tolerance: float,
) -> list[int]:
    """Positions in `structures` that MaxVol picks, conditioned on the active set."""
    if not structures:
        return []
    import pandas as pd

    with pyace_logging_untouched():  # aceselect calls logging.basicConfig when imported
        from pyace.aceselect import select_structures_maxvol
        from pyace.activelearning import compute_A_active_inverse

    chosen = select_structures_maxvol(
        pd.DataFrame({"ase_atoms": structures}),
        basis,
        extra_A0_projections_dict=compute_A_active_inverse(active_inverse),
        batch_size_option="none",  # its batch mode writes interim_active_set.asi into the cwd
        gamma_tolerance=gamma_tolerance,
        max_structures=max_count,
        verbose=False,
    )
    return [int(i) for i in chosen.index]
