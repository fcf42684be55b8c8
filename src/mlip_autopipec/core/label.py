"""One DFT label (energy, forces, stress) and the single place that decides whether it is sound."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mlip_autopipec.errors import UserError

VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))  # xx yy zz yz xz xy, ASE's order
# Beyond these no DFT label is physical (pseudopotential total energies stay within a few
# 10^4 eV/atom, forces of atoms nearly on top of each other within a few 10^2 eV/Å): a value
# outside is a unit or file error and would dominate any fit trained on it.
MAX_ENERGY_PER_ATOM = 1e5  # eV
MAX_FORCE = 1e3  # eV/Å
MAX_STRESS = 1e2  # eV/Å^3 (16 TPa)


class LabelError(UserError, ValueError):
    """A DFT label is missing or unsound; the message names where and what."""


@dataclass(frozen=True)
class Label:
    """Energy (eV), forces (n, 3) in eV/Å and stress (6, Voigt, eV/Å³) or None, all finite."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray | None = None

    @classmethod
    def from_results(cls, results: dict[str, Any], n_atoms: int, where: str) -> Label:
        """Build a checked label from a calculator's `results` for a structure of `n_atoms`."""
        if "energy" not in results or "forces" not in results:
            missing = [k for k in ("energy", "forces") if k not in results]
            raise LabelError(f"{where}: no DFT {' and '.join(missing)} in the results")
        energy = _energy(results["energy"], where)
        if n_atoms > 0 and abs(energy) / n_atoms > MAX_ENERGY_PER_ATOM:
            raise LabelError(
                f"{where}: energy {energy:.3g} eV is {abs(energy) / n_atoms:.3g} eV/atom, beyond "
                f"any DFT total energy ({MAX_ENERGY_PER_ATOM:g}); check the file's units"
            )
        forces = _forces(results["forces"], n_atoms, where)
        stress = results.get("stress")
        return cls(energy, forces, None if stress is None else _stress(stress, where))

    @classmethod
    def from_atoms(cls, atoms: Atoms, where: str) -> Label:
        """The label carried by `atoms.calc`, checked; LabelError naming `where` otherwise."""
        calc = atoms.calc
        results = getattr(calc, "results", None) if calc is not None else None
        if not results:
            raise LabelError(f"{where}: no DFT energy and forces (the structure has no results)")
        return cls.from_results(dict(results), len(atoms), where)

    def results(self) -> dict[str, Any]:
        """The label as calculator results (stress only when present)."""
        results: dict[str, Any] = {"energy": self.energy, "forces": self.forces.copy()}
        if self.stress is not None:
            results["stress"] = self.stress.copy()
        return results

    def attach(self, atoms: Atoms) -> Atoms:
        """A copy of `atoms` carrying exactly this label in a SinglePointCalculator."""
        if len(atoms) != len(self.forces):
            raise LabelError(
                f"label has forces for {len(self.forces)} atoms, structure has {len(atoms)}"
            )
        labeled = atoms.copy()
        labeled.calc = SinglePointCalculator(labeled, **self.results())
        return labeled


def _energy(value: Any, where: str) -> float:
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise LabelError(f"{where}: energy {value!r} is not a number") from None
    if array.size != 1:
        raise LabelError(f"{where}: energy has {array.size} values, expected one")
    energy = float(array.reshape(()))
    if not np.isfinite(energy):
        raise LabelError(f"{where}: energy is not finite ({energy})")
    return energy


def _array(value: Any, name: str, where: str) -> np.ndarray:
    try:
        return np.array(value, dtype=float)
    except (TypeError, ValueError):
        raise LabelError(f"{where}: {name} are not numbers") from None


def _forces(value: Any, n_atoms: int, where: str) -> np.ndarray:
    forces = _array(value, "forces", where)
    if forces.shape != (n_atoms, 3):
        raise LabelError(f"{where}: forces have shape {forces.shape}, expected ({n_atoms}, 3)")
    if not np.all(np.isfinite(forces)):
        raise LabelError(f"{where}: forces are not finite")
    largest = float(np.max(np.linalg.norm(forces, axis=1))) if n_atoms else 0.0
    if largest > MAX_FORCE:
        raise LabelError(
            f"{where}: a force of {largest:.3g} eV/Å is beyond any DFT force ({MAX_FORCE:g}); "
            "check the file's units"
        )
    return forces


def _stress(value: Any, where: str) -> np.ndarray:
    stress = _array(value, "stress components", where)
    if stress.shape == (3, 3):
        if not np.allclose(stress, stress.T, rtol=1e-6, atol=1e-8, equal_nan=True):
            raise LabelError(f"{where}: 3x3 stress is not symmetric")
        stress = np.array([stress[i, j] for i, j in VOIGT])
    if stress.shape != (6,):
        raise LabelError(
            f"{where}: stress has shape {stress.shape}, expected 6 (Voigt) or 3x3 components"
        )
    if not np.all(np.isfinite(stress)):
        raise LabelError(f"{where}: stress is not finite")
    if float(np.max(np.abs(stress))) > MAX_STRESS:
        raise LabelError(
            f"{where}: a stress of {float(np.max(np.abs(stress))):.3g} eV/Å^3 is beyond any "
            f"DFT stress ({MAX_STRESS:g}); check the file's units"
        )
    return stress
