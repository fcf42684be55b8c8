"""The structures a validation computes, in two stages, built from the config.

Stage 1 (`scan_plan`): an E-V scan of the primitive cell around `system.lattice_constant`
(ASE's value when unset). Each side (potential, DFT) fits its own equilibrium volume to it.
Stage 2 (`equilibrium_plan`): everything else at that side's own equilibrium: strained cells
for C11, C12 (uniaxial xx) and C44 (pure yz shear, ions clamped), displaced primitive cells
for the Gamma-point force constants (the internal-strain correction to C44), the vacancy pair,
the bulk reference and slabs for surface energies, and phonopy's displaced supercells.

No E-V volume equals a volume of the training anchors (`ANCHOR_VOLUME_STRAINS`): a
validation that reruns a training structure tests nothing.

DFT settings are exactly those of the training labels. Every structure carries the k-point
cell its mesh is taken from (`keys.KPOINT_CELL`): the unstrained cell at the reference lattice
constant, so the E-V points, the strained cells and both sides' stage 2 share one mesh per cell
shape wherever a0 falls, as the anchors of the same crystal do in training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.build import bulk, surface

from mlip_autopipec.config import AnchorsConfig, SurfaceSpec, SystemConfig, ValidationConfig
from mlip_autopipec.core.keys import KPOINT_CELL
from mlip_autopipec.errors import UserError

CUBIC_PROTOTYPES = ("diamond", "fcc", "bcc", "sc", "rocksalt", "zincblende")
TWO_SPECIES_PROTOTYPES = ("rocksalt", "zincblende")
# Volume strains of generation's physics anchors by default (the primitive cell scaled).
ANCHOR_VOLUME_STRAINS = tuple(AnchorsConfig().volume_strains)
# Conventional cubic cell per primitive cell: turns a primitive volume into `a`.
PRIMITIVES_PER_CONVENTIONAL = {
    "fcc": 4,
    "diamond": 4,
    "rocksalt": 4,
    "zincblende": 4,
    "bcc": 2,
    "sc": 1,
}
GAMMA_DISPLACEMENT = 0.01  # Å, atoms displaced in the primitive cell for Gamma force constants


class ValidationSetupError(UserError):
    """The configured system cannot be validated (no prototype, ASE cannot build it)."""


@dataclass(frozen=True)
class ValidationPlan:
    """Named structures of one stage; `structures` keeps the order they are computed in.
    `primitive` is the primitive cell this stage's structures are built from."""

    primitive: Atoms
    prototype: str
    settings: ValidationConfig
    surfaces: list[SurfaceSpec]
    structures: dict[str, Atoms] = field(default_factory=dict)
    composition: str = ""  # what the table's rows name; "" in a one-material campaign
    repeats: int = 1  # prototype primitive cells in `primitive` (an ordered alloy's cell)

    def names(self, prefix: str) -> list[str]:
        return [name for name in self.structures if name.startswith(prefix)]

    @property
    def lattice_constant(self) -> float:
        return lattice_constant(self.primitive, self.prototype, self.repeats)

    def wants(self, name: str) -> bool:
        return name in self.settings.properties


def lattice_constant(primitive: Atoms, prototype: str, repeats: int = 1) -> float:
    """The conventional lattice constant of a primitive cell, or of `repeats` of them (what
    system.lattice_constant means) for the cubic prototypes; the in-plane one for hcp (cells
    are repeated along c first)."""
    cells = PRIMITIVES_PER_CONVENTIONAL.get(prototype)
    if cells is None:
        return float(primitive.cell.lengths()[0])
    return float((primitive.get_volume() / repeats * cells) ** (1 / 3))


