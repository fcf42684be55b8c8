"""Physical properties from energies, stresses and forces: pure functions, the same for the
potential and for DFT. Energies in eV, stresses in eV/Å^3 (ASE sign and Voigt order)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.units import GPa

J_PER_M2 = 16.021766  # 1 eV/Å^2 in J/m^2


@dataclass(frozen=True)
class Calculated:
    """What one side (potential or DFT) computed for one structure."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray | None = None


Results = dict[str, Calculated]  # by structure name


@dataclass(frozen=True)
class EOSResult:
    volumes: list[float]  # Å^3 per atom
    energies: list[float]  # eV per atom
    v0: float  # Å^3 per atom
    e0: float  # eV per atom
    bulk_modulus: float  # GPa
    a0: float  # Å, the reference lattice constant scaled to v0


def fit_eos(
    volumes: list[float], energies: list[float], a_reference: float, v_reference: float
) -> EOSResult:
    """Birch-Murnaghan fit (ASE) of per-atom E(V); a0 scales `a_reference` (the lattice
    constant at `v_reference`) isotropically to the fitted volume."""
    import warnings

    from ase.eos import EquationOfState

    with warnings.catch_warnings():  # a minimum outside the volumes: the caller notes it
        warnings.simplefilter("ignore")
        v0, e0, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    if not (np.isfinite(v0) and v0 > 0 and np.isfinite(b)):
        raise ValueError(f"no physical minimum (V0 {v0:.3g} Å^3/atom)")
    return EOSResult(
        volumes=[float(v) for v in volumes],
        energies=[float(e) for e in energies],
        v0=float(v0),
        e0=float(e0),
        bulk_modulus=float(b / GPa),
        a0=float(a_reference * (v0 / v_reference) ** (1 / 3)),
    )


def vacancy_formation_energy(e_perfect: float, n_perfect: int, e_defect: float) -> float:
    """E(N-1) - (N-1)/N E(N), in eV (relaxed or not, as the defect energy is)."""
    return float(e_defect - (n_perfect - 1) / n_perfect * e_perfect)


def surface_energy(e_slab: float, n_slab: int, e_bulk_per_atom: float, area: float) -> float:
    """Unrelaxed, two equal faces: (E_slab - N e_bulk) / 2A, in J/m^2."""
    return float((e_slab - n_slab * e_bulk_per_atom) / (2 * area) * J_PER_M2)


def radial_distribution(
    frames: list[Atoms], r_max: float, n_bins: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """g(r) averaged over frames (all pairs, minimum image via ASE's neighbour list)."""
    from ase.neighborlist import neighbor_list

    edges = np.linspace(0.0, r_max, n_bins + 1)
    shells = 4 / 3 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    total = np.zeros(n_bins)
    for atoms in frames:
        distances = neighbor_list("d", atoms, r_max)
        counts, _ = np.histogram(distances, bins=edges)
        density = len(atoms) / atoms.get_volume()
        total += counts / (len(atoms) * density * shells)
    centres = (edges[1:] + edges[:-1]) / 2
    return centres, total / max(len(frames), 1)


def rdf_peaks(r: np.ndarray, g: np.ndarray, count: int = 2) -> list[float]:
    """Positions of the `count` highest local maxima of g(r), by r."""
    inner = np.arange(1, len(g) - 1)
    maxima = inner[(g[inner] > g[inner - 1]) & (g[inner] >= g[inner + 1])]
    best = sorted(maxima, key=lambda i: g[i], reverse=True)[:count]
    return sorted(float(r[i]) for i in best)


def relative_error(
    predicted: float | None, reference: float | None, zero: float = 0.0
) -> float | None:
    """(predicted - reference) / |reference|; None when either is missing or both are zero
    (|value| <= `zero`): two zeros agree, they are no error."""
    if predicted is None or reference is None:
        return None
    if abs(reference) <= zero and abs(predicted) <= zero or reference == 0:
        return None
    return float((predicted - reference) / abs(reference))
