"""EmbeddingExtractor: cut the local environments the potential does not know out of MD frames.

Around each atom whose gamma reached the threshold, atoms within `cutoff + buffer` are put
in a periodic cubic box of their own, large enough that the centre's neighbourhood within
the cutoff is exactly the original one. Small cells are kept whole instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms
from ase.neighborlist import neighbor_list
from ase.optimize import BFGS

EXTRACT_ORIGIN = "md:extract"


@dataclass(frozen=True)
class ExtractedEnvironment:
    atoms: Atoms
    centre: int  # index of the centre atom in the source frame
    gamma: float
    whole_cell: bool
    # Per-atom force weights for training (see cut_force_weights); None: every atom weighs 1.
    force_weights: np.ndarray | None = field(default=None, compare=False)

    @property
    def centre_in_environment(self) -> int:
        """Cut environments put their centre first; whole cells keep the frame's numbering."""
        return self.centre if self.whole_cell else 0


def perpendicular_widths(atoms: Atoms) -> np.ndarray:
    cell = atoms.cell.array
    volume = abs(np.linalg.det(cell))
    return np.array(
        [volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)]
    )


def select_centres(
    atoms: Atoms, gamma: np.ndarray, threshold: float, merge_radius: float
) -> list[int]:
    """Atoms with gamma >= threshold, highest first, dropping those near an already chosen one."""
    candidates = [int(i) for i in np.argsort(-gamma) if gamma[i] >= threshold]
    chosen: list[int] = []
    for index in candidates:
        if chosen:
            distances = atoms.get_distances(index, chosen, mic=True)
            if np.min(distances) < merge_radius:
                continue
        chosen.append(index)
    return chosen


def cut_environment(atoms: Atoms, centre: int, radius: float, min_distance: float) -> Atoms:
    """Atoms within `radius` of `centre` (periodic images included) in a cubic box of 2*radius.

    The centre sits in the middle. Atoms near the box faces that come closer than
    `min_distance` to a periodic image of another atom are removed, farthest first.
    """
    i, j, distance, offsets = neighbor_list("ijdD", atoms, radius)
    mine = i == centre
    vectors = np.vstack([[0.0, 0.0, 0.0], offsets[mine]])
    numbers = np.concatenate([[atoms.numbers[centre]], atoms.numbers[j[mine]]])
    side = 2.0 * radius
    environment = Atoms(numbers=numbers, positions=vectors + side / 2, cell=[side] * 3, pbc=True)
    return _remove_boundary_overlaps(environment, min_distance)


def cut_force_weights(environment: Atoms, cutoff: float) -> np.ndarray:
    """1 for atoms within `cutoff` of the centre (atom 0), 0 beyond: the neighbourhood of an
    outer atom is broken by the cut (missing neighbours, periodic images of the far side), so
    its DFT force would teach the potential an environment that never occurs in the material.
    The atoms within the cutoff are the ones the centre's environment is made of."""
    distances = np.linalg.norm(environment.positions - environment.positions[0], axis=1)
    return (distances <= cutoff).astype(float)


def _remove_boundary_overlaps(environment: Atoms, min_distance: float) -> Atoms:
    centre_position = environment.positions[0]
    while True:
        i, j = neighbor_list("ij", environment, min_distance)
        if len(i) == 0:
            return environment
        involved = np.unique(np.concatenate([i, j]))
        involved = involved[involved != 0]
        from_centre = np.linalg.norm(environment.positions[involved] - centre_position, axis=1)
        del environment[int(involved[np.argmax(from_centre)])]


def extract_environments(
    frame: Atoms,
    threshold: float,
    cutoff: float,
    buffer: float,
    min_distance: float,
    merge_radius: float | None = None,
) -> list[ExtractedEnvironment]:
    """One environment per (merged) extrapolative centre; the whole cell when it is small, or
    when a cut would hold as many atoms as the cell."""
    gamma = np.asarray(frame.arrays["gamma"], dtype=float)
    radius = cutoff + buffer
    centres = select_centres(frame, gamma, threshold, merge_radius or cutoff)
    if not centres:
        return []
    small = bool(np.all(perpendicular_widths(frame) <= 2 * radius))
    cuts = [] if small else [cut_environment(frame, c, radius, min_distance) for c in centres]
    # A cut of a thin cell (a slab, a narrow supercell) can hold more atoms than the cell
    # itself, periodic images included: DFT on the whole frame is then cheaper and exact.
    if small or any(len(cut) >= len(frame) for cut in cuts):
        whole = frame.copy()
        del whole.arrays["gamma"]
        return [ExtractedEnvironment(whole, centres[0], float(gamma[centres[0]]), True)]
    return [
        ExtractedEnvironment(
            cut, centre, float(gamma[centre]), False, cut_force_weights(cut, cutoff)
        )
        for centre, cut in zip(centres, cuts, strict=True)
    ]


@dataclass(frozen=True)
class EmbeddingExtractor:
    """Cuts the environments of extrapolative atoms out of MD frames (see the module doc)."""

    threshold: float
    cutoff: float
    buffer: float
    min_distance: float
    merge_radius: float | None = None

    def extract(self, frame: Atoms) -> list[ExtractedEnvironment]:
        return extract_environments(
            frame, self.threshold, self.cutoff, self.buffer, self.min_distance, self.merge_radius
        )


def deduplicate(vectors: np.ndarray, reference: np.ndarray | None, tolerance: float) -> list[int]:
    """Indices of `vectors` to keep: none closer than `tolerance` to a kept one or to `reference`.

    Distances are Euclidean on the given descriptors.
    """
    kept: list[int] = []
    for index, vector in enumerate(vectors):
        pool = [vectors[kept]] if kept else []
        if reference is not None and len(reference):
            pool.append(reference)
        if pool:
            others = np.vstack(pool)
            if np.min(np.linalg.norm(others - vector, axis=1)) < tolerance:
                continue
        kept.append(index)
    return kept


def relax_boundary(
    environment: Atoms, calculator: Any, core_radius: float, fmax: float = 0.5, steps: int = 20
) -> Atoms:
    """Relax the atoms farther than `core_radius` from the centre (atom 0); the core stays put.

    Cutting leaves the outer atoms with missing neighbours; a short relaxation with the
    current potential heals the surface while the environment of interest is unchanged.
    """
    relaxed = environment.copy()
    distances = relaxed.get_distances(0, range(len(relaxed)), mic=True)
    relaxed.set_constraint(FixAtoms(indices=np.flatnonzero(distances <= core_radius)))
    relaxed.calc = calculator
    BFGS(relaxed, logfile=None).run(fmax=fmax, steps=steps)
    relaxed.calc = None
    relaxed.set_constraint()
    return relaxed
