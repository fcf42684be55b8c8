"""Ordered alloy cells: the fewest primitive cells that hold a composition exactly.

The same cells are the validation's ordered alloys (zincblende for x = 0.5 in diamond) and
physics anchors of the campaign's training data.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from ase import Atoms

# Repeats of the primitive cell tried for an ordered alloy, fewest cells first (along the
# third axis first, so that hcp keeps its in-plane a).
ORDERED_REPEATS = tuple(
    sorted(
        [(1, 1, 1), (1, 1, 2), (1, 1, 3), (1, 2, 2), (1, 2, 3), (2, 2, 2), (1, 3, 3),
         (2, 2, 3), (2, 2, 4), (2, 3, 3), (3, 3, 3), (2, 4, 4), (4, 4, 4)],
        key=lambda repeats: int(np.prod(repeats)),
    )
)  # fmt: skip
FRACTION_TOLERANCE = 1e-3  # sites: 0.333 of 6 sites is 2


def ordered_alloy(primitive: Atoms, fractions: Mapping[str, float]) -> tuple[Atoms, int]:
    """The fewest repeats of `primitive` whose sites hold `fractions` exactly, filled in
    order; and how many primitive cells that is."""
    for repeats in ORDERED_REPEATS:
        cell = primitive.repeat(repeats)
        counts = site_counts(fractions, len(cell))
        if counts is not None:
            cell.set_chemical_symbols([el for el, n in counts.items() for _ in range(n)])
            return cell, int(np.prod(repeats))
    raise ValueError(f"no ordered cell of up to 64 primitive cells holds {dict(fractions)}")


def site_counts(fractions: Mapping[str, float], n_sites: int) -> dict[str, int] | None:
    counts = {el: x * n_sites for el, x in fractions.items()}
    if any(abs(n - round(n)) > FRACTION_TOLERANCE * n_sites for n in counts.values()):
        return None
    whole = {el: int(round(n)) for el, n in counts.items()}
    return whole if sum(whole.values()) == n_sites else None
