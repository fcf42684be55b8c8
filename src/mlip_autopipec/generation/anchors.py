"""Physics anchors: the near-equilibrium manifold of each crystal, labeled in iteration 0.

pacemaker fits energies and forces, not stresses, so how the energy changes with volume and
strain near equilibrium is learned only from energies of strained cells. Selection never picks
these on its own (hot MD frames and rattled cells look more informative), so they are built
here and labeled whatever selection does: an E-V scan, uniaxial and shear strains of the
smallest cell, and small random displacements (the harmonic forces phonons come from). Every
anchor of one crystal keeps that crystal's k-mesh (see `transforms.with_kpoint_cell`).
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
ANCHOR_ORIGINS = (ANCHOR_VOLUME, ANCHOR_STRAIN, ANCHOR_DISPLACED)
MAX_ANCHOR_ATOMS = 16  # anchors are many small cells: a larger cell is not a cheap anchor


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
    for base in crystals(builder.base_structures()):
        smallest = transforms.with_kpoint_cell(base.surface_bulk)
        result += volume_scan(smallest, anchors.volume_strains)
        result += strained_cells(smallest, anchors.strains)
        result += displaced_cells(base, generation, anchors)
    return result


def crystals(bases: list[BaseStructure]) -> list[BaseStructure]:
    """The bases anchors are built for: fully periodic cells of at most MAX_ANCHOR_ATOMS atoms
    (an E-V scan of a slab, a cluster or a 64-atom liquid snapshot means nothing, and each
    anchor is a DFT label in iteration 0), one per seed file."""
    kept, files = [], set()
    for base in bases:
        cell = base.surface_bulk
        source = base.name.split("[")[0]
        if cell.pbc.all() and 0 < len(cell) <= MAX_ANCHOR_ATOMS and source not in files:
            kept.append(base)
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
    base: BaseStructure, generation: GenerationConfig, anchors: AnchorsConfig
) -> list[GeneratedStructure]:
    """Small random displacements of the primitive cell and of the first configured supercell."""
    if anchors.displacement <= 0:
        return []
    cells = [base.surface_bulk] + [base.cell.repeat(s) for s in generation.supercells[:1]]
    result = []
    for number, cell in enumerate(cells):
        if not 1 < len(cell) <= MAX_ANCHOR_ATOMS:  # one atom: a displacement is a translation
            continue
        parent = transforms.with_kpoint_cell(cell)
        for draw in range(anchors.displaced_cells):
            rng = transforms.rng_for(generation.seed, "anchor", base.name, number, draw)
            atoms = transforms.gaussian_rattle(parent, anchors.displacement, rng)
            result.append(GeneratedStructure(atoms, ANCHOR_DISPLACED))
    return result
