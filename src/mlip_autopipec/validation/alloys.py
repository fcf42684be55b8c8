"""Alloys in the validation: lattice constants and mixing energies, each side at its own
equilibrium.

Each configured alloy composition is validated in two cells built from the first pure
crystal's primitive cell at the Vegard lattice constant of the pure crystals' references:
- ordered: the fewest primitive cells that hold the composition exactly, sites filled in
  order (zincblende for x = 0.5 in diamond); its own E-V scan gives the side's alloy a0 and
  E0 (stage 1);
- random: the fewest primitive cells with at least 8 atoms (2x2x1 in diamond, 2x2x2 in
  fcc), sites drawn with a fixed seed, one single point at the side's own ordered-alloy
  volume (stage 2).
Positions stay ideal (unrelaxed) on both sides. Mixing energies per atom are against each
pure element at its own equilibrium: E_mix = E(alloy) - sum_el x_el E0(el).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from mlip_autopipec.core.composition import composition, formula
from mlip_autopipec.core.keys import KPOINT_CELL
from mlip_autopipec.core.ordered import ORDERED_REPEATS, ordered_alloy
from mlip_autopipec.validation.checks import Check
from mlip_autopipec.validation.equilibrium import Equilibrium
from mlip_autopipec.validation.evaluate import Comparison, SideProperties
from mlip_autopipec.validation.properties import EOSResult, Results
from mlip_autopipec.validation.structures import (
    ValidationPlan,
    eos_structures,
    scaled_to_volume,
    with_mesh_of,
)

logger = logging.getLogger(__name__)

RANDOM_ATOMS = 8  # at least, in the random cell
RANDOM_SEED = 0
RANDOM = "random"
MEV = 1000.0


@dataclass(frozen=True)
class AlloyPlan:
    """Stage 1 of one alloy composition (its ordered cell's E-V scan, named by its
    formula) and the random cell stage 2 scales to each side's own volume."""

    scan: ValidationPlan
    fractions: dict[str, float]
    random: Atoms

    def random_at(self, volume_per_atom: float) -> dict[str, Atoms]:
        atoms = scaled_to_volume(self.random, volume_per_atom)
        atoms.info[KPOINT_CELL] = np.array(self.random.cell.array, dtype=float)
        return {RANDOM: atoms}


@dataclass
class AlloySide:
    """What one side gives for one alloy composition."""

    composition: str
    fractions: dict[str, float]
    lattice_constant: float
    fallback: bool = False
    eos: EOSResult | None = None
    random_energy: float | None = None  # eV/atom, at this side's own ordered-alloy volume
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def alloy_plans(
    compositions: list[dict[str, float]], pure_scans: dict[str, ValidationPlan]
) -> list[AlloyPlan]:
    """One plan per alloy composition; `pure_scans` by element, the first one's primitive
    cell is the parent lattice."""
    parent = next(iter(pure_scans.values()))
    plans = []
    for fractions in compositions:
        vegard = sum(x * pure_scans[element].lattice_constant for element, x in fractions.items())
        scale = vegard / parent.lattice_constant
        try:
            ordered, repeats = ordered_alloy(parent.primitive, fractions)
        except ValueError as error:
            logger.warning("alloy validation: %s; left out", error)
            continue
        ordered.set_cell(ordered.cell.array * scale, scale_atoms=True)
        scan = ValidationPlan(
            ordered,
            parent.prototype,
            parent.settings,
            [],
            eos_structures(ordered, parent.settings, avoid=()),
            formula(composition(ordered.get_chemical_symbols())),
            repeats,
        )
        with_mesh_of(scan.structures, ordered.cell.array)
        random = random_alloy(random_cell(parent.primitive), fractions)
        random.set_cell(random.cell.array * scale, scale_atoms=True)
        plans.append(AlloyPlan(scan, dict(fractions), random))
    return plans


def random_cell(primitive: Atoms) -> Atoms:
    """The fewest repeats of `primitive` with at least RANDOM_ATOMS sites."""
    for repeats in ORDERED_REPEATS:
        if len(primitive) * int(np.prod(repeats)) >= RANDOM_ATOMS:
            return primitive.repeat(repeats)
    return primitive.repeat(ORDERED_REPEATS[-1])


