"""StructureBuilder: candidate structures from the `system` and `exploration.generation` config."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import ase.io
import numpy as np
from ase import Atoms
from ase.build import bulk

from mlip_autopipec.config import GenerationConfig, SystemConfig
from mlip_autopipec.core.ordered import ordered_alloy
from mlip_autopipec.errors import UserError
from mlip_autopipec.generation import transforms
from mlip_autopipec.generation.filters import scaled_radii

logger = logging.getLogger(__name__)

STRAIN = "builder:strain"
SHEAR = "builder:shear"
RATTLE = "builder:rattle"
MC_RATTLE = "builder:mc_rattle"
VACANCY = "builder:vacancy"
ALLOY = "builder:alloy"
SURFACE = "builder:surface"


@dataclass(frozen=True)
class GeneratedStructure:
    atoms: Atoms
    origin: str


@dataclass(frozen=True)
class BaseStructure:
    """A starting crystal: `cell` is repeated into supercells, `surface_bulk` is cut into slabs."""

    name: str
    cell: Atoms
    surface_bulk: Atoms


def plain_structure(atoms: Atoms) -> Atoms:
    """Only numbers, positions, cell and pbc: magnetic moments, charges, masses or a calculator
    in a seed file must not reach pw.x (`nspin = 2`, a NaN mass) or the generators."""
    return Atoms(
        numbers=atoms.numbers.copy(),
        positions=atoms.positions.copy(),
        cell=atoms.cell.array.copy(),
        pbc=atoms.pbc.copy(),
    )


class BuildError(UserError, ValueError):
    """The configuration does not describe a structure ASE can build; the message says why."""


class StructureBuilder:
    """Strained, sheared, rattled, vacancy, alloy and surface structures.

    The same seed and iteration give the same structures; another iteration gets fresh random
    displacements, vacancies and arrangements (the strained cells stay the same).
    """

    def __init__(
        self, system: SystemConfig, generation: GenerationConfig, iteration: int = 0
    ) -> None:
        self.system = system
        self.generation = generation
        self.iteration = iteration

    def rng(self, generator: str, *where: object) -> np.random.Generator:
        """A generator of its own per (seed, generator name, iteration, parent structure)."""
        return transforms.rng_for(self.generation.seed, generator, self.iteration, *where)

    def build(self) -> list[GeneratedStructure]:
        structures: list[GeneratedStructure] = []
        bases = self.base_structures()
        for number, base in enumerate(bases):
            for supercell in self.generation.supercells:
                parent = transforms.with_kpoint_cell(base.cell.repeat(supercell))
                label = f"{base.name}/{'x'.join(map(str, supercell))}"
                deformed = self.deformed(parent, label)
                structures += deformed
                structures += self.rattled(deformed, label)
                structures += self.vacancies(parent, label)
                if number == 0:  # alloys once, on the first crystal's lattice
                    structures += self.alloys(base.cell.repeat(supercell), label)
            structures += self.surfaces(base)
        logger.info("built %d structures", len(structures))
        return structures

    def base_structures(self) -> list[BaseStructure]:
        """The prototype (for a one-species prototype: each element's pure crystal at its own
        lattice constant), then every frame of every seed file."""
        bases = prototype_structures(self.system) if self.system.prototype else []
        for path in self.system.seed_structures:
            frames = ase.io.read(path, index=":")
            frames = frames if isinstance(frames, list) else [frames]
            for index, frame in enumerate(frames):
                plain = plain_structure(frame)
                bases.append(BaseStructure(f"{path.name}[{index}]", plain, plain))
        return bases

    def deformed(self, parent: Atoms, label: str) -> list[GeneratedStructure]:
        """Every volumetric strain, and each of those sheared by every shear strain."""
        rng = self.rng("shear", label)
        result = []
        for strain in self.generation.volumetric_strains:
            strained = transforms.strained(parent, strain)
            result.append(GeneratedStructure(strained, STRAIN))
            for shear in self.generation.shear_strains:
                plane = int(rng.integers(len(transforms.SHEAR_PLANES)))
                result.append(GeneratedStructure(transforms.sheared(strained, shear, plane), SHEAR))
        return result

    def rattled(self, parents: list[GeneratedStructure], label: str) -> list[GeneratedStructure]:
        """Gaussian (and Monte-Carlo) rattles of every deformed structure, per stdev."""
        gen = self.generation
        result = []
        for number, parent in enumerate(parents):
            for stdev in (s for s in gen.rattle_stdev if s > 0):
                for draw in range(gen.rattles_per_structure):
                    where = (label, number, stdev, draw)
                    rng = self.rng("rattle", *where)
                    atoms = transforms.gaussian_rattle(parent.atoms, stdev, rng)
                    result.append(GeneratedStructure(atoms, RATTLE))
                    if gen.mc_rattle:
                        rng = self.rng("mc_rattle", *where)
                        atoms = self._mc_rattle(parent.atoms, stdev, rng)
                        result.append(GeneratedStructure(atoms, MC_RATTLE))
        return result

    def _mc_rattle(self, atoms: Atoms, stdev: float, rng: np.random.Generator) -> Atoms:
        radii = scaled_radii(atoms, self.generation.filters.min_distance_scale)
        return transforms.mc_rattle(atoms, stdev, rng, radii, floor=self.system.min_distance)

    def vacancies(self, parent: Atoms, label: str) -> list[GeneratedStructure]:
        """Structures with one atom missing, lightly rattled so they are not all alike."""
        if len(parent) < 2:
            return []
        result = []
        for number in range(self.generation.vacancies):
            rng = self.rng("vacancy", label, number)
            atoms = self._light_rattle(transforms.with_vacancy(parent, rng), rng)
            result.append(GeneratedStructure(atoms, VACANCY))
        return result

    def alloys(self, parent: Atoms, label: str) -> list[GeneratedStructure]:
        """Per composition, `alloy_arrangements` random substitutional arrangements at the
        Vegard lattice constant (each lightly rattled), each strained, sheared and rattled
        like a pure parent."""
        result = []
        for number in range(len(self.generation.alloy_compositions)):
            for arrangement in range(self.generation.alloy_arrangements):
                where = (label, number, arrangement)
                atoms, rng = self.alloy_arrangement(parent, label, number, arrangement)
                result.append(GeneratedStructure(self._light_rattle(atoms, rng), ALLOY))
                deformed = self.deformed(atoms, "/".join(map(str, where)))
                result += deformed
                result += self.rattled(deformed, "/".join(map(str, where)))
        return result

    def alloy_arrangement(
        self, parent: Atoms, label: str, number: int, arrangement: int
    ) -> tuple[Atoms, np.random.Generator]:
        """Arrangement `arrangement` of alloy composition `number` on `parent`'s sites,
        unrattled at the Vegard lattice constant in its own k-point cell, and the random
        generator that drew it (the same for the same seed, label and iteration)."""
        composition = self.generation.alloy_compositions[number]
        scale = vegard_lattice_constant(self.system, composition) / parent_lattice(self.system)
        rng = self.rng("alloy", label, number, arrangement)
        atoms = transforms.random_alloy(parent, composition, rng)
        atoms.set_cell(atoms.cell.array * scale, scale_atoms=True)
        return transforms.with_kpoint_cell(atoms), rng

    def ordered_alloy(self, primitive: Atoms, number: int) -> Atoms | None:
        """Alloy composition `number` ordered on the fewest repeats of `primitive` (the
        validation's ordered cell, see core.ordered), at the Vegard lattice constant in its
        own k-point cell; None when no cell of up to 64 primitive cells holds it."""
        composition = self.generation.alloy_compositions[number]
        try:
            atoms, _ = ordered_alloy(primitive, composition)
        except ValueError:
            return None
        scale = vegard_lattice_constant(self.system, composition) / parent_lattice(self.system)
        atoms.set_cell(atoms.cell.array * scale, scale_atoms=True)
        return transforms.with_kpoint_cell(atoms)

    def _light_rattle(self, atoms: Atoms, rng: np.random.Generator) -> Atoms:
        stdevs = [s for s in self.generation.rattle_stdev if s > 0]
        return transforms.gaussian_rattle(atoms, min(stdevs), rng) if stdevs else atoms

    def surfaces(self, base: BaseStructure) -> list[GeneratedStructure]:
        result = []
        for spec in self.generation.surfaces:
            atoms = transforms.slab(base.surface_bulk, spec.miller, spec.layers, spec.vacuum)
            atoms = atoms.repeat((*spec.repeat, 1))
            result.append(GeneratedStructure(atoms, SURFACE))
        return result


TWO_SPECIES_PROTOTYPES = ("rocksalt", "zincblende")


def prototype_structure(system: SystemConfig) -> BaseStructure:
    """The prototype's conventional cell (for supercells) and primitive cell (for slabs), of
    the first element (or the first two, for a two-species prototype)."""
    return prototype_structures(system)[0]


def prototype_structures(system: SystemConfig) -> list[BaseStructure]:
    """One base per pure crystal: the compound of a two-species prototype, else each element
    at its own lattice constant."""
    prototype = system.prototype
    if prototype is None:
        raise BuildError("system.prototype is not set")
    if prototype in TWO_SPECIES_PROTOTYPES:
        return [_crystal(prototype, "".join(system.elements[:2]), system.lattice_constant)]
    return [
        _crystal(prototype, element, system.lattice_constant_of(element))
        for element in system.elements
    ]


def vegard_lattice_constant(system: SystemConfig, composition: Mapping[str, float]) -> float:
    """The composition-weighted mean of the pure crystals' lattice constants (Vegard's law)."""
    return sum(fraction * _lattice(system, el) for el, fraction in composition.items())


def parent_lattice(system: SystemConfig) -> float:
    """The lattice constant of the first base crystal, the one alloys are built from."""
    return _lattice(system, system.elements[0])


def _lattice(system: SystemConfig, element: str) -> float:
    assert system.prototype is not None
    crystal = _crystal(system.prototype, element, system.lattice_constant_of(element))
    return float(crystal.cell.cell.lengths()[0])


def _crystal(prototype: str, name: str, a: float | None) -> BaseStructure:
    try:
        if prototype == "hcp":
            cell = bulk(name, prototype, a=a, orthorhombic=True)
        else:
            cell = bulk(name, prototype, a=a, cubic=True)
        primitive = bulk(name, prototype, a=a)
    except (ValueError, KeyError) as error:
        raise BuildError(
            f"system: ASE cannot build {prototype} {name} ({error}); set "
            f"system.lattice_constants: {{{name}: ...}}"
        ) from None
    return BaseStructure(f"{prototype}-{name}", cell, primitive)
