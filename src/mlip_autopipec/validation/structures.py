"""The structures a validation computes, built from the config: every one at the configured
lattice constant (or ASE's reference value), so the DFT side is labeled in one batch.

Protocol (the same on both sides, documented in README): E-V points scale the primitive cell
isotropically; elastic constants come from two strained primitive cells at the reference
lattice constant (central differences cancel its residual pressure; ions clamped); the vacancy
and the slabs are unrelaxed; phonons come from phonopy's displacements of a supercell.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.build import bulk, surface

from mlip_autopipec.config import SurfaceSpec, SystemConfig, ValidationConfig
from mlip_autopipec.errors import UserError

CUBIC_PROTOTYPES = ("diamond", "fcc", "bcc", "sc", "rocksalt", "zincblende")


class ValidationSetupError(UserError):
    """The configured system cannot be validated (no prototype, ASE cannot build it)."""


@dataclass(frozen=True)
class ValidationPlan:
    """Named structures per property; `structures` keeps the order they are computed in."""

    primitive: Atoms
    prototype: str
    settings: ValidationConfig
    surfaces: list[SurfaceSpec]
    structures: dict[str, Atoms] = field(default_factory=dict)

    def names(self, prefix: str) -> list[str]:
        return [name for name in self.structures if name.startswith(prefix)]


def primitive_cell(system: SystemConfig) -> Atoms:
    """The prototype's primitive cell at system.lattice_constant (ASE's value when unset)."""
    if system.prototype is None:
        raise ValidationSetupError("validation needs system.prototype (a bulk crystal)")
    two_species = system.prototype in ("rocksalt", "zincblende")
    name = "".join(system.elements[:2]) if two_species else system.elements[0]
    try:
        return bulk(name, system.prototype, a=system.lattice_constant)
    except (ValueError, KeyError) as error:
        raise ValidationSetupError(
            f"validation: ASE cannot build {system.prototype} {name} ({error}); "
            "set system.lattice_constant"
        ) from None


def build_plan(
    system: SystemConfig, settings: ValidationConfig, surfaces: list[SurfaceSpec]
) -> ValidationPlan:
    primitive = primitive_cell(system)
    assert system.prototype is not None  # primitive_cell checked it
    plan = ValidationPlan(primitive, system.prototype, settings, list(surfaces))
    wanted = set(settings.properties)
    if "eos" in wanted:
        plan.structures.update(eos_structures(primitive, settings))
    if "elastic" in wanted and system.prototype in CUBIC_PROTOTYPES:
        plan.structures.update(elastic_structures(primitive, settings.elastic_strain))
    if "vacancy" in wanted:
        plan.structures.update(vacancy_structures(primitive, settings.vacancy_supercell))
    if "surface" in wanted and surfaces:
        plan.structures["bulk"] = primitive.copy()
        plan.structures.update(slab_structures(primitive, surfaces))
    if "phonons" in wanted:
        from mlip_autopipec.validation.phonons import displaced_supercells

        plan.structures.update(
            displaced_supercells(primitive, settings.phonon_supercell, settings.phonon_displacement)
        )
    return plan


def eos_volume_factors(settings: ValidationConfig) -> np.ndarray:
    spread = settings.eos_volume_range
    return np.linspace(1 - spread, 1 + spread, settings.eos_points)


def eos_structures(primitive: Atoms, settings: ValidationConfig) -> dict[str, Atoms]:
    structures = {}
    for index, factor in enumerate(eos_volume_factors(settings)):
        atoms = primitive.copy()
        atoms.set_cell(primitive.cell * factor ** (1 / 3), scale_atoms=True)
        structures[f"eos_{index}"] = atoms
    return structures


def strain_matrix(strain: float) -> np.ndarray:
    """Uniaxial xx strain plus an engineering yz shear of the same size. For cubic symmetry
    normal and shear stresses do not couple, so one cell gives C11, C12 and C44."""
    return np.array([[strain, 0, 0], [0, 0, strain / 2], [0, strain / 2, 0]])


def strained(atoms: Atoms, strain: np.ndarray) -> Atoms:
    result = atoms.copy()
    result.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    return result


def elastic_structures(primitive: Atoms, strain: float) -> dict[str, Atoms]:
    return {
        "elastic_plus": strained(primitive, strain_matrix(strain)),
        "elastic_minus": strained(primitive, strain_matrix(-strain)),
    }


def vacancy_structures(primitive: Atoms, repeats: tuple[int, int, int]) -> dict[str, Atoms]:
    perfect = primitive.repeat(repeats)
    defect = perfect.copy()
    del defect[0]
    return {"vacancy_bulk": perfect, "vacancy_defect": defect}


def slab_name(spec: SurfaceSpec) -> str:
    return "surface_" + "".join(str(index) for index in spec.miller)


def slab_structures(primitive: Atoms, surfaces: list[SurfaceSpec]) -> dict[str, Atoms]:
    """Unrelaxed slabs, periodic in 3D with `vacuum` Å on each side (pw.x needs a 3D cell)."""
    slabs = {}
    for spec in surfaces:
        slab = surface(primitive, spec.miller, spec.layers, vacuum=spec.vacuum)
        slab.pbc = True
        slab.wrap()
        slabs[slab_name(spec)] = slab
    return slabs


def surface_area(slab: Atoms) -> float:
    """In-plane area (Å^2) of a slab cut by ase.build.surface (its normal is the third axis)."""
    return float(np.linalg.norm(np.cross(slab.cell[0], slab.cell[1])))


def common_kspacing(cells: list[Atoms], kspacing: float) -> float:
    """The largest k-spacing <= `kspacing` that gives every cell the same Monkhorst-Pack size
    (ceil(|b| / spacing)) along every axis: a mesh that jumps between E-V volumes or strains
    puts steps into E(V) and the stresses. Cells of very different shape keep their meshes."""
    if not cells:
        return kspacing
    lengths = [
        float(np.linalg.norm(b)) for atoms in cells for b in atoms.cell.reciprocal() * 2 * np.pi
    ]
    largest = max(lengths)
    points = int(np.ceil(largest / kspacing - 1e-9))
    return min(kspacing, largest / points * (1 + 1e-6))
