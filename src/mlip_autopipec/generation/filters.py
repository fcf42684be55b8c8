"""Pre-DFT filters: pure checks that return why a structure is unfit, or None when it is fine."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.neighborlist import neighbor_list

from mlip_autopipec.config import FilterConfig
from mlip_autopipec.core.rejection import Rejection

TOO_CLOSE = "min_distance"
ASPECT_RATIO = "cell_aspect_ratio"
CELL_ANGLE = "cell_angle"
TOO_MANY_ATOMS = "max_atoms"


def scaled_radii(atoms: Atoms, scale: float) -> np.ndarray:
    """Per-atom radius: `scale` x covalent radius, so a pair's limit is the sum of the two."""
    return scale * covalent_radii[atoms.numbers]


def close_pairs(
    atoms: Atoms, radii: np.ndarray, floor: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j, distance, limit) closer than max(radius_i + radius_j, floor), both orders."""
    cutoff = max(2.0 * float(radii.max(initial=0.0)), floor)
    if (len(atoms) < 2 and not atoms.pbc.any()) or cutoff <= 0:
        empty = np.empty(0)
        return empty.astype(int), empty.astype(int), empty, empty
    i, j, d = neighbor_list("ijd", atoms, cutoff, self_interaction=False)
    limit = np.maximum(radii[i] + radii[j], floor)
    close = d < limit
    return i[close], j[close], d[close], limit[close]


def check_min_distance(atoms: Atoms, scale: float, floor: float = 0.0) -> Rejection | None:
    """Reject when two atoms are closer than `scale` x the sum of their covalent radii."""
    i, j, d, limit = close_pairs(atoms, scaled_radii(atoms, scale), floor)
    if len(d) == 0:
        return None
    worst = int(np.argmin(d / limit))
    return Rejection(
        TOO_CLOSE,
        f"atoms {i[worst]} and {j[worst]} are {d[worst]:.3f} Å apart, "
        f"closer than {limit[worst]:.3f} Å",
    )


def check_cell_shape(
    atoms: Atoms, max_aspect_ratio: float, min_cell_angle: float
) -> Rejection | None:
    """Reject needle- or pancake-shaped cells and cells with nearly parallel vectors.

    Only periodic directions count: a slab's vacuum direction is not part of the shape.
    The aspect ratio is the longest periodic vector over the smallest width of the cell.
    """
    vectors = atoms.cell.array[atoms.pbc]
    if len(vectors) < 2:
        return None
    lengths = np.linalg.norm(vectors, axis=1)
    angle = _smallest_angle(vectors, lengths)
    if angle < min_cell_angle:
        return Rejection(CELL_ANGLE, f"cell angle {angle:.1f}° is below {min_cell_angle}°")
    ratio = float(lengths.max() / _smallest_width(vectors, lengths))
    if ratio > max_aspect_ratio:
        return Rejection(ASPECT_RATIO, f"aspect ratio {ratio:.2f} is above {max_aspect_ratio}")
    return None


def _smallest_angle(vectors: np.ndarray, lengths: np.ndarray) -> float:
    """Smallest angle between two cell vectors, folded so that 170° counts as 10°."""
    cosines = (vectors @ vectors.T) / np.outer(lengths, lengths)
    upper = np.triu_indices(len(vectors), k=1)
    angles = np.degrees(np.arccos(np.clip(np.abs(cosines[upper]), 0.0, 1.0)))
    return float(angles.min())


def _smallest_width(vectors: np.ndarray, lengths: np.ndarray) -> float:
    """Smallest distance between opposite faces (3D) or edges (2D) of the cell."""
    if len(vectors) == 3:
        volume = abs(float(np.linalg.det(vectors)))
        areas = np.linalg.norm(np.cross(vectors, np.roll(vectors, -1, axis=0)), axis=1)
        return volume / float(areas.max())
    area = float(np.linalg.norm(np.cross(vectors[0], vectors[1])))
    return area / float(lengths.max())


def check_max_atoms(atoms: Atoms, max_atoms: int) -> Rejection | None:
    if len(atoms) > max_atoms:
        return Rejection(TOO_MANY_ATOMS, f"{len(atoms)} atoms, more than {max_atoms}")
    return None


def structure_filters(
    filters: FilterConfig, min_distance_floor: float = 0.0
) -> list[Callable[[Atoms], Rejection | None]]:
    """The configured checks, cheapest first."""
    return [
        lambda atoms: check_max_atoms(atoms, filters.max_atoms),
        lambda atoms: check_cell_shape(atoms, filters.max_aspect_ratio, filters.min_cell_angle),
        lambda atoms: check_min_distance(atoms, filters.min_distance_scale, min_distance_floor),
    ]


def first_rejection(
    atoms: Atoms, filters: FilterConfig, min_distance_floor: float = 0.0
) -> Rejection | None:
    """The first failed check for `atoms`, or None when it may go to the surrogate and DFT."""
    for check in structure_filters(filters, min_distance_floor):
        rejection = check(atoms)
        if rejection is not None:
            return rejection
    return None
