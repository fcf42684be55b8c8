"""Physics anchors: the near-equilibrium manifold of each crystal, labeled in iteration 0.

pacemaker fits energies and forces, not stresses, so how the energy changes with volume and
strain near equilibrium is learned only from energies of strained cells. Selection never picks
these on its own (hot MD frames and rattled cells look more informative), so they are built
here and labeled whatever selection does: an E-V scan, uniaxial and shear strains, small
random displacements (the harmonic forces phonons come from) and a vacancy (what a vacancy
formation energy is learned from: selection picked no vacancy cell among the Si-Ge example's
81 labels, and its potential put silicon's vacancy 1.2 eV below DFT's).

All anchors of one crystal are built in the cell the campaign's bulk data is labeled in (its
first supercell, when small enough) and keep that cell's k-mesh (`transforms.with_kpoint_cell`):
energies per atom of two cells on two k-meshes differ by a few meV/atom at usual settings,
which is the whole strain energy of a 3 % strain. Anchors on the primitive cell's mesh beside
bulk data on the supercell's put that offset between the families, and a fit absorbs it by
bending the strain curve (the Si example's old anchors, fitted alone: C11 -26 %, C12 +27 %
with 2-atom and 8-atom cells, within 4 % with the 2-atom cells only).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from mlip_autopipec.config import AnchorsConfig, GenerationConfig, SystemConfig
from mlip_autopipec.generation import transforms
from mlip_autopipec.generation.builder import BaseStructure, GeneratedStructure, StructureBuilder

ANCHOR_VOLUME = "anchor:volume"
ANCHOR_STRAIN = "anchor:strain"
ANCHOR_DISPLACED = "anchor:displaced"
ANCHOR_ALLOY = "anchor:alloy"
ANCHOR_VACANCY = "anchor:vacancy"
ANCHOR_ORIGINS = (ANCHOR_VOLUME, ANCHOR_STRAIN, ANCHOR_DISPLACED, ANCHOR_ALLOY, ANCHOR_VACANCY)
MAX_ANCHOR_ATOMS = 16  # anchors are many small cells: a larger cell is not a cheap anchor
# Below this, a vacancy is a different material (a 4-atom fcc cell less one atom is 25 % empty).
MIN_VACANCY_CELL_ATOMS = 8


def is_anchor(origin: str) -> bool:
    return origin in ANCHOR_ORIGINS


def build_anchors(
    system: SystemConfig, generation: GenerationConfig, anchors: AnchorsConfig
) -> list[GeneratedStructure]:
    """Every anchor of every crystal of the campaign; the same for the same config."""
    if not anchors.enabled:
        return []
    builder = StructureBuilder(system, generation)
    result: list[GeneratedStructure] = []
    for base, cell in crystals(builder.base_structures(), generation):
        parent = transforms.with_kpoint_cell(cell)
        result += volume_scan(parent, anchors.volume_strains)
        result += strained_cells(parent, anchors.strains)
        result += displaced_cells(base.name, parent, generation.seed, anchors)
        result += vacancy_cells(parent) if anchors.vacancy else []
    return result + alloy_anchors(builder, anchors)


def alloy_anchors(builder: StructureBuilder, anchors: AnchorsConfig) -> list[GeneratedStructure]:
    """Each alloy composition near its equilibrium, unrattled at Vegard's lattice constant:
    the generator's first random arrangement in the first crystal's anchor cell, scaled by
    `alloy_volume_strains`, then `alloy_arrangements - 1` other arrangements, alternately in
    a column of primitive cells (its atoms see their own images in-plane: neighbor patterns
    the anchor cell cannot hold) and in the anchor cell; and the ordered cell (see
    `ordered_anchors`). A mixing energy is the alloy's energy where it sits; rattled cells
    and hot MD frames alone leave a fit free to put it 100 meV/atom off (the Si-Ge example
    before these: +152 meV/atom against DFT's +23), and one arrangement alone put ordered
    GeSi3 and zincblende GeSi 50-100 meV/atom off."""
    generation = builder.generation
    bases = builder.base_structures()
    if not generation.alloy_compositions or not bases or not anchors.alloy_volume_strains:
        return []
    cell = anchor_cell(bases[0], generation)
    if cell is None:
        return []
    label = f"{bases[0].name}/{'x'.join(map(str, generation.supercells[0]))}"
    cells = [(cell, label)]
    column = primitive_column(bases[0].surface_bulk, len(cell))
    if column is not None:
        cells.insert(0, (column, f"{bases[0].name}/column"))
    result = []
    for number in range(len(generation.alloy_compositions)):
        atoms, _ = builder.alloy_arrangement(cell, label, number, 0)
        for strain in sorted(set(anchors.alloy_volume_strains)):
            result.append(GeneratedStructure(transforms.strained(atoms, strain), ANCHOR_ALLOY))
        for arrangement in range(1, anchors.alloy_arrangements):
            parent, where = cells[(arrangement - 1) % len(cells)]
            atoms, _ = builder.alloy_arrangement(parent, where, number, arrangement)
            result.append(GeneratedStructure(atoms, ANCHOR_ALLOY))  # a repeat is stored once
    return result + ordered_anchors(builder, bases[0].surface_bulk, anchors)


def ordered_anchors(
    builder: StructureBuilder, primitive: Atoms, anchors: AnchorsConfig
) -> list[GeneratedStructure]:
    """Each alloy composition ordered on the fewest primitive cells that hold it (zincblende
    for x = 0.5 in diamond), at Vegard's lattice constant scaled by `alloy_volume_strains`
    on one k-mesh. Random arrangements of 8 atoms seldom are one (zincblende is 2 of the 70
    ways to put 4 Ge on 8 diamond sites), and without it fits of the same labels put ordered
    SiGe's mixing energy anywhere from +7 to +82 meV/atom off DFT. None for a cell beyond
    MAX_ANCHOR_ATOMS or a primitive cell that is not a fully periodic crystal."""
    if not primitive.pbc.all():
        return []
    result = []
    for number in range(len(builder.generation.alloy_compositions)):
        atoms = builder.ordered_alloy(primitive, number)
        if atoms is None or len(atoms) > MAX_ANCHOR_ATOMS:
            continue
        for strain in sorted(set(anchors.alloy_volume_strains)):
            result.append(GeneratedStructure(transforms.strained(atoms, strain), ANCHOR_ALLOY))
    return result


def primitive_column(primitive: Atoms, atoms: int) -> Atoms | None:
    """The primitive cell repeated along its third vector to `atoms` atoms (None: it cannot
    be, or the primitive cell is not a fully periodic crystal)."""
    if not primitive.pbc.all() or not len(primitive) or atoms % len(primitive):
        return None
    repeats = atoms // len(primitive)
    return primitive.repeat((1, 1, repeats)) if repeats > 1 else None


def anchor_cell(base: BaseStructure, generation: GenerationConfig) -> Atoms | None:
    """The cell a crystal's anchors are built in: its first configured supercell (where the
    campaign's bulk data lives, on the same k-mesh), else its own cell, else its primitive
    cell, whichever first is fully periodic with at most MAX_ANCHOR_ATOMS atoms; None when
    none is (an E-V scan of a slab, a cluster or a 64-atom liquid snapshot means nothing, and
    each anchor is a DFT label in iteration 0)."""
    supercells = [base.cell.repeat(tuple(s)) for s in generation.supercells[:1]]
    for cell in (*supercells, base.cell, base.surface_bulk):
        if cell.pbc.all() and 0 < len(cell) <= MAX_ANCHOR_ATOMS:
            return cell
    return None


def crystals(
    bases: list[BaseStructure], generation: GenerationConfig
) -> list[tuple[BaseStructure, Atoms]]:
    """The bases anchors are built for, with their anchor cell: one per seed file."""
    kept, files = [], set()
    for base in bases:
        cell = anchor_cell(base, generation)
        source = base.name.split("[")[0]
        if cell is not None and source not in files:
            kept.append((base, cell))
            files.add(source)
    return kept


def volume_scan(cell: Atoms, volume_strains: list[float]) -> list[GeneratedStructure]:
    return [
        GeneratedStructure(transforms.strained(cell, strain), ANCHOR_VOLUME)
        for strain in sorted(set(volume_strains))
    ]


def strained_cells(cell: Atoms, strains: list[float]) -> list[GeneratedStructure]:
    """+- uniaxial xx and +- engineering yz shear of each size."""
    result = []
    for size in sorted(set(strains)):
        for sign in (1.0, -1.0):
            uniaxial = np.zeros((3, 3))
            uniaxial[0, 0] = sign * size
            shear = np.zeros((3, 3))
            shear[1, 2] = shear[2, 1] = sign * size / 2
            for tensor in (uniaxial, shear):
                result.append(GeneratedStructure(transforms.deformed(cell, tensor), ANCHOR_STRAIN))
    return result


def displaced_cells(
    name: str, cell: Atoms, seed: int, anchors: AnchorsConfig
) -> list[GeneratedStructure]:
    """Small random displacements of the anchor cell."""
    if anchors.displacement <= 0 or len(cell) < 2:  # one atom: a displacement is a translation
        return []
    result = []
    for draw in range(anchors.displaced_cells):
        rng = transforms.rng_for(seed, "anchor", name, draw)
        atoms = transforms.gaussian_rattle(cell, anchors.displacement, rng)
        result.append(GeneratedStructure(atoms, ANCHOR_DISPLACED))
    return result


def vacancy_cells(cell: Atoms) -> list[GeneratedStructure]:
    """The anchor cell with one atom of each element removed, unrelaxed (its forces are the
    relaxation's start); none in a cell of fewer than MIN_VACANCY_CELL_ATOMS atoms."""
    if len(cell) < MIN_VACANCY_CELL_ATOMS:
        return []
    result = []
    symbols = cell.get_chemical_symbols()
    for element in dict.fromkeys(symbols):
        atoms = cell.copy()
        del atoms[symbols.index(element)]
        result.append(GeneratedStructure(atoms, ANCHOR_VACANCY))
    return result
