"""Cubic elastic constants by central differences, with the internal-strain (relaxed-ion)
correction from single-point data only.

Clamped ions: C_ij = d sigma_i / d eps_j from the +- strained cells of `structures.py`.
Relaxed ions: under a strain eps the ions of the primitive cell feel forces Lambda eps
(Lambda = dF/d eps, 3N numbers) and relax by u = Phi^+ Lambda eps, where Phi is the Gamma-point
force-constant matrix of the primitive cell; the energy drops by eps^2 Lambda Phi^+ Lambda / 2,
so C_relaxed = C_clamped - Lambda Phi^+ Lambda / V. The three uniform translations are
projected out of Phi before the pseudo-inverse. For the cubic prototypes a uniaxial strain
along a cube axis leaves every atom at a centre of symmetry of its site (no internal
forces), so only C44 needs the correction (diamond: the optical mode couples to yz shear).
"""

from __future__ import annotations

import numpy as np
from ase.units import GPa

Forces = np.ndarray  # (N, 3), eV/Å


def uniaxial_constants(
    strain: float, stress_plus: np.ndarray, stress_minus: np.ndarray
) -> tuple[float, float]:
    """C11, C12 (GPa) from the Voigt stresses (eV/Å^3, ASE sign) of the +-xx strained cells."""
    slope = (np.asarray(stress_plus) - np.asarray(stress_minus)) / (2 * strain) / GPa
    return float(slope[0]), float((slope[1] + slope[2]) / 2)


def shear_constant(strain: float, stress_plus: np.ndarray, stress_minus: np.ndarray) -> float:
    """Clamped-ion C44 (GPa) from the +-yz (engineering) sheared cells."""
    slope = (np.asarray(stress_plus) - np.asarray(stress_minus)) / (2 * strain) / GPa
    return float(slope[3])


def force_strain_coupling(strain: float, forces_plus: Forces, forces_minus: Forces) -> np.ndarray:
    """Lambda = dF/d eps (eV/Å per unit strain, flattened to 3N) by central differences."""
    return ((np.asarray(forces_plus) - np.asarray(forces_minus)) / (2 * strain)).ravel()


def gamma_force_constants(
    n_atoms: int, distance: float, displaced: dict[tuple[int, int], tuple[Forces, Forces]]
) -> np.ndarray:
    """Phi (3N x 3N, eV/Å^2) from the forces of the +- displaced primitive cells, keyed by
    (atom, axis) for every atom but the last; the last atom's columns follow from the
    acoustic sum rule (a uniform translation costs nothing), then Phi is symmetrised."""
    size = 3 * n_atoms
    phi = np.zeros((size, size))
    for (atom, axis), (plus, minus) in displaced.items():
        column = -(np.asarray(plus) - np.asarray(minus)).ravel() / (2 * distance)
        phi[:, 3 * atom + axis] = column
    last = n_atoms - 1
    for axis in range(3):
        others = [3 * atom + axis for atom in range(last)]
        phi[:, 3 * last + axis] = -phi[:, others].sum(axis=1)
    return (phi + phi.T) / 2


def internal_basis(n_atoms: int) -> np.ndarray:
    """An orthonormal basis (3N x 3N-3) of atomic displacements that move no centre of mass:
    the complement of the three uniform translations."""
    translations = np.zeros((3 * n_atoms, 3))
    for axis in range(3):
        translations[axis::3, axis] = 1.0
    basis, _ = np.linalg.qr(np.hstack([translations, np.eye(3 * n_atoms)]))
    return basis[:, 3 : 3 * n_atoms]


def internal_strain_correction(coupling: np.ndarray, phi: np.ndarray, volume: float) -> float:
    """Lambda Phi^+ Lambda / V in GPa: what relaxing the ions takes off a clamped constant.
    Phi is inverted on the internal displacements only (translations removed exactly)."""
    n_atoms = phi.shape[0] // 3
    if n_atoms < 2:
        return 0.0
    basis = internal_basis(n_atoms)
    reduced = basis.T @ phi @ basis
    projected = basis.T @ coupling
    solution = np.linalg.pinv(reduced, rcond=1e-8, hermitian=True) @ projected
    return float(projected @ solution / volume / GPa)


def optical_stability(phi: np.ndarray) -> float:
    """The smallest eigenvalue (eV/Å^2) of Phi on the internal displacements: negative means
    an unstable zone-centre mode, and then no relaxed-ion constant means anything."""
    n_atoms = phi.shape[0] // 3
    if n_atoms < 2:
        return float("inf")
    basis = internal_basis(n_atoms)
    return float(np.linalg.eigvalsh(basis.T @ phi @ basis).min())


def bulk_modulus_from_constants(c11: float, c12: float) -> float:
    """B = (C11 + 2 C12) / 3 (GPa), the local bulk modulus of a cubic crystal."""
    return float((c11 + 2 * c12) / 3)


def born_criteria(c11: float, c12: float, c44: float) -> dict[str, bool]:
    """The Born stability criteria of a cubic crystal, by name."""
    return {
        "C11 - C12 > 0": c11 - c12 > 0,
        "C11 + 2 C12 > 0": c11 + 2 * c12 > 0,
        "C44 > 0": c44 > 0,
    }
