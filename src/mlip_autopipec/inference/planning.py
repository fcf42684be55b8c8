"""Which MD runs an iteration makes, and from which labeled structures they start."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ase import Atoms

from mlip_autopipec.config import InferenceConfig
from mlip_autopipec.errors import UserError
from mlip_autopipec.inference.md_types import MDRunSpec


class NoStartStructureError(UserError):
    """No labeled structure qualifies as a starting point for MD."""


@dataclass(frozen=True)
class StartCandidate:
    """A labeled structure offered as an MD starting point, with where it came from."""

    atoms: Atoms
    origin: str
    energy_per_atom: float


def md_specs(inference: InferenceConfig, iteration: int) -> list[MDRunSpec]:
    """One run per temperature x pressure x repeat; seeds differ per run and per iteration."""
    pressures: list[float | None] = list(inference.pressures) if inference.pressures else [None]
    specs: list[MDRunSpec] = []
    for temperature in inference.temperatures:
        for pressure in pressures:
            for repeat in range(inference.runs_per_temperature):
                run_id = f"T{temperature:g}" + (f"_P{pressure:g}" if pressure is not None else "")
                run_id += f"_r{repeat}"
                seed = 1000 * iteration + len(specs)
                specs.append(MDRunSpec.from_config(inference, run_id, temperature, pressure, seed))
    return specs


def start_structures(
    candidates: Sequence[StartCandidate], count: int, non_bulk_origins: Collection[str]
) -> list[Atoms]:
    """`count` starting cells: largest first, then lowest energy, cycling when there are fewer.

    Fully periodic cells only, and none whose origin is in `non_bulk_origins` (cut-out
    environments and slabs have free surfaces that MD would explore instead of the material).
    """
    bulk = [c for c in candidates if c.atoms.pbc.all() and c.origin not in non_bulk_origins]
    if not bulk:
        raise NoStartStructureError("no labeled bulk structure to start MD from")
    bulk = sorted(bulk, key=lambda c: (-len(c.atoms), c.energy_per_atom))
    starts = []
    for index in range(count):
        atoms = bulk[index % len(bulk)].atoms.copy()
        atoms.calc = None
        starts.append(atoms)
    return starts
