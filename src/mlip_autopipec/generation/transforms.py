"""Pure structure transformations; every random one takes its own numpy Generator."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

import numpy as np
from ase import Atoms
from ase.build import surface
from ase.neighborlist import neighbor_list

from mlip_autopipec.core.keys import KPOINT_CELL

SHEAR_PLANES = ((0, 1), (1, 2), (2, 0))


def rng_for(seed: int, *labels: object) -> np.random.Generator:
    """A generator of its own for (seed, generator name, parent ...): no shared global state.

    The labels are hashed, so adding a generator or a parent never shifts another's numbers.
    """
    text = "/".join(str(label) for label in (seed, *labels))
    entropy = int.from_bytes(hashlib.sha256(text.encode()).digest(), "little")
    return np.random.default_rng(entropy)


def strained(atoms: Atoms, strain: float) -> Atoms:
    """Volume strain: the volume scaled by 1 + strain, isotropically (positions follow)."""
    result = atoms.copy()
    result.set_cell(atoms.cell.array * (1.0 + strain) ** (1 / 3), scale_atoms=True)
    return result


def deformed(atoms: Atoms, strain: np.ndarray) -> Atoms:
    """The cell (and positions) under the strain tensor: cell @ (1 + strain)."""
    result = atoms.copy()
    result.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    return result


def with_kpoint_cell(atoms: Atoms) -> Atoms:
    """A copy that remembers its own cell as the one its k-mesh is taken from; strained,
    rattled and defective copies made from it keep that mesh."""
    result = atoms.copy()
    result.info[KPOINT_CELL] = atoms.cell.array.copy()
    return result


def sheared(atoms: Atoms, shear: float, plane: int) -> Atoms:
    """Simple shear x_a += shear * x_b for the plane (a, b) = SHEAR_PLANES[plane]."""
    a, b = SHEAR_PLANES[plane]
    gradient = np.eye(3)
    gradient[a, b] = shear
    result = atoms.copy()
    result.set_cell(atoms.cell.array @ gradient.T, scale_atoms=True)
    return result


def gaussian_rattle(atoms: Atoms, stdev: float, rng: np.random.Generator) -> Atoms:
    """Independent normal displacements of every Cartesian coordinate."""
    result = atoms.copy()
    result.positions = atoms.positions + rng.normal(0.0, stdev, size=(len(atoms), 3))
    return result


def mc_rattle(
    atoms: Atoms,
    stdev: float,
    rng: np.random.Generator,
    radii: np.ndarray,
    floor: float = 0.0,
    rounds: int = 10,
) -> Atoms:
    """Monte-Carlo rattle that keeps every pair at least max(r_i + r_j, floor) apart.

    Each round proposes a normal step (stdev / sqrt(rounds)) for all atoms at once; a move
    that brings its atom too close to another is taken back, repeatedly, until no moved atom
    is too close. The total displacement has roughly `stdev` per coordinate.
    """
    result = atoms.copy()
    pairs = _PairCheck(result, radii, floor)
    step = stdev / math.sqrt(rounds)
    for _ in range(rounds):
        before = result.positions.copy()
        trial = before + rng.normal(0.0, step, size=before.shape)
        moved = np.ones(len(atoms), dtype=bool)
        while moved.any():
            offenders = pairs.too_close(trial) & moved
            if not offenders.any():
                break
            trial[offenders] = before[offenders]
            moved &= ~offenders
        result.positions = trial
    return result


class _PairCheck:
    """Which atoms are too close to another, from a neighbour list with a skin.

    The list (pairs and periodic image shifts) is rebuilt only when some atom has moved more
    than half the skin since it was built, so each check is a few vectorized numpy passes.
    """

    def __init__(self, atoms: Atoms, radii: np.ndarray, floor: float, skin: float = 1.0) -> None:
        self.atoms = atoms
        self.radii = radii
        self.floor = floor
        self.skin = skin
        self.cutoff = max(2.0 * float(radii.max(initial=0.0)), floor)
        self._build(atoms.positions)

    def _build(self, positions: np.ndarray) -> None:
        probe = self.atoms.copy()
        probe.positions = positions
        i, j, shifts = neighbor_list("ijS", probe, self.cutoff + self.skin, self_interaction=False)
        self.i, self.j = i, j
        self.offsets = shifts @ self.atoms.cell.array
        self.limit = np.maximum(self.radii[i] + self.radii[j], self.floor)
        self.reference = positions.copy()

    def too_close(self, positions: np.ndarray) -> np.ndarray:
        if np.abs(positions - self.reference).max(initial=0.0) > self.skin / 2:
            self._build(positions)
        vectors = positions[self.j] - positions[self.i] + self.offsets
        close = np.einsum("ij,ij->i", vectors, vectors) < self.limit**2
        offenders = np.zeros(len(positions), dtype=bool)
        offenders[self.i[close]] = True
        return offenders


def with_vacancy(atoms: Atoms, rng: np.random.Generator) -> Atoms:
    """The structure with one randomly chosen atom removed."""
    result = atoms.copy()
    del result[int(rng.integers(len(atoms)))]
    return result


def composition_counts(composition: Mapping[str, float], n_sites: int) -> dict[str, int]:
    """Whole numbers of atoms per element closest to the fractions (largest remainder)."""
    total = sum(composition.values())
    exact = {element: n_sites * share / total for element, share in composition.items()}
    counts = {element: math.floor(value) for element, value in exact.items()}
    by_remainder = sorted(exact, key=lambda el: (-(exact[el] - counts[el]), list(exact).index(el)))
    for element in by_remainder[: n_sites - sum(counts.values())]:
        counts[element] += 1
    return counts


def random_alloy(atoms: Atoms, composition: Mapping[str, float], rng: np.random.Generator) -> Atoms:
    """Every site gets an element drawn without replacement to match the composition."""
    counts = composition_counts(composition, len(atoms))
    symbols = [element for element, count in counts.items() for _ in range(count)]
    result = atoms.copy()
    result.set_chemical_symbols([symbols[k] for k in rng.permutation(len(symbols))])
    return result


def slab(bulk: Atoms, miller: tuple[int, int, int], layers: int, vacuum: float) -> Atoms:
    """A slab cut along `miller`, `vacuum` Å on each side; periodic in-plane only."""
    result = surface(bulk, miller, layers, vacuum=vacuum)
    result.pbc = (True, True, False)
    result.wrap()
    return result
