"""Pre-screening: turn away candidates a universal potential finds unphysical, before any DFT."""

from __future__ import annotations

import numpy as np

from mlip_autopipec.core.rejection import Rejection

MAX_FORCE = "max_force"
ENERGY_ABOVE_MIN = "energy_above_min"
SURROGATE_ERROR = "surrogate_error"


def reference_energy(
    energies_per_atom: np.ndarray, max_forces: np.ndarray, max_force: float
) -> float | None:
    """The lowest energy per atom among structures whose forces pass; None if none does."""
    passing = np.asarray(energies_per_atom)[np.asarray(max_forces) <= max_force]
    return float(passing.min()) if len(passing) else None


def prescreen(
    energies_per_atom: np.ndarray,
    max_forces: np.ndarray,
    max_force: float,
    max_energy_above_min: float,
    reference: float | None = None,
) -> list[Rejection | None]:
    """One verdict per structure: too large a force, or too high above the reference energy.

    The reference defaults to the lowest energy per atom among the given structures whose
    forces pass, so one collapsed, exploding structure cannot set it.
    """
    energies = np.asarray(energies_per_atom, dtype=float)
    forces = np.asarray(max_forces, dtype=float)
    if reference is None:
        reference = reference_energy(energies, forces, max_force)
    verdicts: list[Rejection | None] = []
    for energy, force in zip(energies, forces, strict=True):
        if not force <= max_force:
            verdicts.append(Rejection(MAX_FORCE, f"predicted {force:.2f} eV/Å > {max_force} eV/Å"))
        elif reference is not None and not energy - reference <= max_energy_above_min:
            verdicts.append(
                Rejection(
                    ENERGY_ABOVE_MIN,
                    f"predicted {energy - reference:.3f} eV/atom above the lowest "
                    f"> {max_energy_above_min} eV/atom",
                )
            )
        else:
            verdicts.append(None)
    return verdicts