def primitive_cell(system: SystemConfig, element: str | None = None) -> Atoms:
    """The prototype's primitive cell of `element` (default: the first) at its lattice
    constant (system.lattice_constant_of; ASE's value when unset); the compound of a
    two-species prototype."""
    if system.prototype is None:
        raise ValidationSetupError("validation needs system.prototype (a bulk crystal)")
    element = element or system.elements[0]
    if system.prototype in TWO_SPECIES_PROTOTYPES:
        name, a = "".join(system.elements[:2]), system.lattice_constant
    else:
        name, a = element, system.lattice_constant_of(element)
    try:
        return bulk(name, system.prototype, a=a)
    except (ValueError, KeyError) as error:
        raise ValidationSetupError(
            f"validation: ASE cannot build {system.prototype} {name} ({error}); "
            "set system.lattice_constant"
        ) from None


def pure_materials(system: SystemConfig) -> list[str]:
    """The elements validated as crystals of their own: each element of a one-species
    prototype, the first element (the compound) of a two-species one."""
    if system.prototype in TWO_SPECIES_PROTOTYPES:
        return system.elements[:1]
    return list(system.elements)


def material_scans(
    system: SystemConfig,
    settings: ValidationConfig,
    surfaces: list[SurfaceSpec],
    avoid: tuple[float, ...] = ANCHOR_VOLUME_STRAINS,
) -> list[ValidationPlan]:
    """Stage 1 of every pure crystal (the first is the campaign's main material); with more
    than one, each plan is named by its composition."""
    elements = pure_materials(system)
    named = len(elements) > 1
    return [
        scan_plan(system, settings, surfaces, avoid, element, element if named else "")
        for element in elements
    ]


def scan_plan(
    system: SystemConfig,
    settings: ValidationConfig,
    surfaces: list[SurfaceSpec],
    avoid: tuple[float, ...] = ANCHOR_VOLUME_STRAINS,
    element: str | None = None,
    composition: str = "",
) -> ValidationPlan:
    """Stage 1: the E-V scan around the reference lattice constant, clear of the volume
    strains `avoid` (the training anchors')."""
    primitive = primitive_cell(system, element)
    assert system.prototype is not None  # primitive_cell checked it
    plan = ValidationPlan(primitive, system.prototype, settings, list(surfaces), {}, composition)
    if plan.wants("eos"):
        plan.structures.update(eos_structures(primitive, settings, avoid))
    with_mesh_of(plan.structures, primitive.cell.array)
    return plan


def with_mesh_of(structures: dict[str, Atoms], cell: np.ndarray) -> None:
    """Every structure takes its k-mesh from `cell` (the same cell shape, unstrained, at the
    reference lattice constant)."""
    for atoms in structures.values():
        atoms.info[KPOINT_CELL] = np.array(cell, dtype=float)


def scaled_to_volume(primitive: Atoms, volume_per_atom: float) -> Atoms:
    """The primitive cell scaled isotropically, lengths rounded so that reruns give the same
    structure hashes."""
    factor = (volume_per_atom * len(primitive) / primitive.get_volume()) ** (1 / 3)
    factor = round(float(factor), 6)
    atoms = primitive.copy()
    atoms.set_cell(primitive.cell * factor, scale_atoms=True)
    return atoms


def equilibrium_plan(scan: ValidationPlan, volume_per_atom: float) -> ValidationPlan:
    """Stage 2: every other property at one side's own equilibrium volume (Å^3/atom)."""
    primitive = scaled_to_volume(scan.primitive, volume_per_atom)
    settings = scan.settings
    plan = ValidationPlan(
        primitive, scan.prototype, settings, scan.surfaces, composition=scan.composition
    )
    if plan.wants("elastic") and scan.prototype in CUBIC_PROTOTYPES:
        plan.structures.update(elastic_structures(primitive, settings.elastic_strain))
        plan.structures.update(gamma_displacements(primitive, GAMMA_DISPLACEMENT))
        with_mesh_of(plan.structures, scan.primitive.cell.array)
    _add_unstrained(plan, primitive)
    factor = (primitive.get_volume() / scan.primitive.get_volume()) ** (1 / 3)
    for atoms in plan.structures.values():
        if KPOINT_CELL not in atoms.info:  # unstrained: its own cell, at the reference scale
            atoms.info[KPOINT_CELL] = atoms.cell.array / factor
    return plan


