"""Cells as pw.x computes them.

A slab is stored with `pbc = (True, True, False)` (so the filters and the k-mesh know its
vacuum axis), but pw.x computes every cell periodic in all three directions, vacuum included.
pacemaker and pyace accept only fully periodic or fully non-periodic cells, so whatever goes
to them is made fully periodic first: the same cell DFT labeled.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms


def as_computed(atoms: Atoms) -> Atoms:
    """A copy periodic along all three axes when the cell is three-dimensional."""
    copy = atoms.copy()
    if not copy.pbc.all() and abs(np.linalg.det(copy.cell.array)) > 1e-9:
        copy.pbc = True
    return copy