def random_alloy(cell: Atoms, fractions: Mapping[str, float]) -> Atoms:
    """`cell` with its sites drawn for `fractions` (rounded to whole atoms), fixed seed."""
    n_sites = len(cell)
    counts = {el: int(round(x * n_sites)) for el, x in fractions.items()}
    first = next(iter(counts))
    counts[first] += n_sites - sum(counts.values())
    symbols = [el for el, n in counts.items() for _ in range(n)]
    order = np.random.default_rng(RANDOM_SEED).permutation(n_sites)
    result = cell.copy()
    result.set_chemical_symbols([symbols[k] for k in order])
    return result


def alloy_side(side: str, plan: AlloyPlan, equilibrium: Equilibrium, random: Results) -> AlloySide:
    """One side's alloy properties from its stage 1 (`equilibrium`) and its random cell."""
    found = AlloySide(
        composition=plan.scan.composition,
        fractions=plan.fractions,
        lattice_constant=equilibrium.lattice_constant,
        fallback=equilibrium.fallback,
        eos=equilibrium.eos,
        checks=list(equilibrium.checks),
        notes=list(equilibrium.notes),
    )
    if RANDOM in random:
        found.random_energy = random[RANDOM].energy / len(plan.random)
    else:
        found.notes.append(f"{found.composition} random cell: no result")
    return found


def mixing_energy(
    energy_per_atom: float | None,
    fractions: Mapping[str, float],
    pure_e0: Mapping[str, float | None],
) -> float | None:
    """meV/atom above the composition-weighted pure crystals, each at its own equilibrium."""
    reference = _weighted(fractions, pure_e0)
    if energy_per_atom is None or reference is None:
        return None
    return MEV * (energy_per_atom - reference)


def vegard_deviation(
    a0: float | None, fractions: Mapping[str, float], pure_a0: Mapping[str, float | None]
) -> float | None:
    """Å: the side's alloy a0 minus the composition-weighted mean of its own pure a0s."""
    reference = _weighted(fractions, pure_a0)
    if a0 is None or reference is None:
        return None
    return a0 - reference


def _weighted(fractions: Mapping[str, float], values: Mapping[str, float | None]) -> float | None:
    """sum_el x_el value_el; None when an element has no value."""
    total = 0.0
    for element, fraction in fractions.items():
        value = values.get(element)
        if value is None:
            return None
        total += fraction * value
    return total


def compare_alloys(
    potential: list[AlloySide],
    dft: list[AlloySide],
    pure_potential: Mapping[str, SideProperties],
    pure_dft: Mapping[str, SideProperties],
) -> list[Comparison]:
    """Per alloy composition: its a0, its deviation from Vegard's law and the mixing energies
    of the ordered and the random cell, each side against its own pure crystals."""
    rows = []
    for mine, theirs in zip(potential, dft, strict=True):
        sides = ((mine, pure_potential), (theirs, pure_dft))
        a0 = [_a0(alloy) for alloy, _ in sides]
        vegard = [
            vegard_deviation(_a0(alloy), alloy.fractions, _pure_a0(pure)) for alloy, pure in sides
        ]
        ordered = [
            mixing_energy(
                None if alloy.eos is None or alloy.fallback else alloy.eos.e0,
                alloy.fractions,
                _pure_e0(pure),
            )
            for alloy, pure in sides
        ]
        random = [
            mixing_energy(alloy.random_energy, alloy.fractions, _pure_e0(pure))
            for alloy, pure in sides
        ]
        rows += [
            _row("a0 (alloy)", "Å", a0, mine.composition),
            _row("Vegard deviation", "Å", vegard, mine.composition),
            _row("E_mix (ordered)", "meV/atom", ordered, mine.composition),
            _row("E_mix (random, unrelaxed)", "meV/atom", random, mine.composition),
        ]
    return rows


def _row(name: str, unit: str, values: list[float | None], composition: str) -> Comparison:
    potential, dft = values
    return Comparison(name, unit, potential, dft, composition=composition)


def _a0(alloy: AlloySide) -> float | None:
    return None if alloy.fallback or alloy.eos is None else alloy.eos.a0


def _pure_a0(pure: Mapping[str, SideProperties]) -> dict[str, float | None]:
    return {el: None if p.fallback or p.eos is None else p.eos.a0 for el, p in pure.items()}


def _pure_e0(pure: Mapping[str, SideProperties]) -> dict[str, float | None]:
    return {el: None if p.fallback or p.eos is None else p.eos.e0 for el, p in pure.items()}
