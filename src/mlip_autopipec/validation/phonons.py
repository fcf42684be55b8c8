"""Phonons by finite displacements with phonopy (imported on first use): the displaced
supercells to compute, then frequencies at high-symmetry points and along ASE's band path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms

PREFERRED_POINTS = ("G", "X", "L")
BAND_POINTS = 80


@dataclass(frozen=True)
class PhononResult:
    """Frequencies (THz) per high-symmetry point and along the band path."""

    point_frequencies: dict[str, list[float]]
    band_x: list[float]
    band_frequencies: list[list[float]]
    special_x: list[float]
    special_labels: list[str]


def phonopy_setup(primitive: Atoms, supercell: tuple[int, int, int], distance: float) -> Any:
    """A Phonopy object with its (symmetry-reduced, deterministic) displacements generated."""
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unit_cell = PhonopyAtoms(
        symbols=primitive.get_chemical_symbols(),
        cell=primitive.cell.array,
        scaled_positions=primitive.get_scaled_positions(),
    )
    phonon = Phonopy(unit_cell, supercell_matrix=np.diag(supercell))
    phonon.generate_displacements(distance=distance)
    return phonon


def displaced_supercells(
    primitive: Atoms, supercell: tuple[int, int, int], distance: float
) -> dict[str, Atoms]:
    phonon = phonopy_setup(primitive, supercell, distance)
    structures = {}
    for index, cell in enumerate(phonon.supercells_with_displacements):
        atoms = Atoms(
            cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True
        )
        structures[f"phonon_{index:03d}"] = atoms
    return structures


def phonon_frequencies(
    primitive: Atoms,
    supercell: tuple[int, int, int],
    distance: float,
    forces: list[np.ndarray],
) -> PhononResult:
    """Frequencies from the forces on phonopy's displaced supercells, in their order."""
    phonon = phonopy_setup(primitive, supercell, distance)
    phonon.forces = np.array(forces)
    phonon.produce_force_constants()
    path = primitive.cell.bandpath(npoints=BAND_POINTS)
    special = path.special_points
    names = [name for name in PREFERRED_POINTS if name in special]
    names += [name for name in special if name not in names][: max(0, 3 - len(names))]
    at_points = _frequencies(phonon, [special[name] for name in names])
    band = _frequencies(phonon, path.kpts)
    x, special_x, labels = path.get_linear_kpoint_axis()
    return PhononResult(
        point_frequencies={
            name: list(map(float, f)) for name, f in zip(names, at_points, strict=True)
        },
        band_x=[float(value) for value in x],
        band_frequencies=[list(map(float, f)) for f in band],
        special_x=[float(value) for value in special_x],
        special_labels=list(labels),
    )


def _frequencies(phonon: Any, qpoints: Any) -> np.ndarray:
    phonon.run_qpoints(np.asarray(qpoints, dtype=float))
    return np.asarray(phonon.qpoints.frequencies)
