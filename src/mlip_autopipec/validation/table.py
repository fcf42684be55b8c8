"""The whole potential-vs-DFT table of a campaign: every pure crystal's rows, then every
alloy's, each row and check naming its composition when there are several materials."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from mlip_autopipec.validation.alloys import AlloySide, compare_alloys
from mlip_autopipec.validation.checks import Check
from mlip_autopipec.validation.evaluate import Comparison, SideProperties, compare


def named(checks: list[Check], composition: str) -> list[Check]:
    """The checks of one material, each naming it (in a campaign of several)."""
    if not composition:
        return list(checks)
    return [replace(check, name=f"{composition}: {check.name}") for check in checks]


def full_table(
    compositions: Sequence[str],
    potential: Sequence[SideProperties],
    dft: Sequence[SideProperties],
    potential_alloys: Sequence[AlloySide] = (),
    dft_alloys: Sequence[AlloySide] = (),
) -> tuple[list[Comparison], list[Check], list[Check]]:
    """(rows, the potential's checks, DFT's checks); pure crystals in `compositions` order
    ("" for the one material of a single-material campaign)."""
    rows: list[Comparison] = []
    mine: list[Check] = []
    theirs: list[Check] = []
    for composition, side, reference in zip(compositions, potential, dft, strict=True):
        rows += compare(side, reference, composition)
        mine += named(side.checks, composition)
        theirs += named(reference.checks, composition)
    if dft_alloys:
        rows += compare_alloys(
            list(potential_alloys),
            list(dft_alloys),
            dict(zip(compositions, potential, strict=True)),
            dict(zip(compositions, dft, strict=True)),
        )
        for alloy, reference_alloy in zip(potential_alloys, dft_alloys, strict=True):
            mine += named(alloy.checks, alloy.composition)
            theirs += named(reference_alloy.checks, reference_alloy.composition)
    return rows, mine, theirs