def _add_unstrained(plan: ValidationPlan, primitive: Atoms) -> None:
    """The stage-2 structures whose cell is unstrained: vacancy, slabs, phonon supercells."""
    settings = plan.settings
    if plan.wants("vacancy"):
        plan.structures.update(vacancy_structures(primitive, settings.vacancy_supercell))
    if plan.wants("surface") and plan.surfaces:
        plan.structures["bulk"] = primitive.copy()
        plan.structures.update(slab_structures(primitive, plan.surfaces))
    if plan.wants("phonons"):
        from mlip_autopipec.validation.phonons import displaced_supercells

        plan.structures.update(
            displaced_supercells(primitive, settings.phonon_supercell, settings.phonon_displacement)
        )


def eos_volume_factors(
    settings: ValidationConfig, avoid: tuple[float, ...] = ANCHOR_VOLUME_STRAINS
) -> np.ndarray:
    """V / V_reference of the E-V points: `eos_points` evenly over 1 +- eos_volume_range; a
    point closer than a quarter step to an anchor's volume is moved to a quarter step from it
    (away from the anchor; outward for a point on it)."""
    spread = settings.eos_volume_range
    strains = np.linspace(-spread, spread, settings.eos_points)
    clearance = spread / (settings.eos_points - 1) / 2  # a quarter of the step
    for index, strain in enumerate(strains):
        for anchor in avoid:
            if abs(strain - anchor) < clearance:
                direction = np.sign(strain - anchor) or np.sign(strain) or 1.0
                strains[index] = anchor + direction * clearance
    return 1 + strains


def eos_structures(
    primitive: Atoms, settings: ValidationConfig, avoid: tuple[float, ...] = ANCHOR_VOLUME_STRAINS
) -> dict[str, Atoms]:
    structures = {}
    for index, factor in enumerate(eos_volume_factors(settings, avoid)):
        atoms = primitive.copy()
        atoms.set_cell(primitive.cell * factor ** (1 / 3), scale_atoms=True)
        structures[f"eos_{index}"] = atoms
    return structures


def uniaxial_strain(strain: float) -> np.ndarray:
    """xx strain `strain`: C11 from sigma_xx, C12 from sigma_yy and sigma_zz."""
    return np.array([[strain, 0, 0], [0, 0, 0], [0, 0, 0]], dtype=float)


def shear_strain(strain: float) -> np.ndarray:
    """Pure yz shear of engineering strain `strain` (symmetric, no rotation): C44."""
    return np.array([[0, 0, 0], [0, 0, strain / 2], [0, strain / 2, 0]], dtype=float)


def strained(atoms: Atoms, strain: np.ndarray) -> Atoms:
    """Homogeneously strained: the ions follow the cell (clamped)."""
    result = atoms.copy()
    result.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    return result


def elastic_structures(primitive: Atoms, strain: float) -> dict[str, Atoms]:
    return {
        "elastic_xx_plus": strained(primitive, uniaxial_strain(strain)),
        "elastic_xx_minus": strained(primitive, uniaxial_strain(-strain)),
        "elastic_yz_plus": strained(primitive, shear_strain(strain)),
        "elastic_yz_minus": strained(primitive, shear_strain(-strain)),
    }


def gamma_displacements(primitive: Atoms, distance: float) -> dict[str, Atoms]:
    """Each atom but the last displaced by +-`distance` along x, y, z inside the primitive
    cell (the last column of the force constants follows from translation invariance)."""
    structures = {}
    for atom in range(len(primitive) - 1):
        for axis in range(3):
            for sign, label in ((1, "plus"), (-1, "minus")):
                atoms = primitive.copy()
                atoms.positions[atom, axis] += sign * distance
                structures[f"gamma_{atom}_{'xyz'[axis]}_{label}"] = atoms
    return structures


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
