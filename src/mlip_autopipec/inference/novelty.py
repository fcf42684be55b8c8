"""Which extracted environments are new to the potential: judged in its own descriptor space.

Two environments are duplicates when the ACE projections (B-basis function values) of their
centre atoms differ by less than `DEDUP_RELATIVE_TOLERANCE` of a typical projection vector's
length; an environment is also dropped when its centre is that close to any atom of the
labeled data. The tolerance was chosen from the distribution of such distances for Si.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipec.core.cells import as_computed
from mlip_autopipec.core.quiet_imports import pyace_calculator
from mlip_autopipec.inference.extraction import ExtractedEnvironment, deduplicate, relax_boundary

DEDUP_RELATIVE_TOLERANCE = 0.005


def ace_calculator(potential_yaml: str) -> Any:
    return pyace_calculator(potential_yaml)


def projections(atoms: Atoms, calculator: Any) -> np.ndarray:
    """Per-atom ACE projections (B-basis function values): the potential's own descriptor."""
    probe = as_computed(atoms)
    probe.calc = calculator
    probe.get_potential_energy()
    return np.asarray(calculator.projections, dtype=float)


def relaxed_environments(
    environments: Sequence[ExtractedEnvironment], calculator: Any, core_radius: float
) -> list[ExtractedEnvironment]:
    """Cut environments with their outer atoms relaxed by the potential; whole cells as they are."""
    return [
        env
        if env.whole_cell
        else replace(env, atoms=relax_boundary(env.atoms, calculator, core_radius))
        for env in environments
    ]


def novel_environments(
    environments: Sequence[ExtractedEnvironment],
    labeled: Sequence[Atoms],
    calculator: Any,
    relative_tolerance: float = DEDUP_RELATIVE_TOLERANCE,
) -> list[int]:
    """Indices of `environments` unlike each other and unlike every atom of `labeled`."""
    if not environments:
        return []
    vectors = np.vstack(
        [projections(env.atoms, calculator)[env.centre_in_environment] for env in environments]
    )
    reference = np.vstack([projections(a, calculator) for a in labeled]) if labeled else None
    scale = float(np.mean(np.linalg.norm(vectors, axis=1))) or 1.0
    return deduplicate(vectors, reference, relative_tolerance * scale)
