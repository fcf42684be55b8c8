"""Pre-screening: turn away candidates a universal potential finds unphysical, before any DFT."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlip_autopipec.core.composition import Composition, EnergyReference
from mlip_autopipec.core.rejection import Rejection

MAX_FORCE = "max_force"
ENERGY_ABOVE_MIN = "energy_above_min"
SURROGATE_ERROR = "surrogate_error"
ONE_COMPOSITION: Composition = (("X", 1.0),)


def energy_reference(
    energies_per_atom: np.ndarray,
    max_forces: np.ndarray,
    max_force: float,
    compositions: Sequence[Composition] | None = None,
) -> EnergyReference:
    """The lowest energies per atom (per pure element and per composition) among structures
    whose forces pass, so one collapsed, exploding structure cannot set them."""
    energies = np.asarray(energies_per_atom, dtype=float)
    trusted = [bool(f <= max_force) for f in np.asarray(max_forces, dtype=float)]
    return EnergyReference.lowest(list(energies), _keys(compositions, len(energies)), trusted)


def _keys(compositions: Sequence[Composition] | None, count: int) -> list[Composition]:
    return list(compositions) if compositions is not None else [ONE_COMPOSITION] * count


def prescreen(
    energies_per_atom: np.ndarray,
    max_forces: np.ndarray,
    max_force: float,
    max_energy_above_min: float,
    compositions: Sequence[Composition] | None = None,
    reference: EnergyReference | None = None,
) -> list[Rejection | None]:
    """One verdict per structure: too large a force, or too high above the lowest energy it
    can be compared with (its own composition, or the pure elements: see EnergyReference).

    The reference defaults to the given structures whose forces pass. Without compositions
    every structure counts as one composition.
    """
    energies = np.asarray(energies_per_atom, dtype=float)
    forces = np.asarray(max_forces, dtype=float)
    keys = _keys(compositions, len(energies))
    if reference is None:
        reference = energy_reference(energies, forces, max_force, keys)
    verdicts: list[Rejection | None] = []
    for energy, force, key in zip(energies, forces, keys, strict=True):
        above = reference.above_lowest(float(energy), key)
        if not force <= max_force:
            verdicts.append(Rejection(MAX_FORCE, f"predicted {force:.2f} eV/Å > {max_force} eV/Å"))
        elif above is not None and not above <= max_energy_above_min:
            verdicts.append(
                Rejection(
                    ENERGY_ABOVE_MIN,
                    f"predicted {above:.3f} eV/atom above the lowest of its composition or "
                    f"the pure elements > {max_energy_above_min} eV/atom",
                )
            )
        else:
            verdicts.append(None)
    return verdicts
