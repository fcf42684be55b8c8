"""Compositions, and energies compared like with like.

An energy per atom means nothing across compositions: with pseudopotentials, pure Ge sits
about 2000 eV/atom below pure Si. Every "lowest energy" decision compares a structure with
structures of its own composition, or its formation energy against the pure elements.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

Composition = tuple[tuple[str, float], ...]  # (element, fraction), sorted by element


def composition(symbols: Iterable[str]) -> Composition:
    """Element fractions, rounded: Si6Ge2 and Si3Ge1 are one composition."""
    counts = Counter(symbols)
    total = sum(counts.values())
    return tuple(sorted((element, round(n / total, 6)) for element, n in counts.items()))


def formula(key: Composition) -> str:
    """For logs and tables: the symbol of a pure element, else each element with its
    fraction in alphabetical order (Ge0.25Si0.75)."""
    if len(key) == 1:
        return key[0][0]
    return "".join(f"{element}{fraction:g}" for element, fraction in key)


def balanced_shares(
    available: Mapping[Composition, int],
    have: Mapping[Composition, int],
    wanted: int,
    sent: Mapping[Composition, int] | None = None,
) -> dict[Composition, int]:
    """Picks per composition, one at a time, among the compositions with candidates left.

    A composition below half an even share of everything sent to DFT (`sent`, counted with
    the picks given so far) is served first, the furthest below first: no composition is left
    with a sliver of the labels. Otherwise the pick goes to the composition with the fewest
    structures so far (`have` plus what it was given); ties in composition order.
    """
    if not available:
        return {}
    sent = sent or {}
    floor = floor_share(len(set(available) | set(sent)))
    given = dict.fromkeys(available, 0)
    for step in range(min(wanted, sum(available.values()))):
        open_ = [key for key in sorted(available) if given[key] < available[key]]
        total = sum(sent.values()) + step + 1

        def shortfall(key: Composition, total: int = total) -> float:
            return floor * total - sent.get(key, 0) - given[key]

        short = [key for key in open_ if shortfall(key) > 0]
        if short:
            chosen = max(short, key=shortfall)
        else:
            chosen = min(open_, key=lambda key: have.get(key, 0) + given[key])
        given[chosen] += 1
    return {key: count for key, count in given.items() if count}


def floor_share(compositions: int) -> float:
    """Half an even share of the labels: the least any composition should hold."""
    return 1.0 / (2 * compositions)


@dataclass(frozen=True)
class EnergyReference:
    """The lowest trusted energy per atom of each pure element and of each composition."""

    elements: Mapping[str, float]
    compositions: Mapping[Composition, float]

    @classmethod
    def lowest(
        cls,
        energies_per_atom: Sequence[float],
        compositions: Sequence[Composition],
        trusted: Sequence[bool],
    ) -> EnergyReference:
        lowest: dict[Composition, float] = {}
        for energy, key, ok in zip(energies_per_atom, compositions, trusted, strict=True):
            if ok and math.isfinite(energy):
                lowest[key] = min(energy, lowest.get(key, math.inf))
        elements = {key[0][0]: energy for key, energy in lowest.items() if len(key) == 1}
        return cls(elements, lowest)

    def formation_energy(self, energy_per_atom: float, key: Composition) -> float | None:
        """Against the pure elements' lowest energies; None when one of them has none."""
        if any(element not in self.elements for element, _ in key):
            return None
        return energy_per_atom - sum(x * self.elements[element] for element, x in key)

    def above_lowest(self, energy_per_atom: float, key: Composition) -> float | None:
        """How far an energy per atom lies above the lowest it can be compared with.

        With every element's reference: above the lower of the pure-element line and the
        lowest structure of its own composition (formation energies, a local hull). Else:
        above the lowest of its own composition. None when nothing is comparable.
        """
        lowest = self.compositions.get(key)
        formation = self.formation_energy(energy_per_atom, key)
        if formation is not None:
            lowest_formation = formation - (energy_per_atom - lowest) if lowest is not None else 0.0
            return formation - min(0.0, lowest_formation)
        return None if lowest is None else energy_per_atom - lowest
