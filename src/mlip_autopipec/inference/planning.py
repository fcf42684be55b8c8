"""Which MD runs an iteration makes, and from which labeled structures they start.

Every kind of labeled structure that represents the material is a start: bulk cells (strained,
sheared, rattled, alloyed, perfect, and imported periodic cells), vacancy cells and slabs.
Each kind and each composition of it gets every temperature x pressure x repeat; slabs get
NVT only (NPT would squeeze their vacuum). Cut-out environments never start MD: their
boundaries are artificial.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from ase import Atoms

from mlip_autopipec.config import InferenceConfig
from mlip_autopipec.core.composition import Composition, composition, formula
from mlip_autopipec.core.keys import KPOINT_CELL
from mlip_autopipec.errors import UserError
from mlip_autopipec.inference.md_types import MDRunSpec

logger = logging.getLogger(__name__)

BULK = "bulk"
VACANCY = "vacancy"
SURFACE = "surface"
START_KINDS = (BULK, VACANCY, SURFACE)  # also the order in which their runs are planned
NPT_KINDS = frozenset({BULK, VACANCY})  # fully periodic, no vacuum


class NoStartStructureError(UserError):
    """No labeled structure qualifies as a starting point for MD."""


@dataclass(frozen=True)
class VolumeScan:
    """DFT energies of one crystal's cell scaled in volume (the E-V anchors), and the volume
    per atom of the unstrained cell they were scaled from."""

    reference_volume: float  # Å^3/atom
    volumes: list[float]  # Å^3/atom
    energies: list[float]  # eV/atom
    composition: Composition = ()  # of the crystal; () when unknown

    def lattice_scale(self) -> float:
        """Linear factor from the reference cell to the DFT equilibrium: the minimum of a
        Birch-Murnaghan fit when it lies inside the scan (even when the lowest point is its
        last one), else the lowest point when that is inside. A lowest point at an end of the
        scan with no fitted minimum inside is no equilibrium: then the reference (1.0)."""
        order = np.argsort(self.volumes)
        lowest = int(np.argmin(np.asarray(self.energies)[order]))
        v0 = _fitted_minimum(self.volumes, self.energies) if len(self.volumes) >= 5 else None
        if v0 is None and lowest in (0, len(order) - 1):
            logger.warning(
                "the E-V anchors have their lowest energy at an end of the scan: MD starts at "
                "system.lattice_constant; set it closer to the DFT value"
            )
            return 1.0
        if v0 is None:
            v0 = self.volumes[order[lowest]]
        return float((v0 / self.reference_volume) ** (1 / 3))


def _fitted_minimum(volumes: list[float], energies: list[float]) -> float | None:
    import warnings

    from ase.eos import EquationOfState

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v0 = float(EquationOfState(volumes, energies, eos="birchmurnaghan").fit()[0])
    except (RuntimeError, ValueError):
        return None
    return v0 if min(volumes) <= v0 <= max(volumes) else None


@dataclass(frozen=True)
class StartCandidate:
    """A labeled structure offered as an MD starting point, with where it came from."""

    atoms: Atoms
    origin: str
    energy_per_atom: float


def start_kind(candidate: StartCandidate, kinds_by_origin: Mapping[str, str | None]) -> str | None:
    """The kind of start a labeled structure is, or None when MD must not start from it.

    Origins listed in `kinds_by_origin` decide (None: never a start). Any other origin is bulk
    when the cell is fully periodic (builder bulk cells, imported periodic cells); a
    non-periodic structure of another origin is not used, as nothing says what it is.
    """
    if candidate.origin in kinds_by_origin:
        return kinds_by_origin[candidate.origin]
    return BULK if bool(candidate.atoms.pbc.all()) else None


def plan_md(
    candidates: Sequence[StartCandidate],
    inference: InferenceConfig,
    iteration: int,
    kinds_by_origin: Mapping[str, str | None],
    scans: Sequence[VolumeScan] = (),
) -> list[tuple[Atoms, MDRunSpec]]:
    """(start structure, run) for every available kind x composition x temperature x pressure
    x repeat: each composition is explored at every temperature, whatever its energy per atom.

    Within a kind and composition the largest cells first, then the lowest energy per atom,
    cycling when there are fewer structures than runs. Every start is put back into the
    unstrained cell it was made from, scaled to the DFT equilibrium of its crystal (from
    `scans`), so MD explores the density the material has, not that of a strained generator
    cell.
    """
    pools = starts_by_kind(candidates, kinds_by_origin)
    if not pools:
        raise NoStartStructureError(
            "no labeled bulk, vacancy or surface structure to start MD from"
        )
    runs = []
    for kind, groups in pools.items():
        specs = kind_specs(inference, iteration, kind)
        for index, spec in enumerate(specs):
            for name, group in groups.items():
                start = group[index % len(group)]
                # with one composition the run ids (and so the seeds) stay as they were
                run = named_for(spec, name, iteration) if len(groups) > 1 else spec
                runs.append((md_start(start, scans), replace(run, periodic=periodic(start))))
    return runs


def periodic(start: StartCandidate) -> tuple[bool, bool, bool]:
    pbc = start.atoms.pbc
    return bool(pbc[0]), bool(pbc[1]), bool(pbc[2])


def named_for(spec: MDRunSpec, name: str, iteration: int) -> MDRunSpec:
    """The run of `spec` for the composition called `name`: an id and a seed of its own."""
    run_id = f"{spec.run_id}_{name}"
    return replace(spec, run_id=run_id, seed=run_seed(iteration, run_id))


def starts_by_kind(
    candidates: Sequence[StartCandidate], kinds_by_origin: Mapping[str, str | None]
) -> dict[str, dict[str, list[StartCandidate]]]:
    """The usable candidates of each kind per composition (by formula), each in preference
    order (see `by_composition`); kinds without any are left out."""
    pools: dict[str, list[StartCandidate]] = {kind: [] for kind in START_KINDS}
    for candidate in candidates:
        kind = start_kind(candidate, kinds_by_origin)
        if kind is not None:
            pools.setdefault(kind, []).append(candidate)
    return {kind: by_composition(pool) for kind, pool in pools.items() if pool}


def by_composition(pool: Sequence[StartCandidate]) -> dict[str, list[StartCandidate]]:
    """The candidates of each composition, the largest cells first, then the lowest energy per
    atom: energies are only compared within a composition."""
    groups: dict[Composition, list[StartCandidate]] = {}
    for candidate in pool:
        groups.setdefault(composition(candidate.atoms.get_chemical_symbols()), []).append(candidate)
    return {
        formula(key): sorted(group, key=lambda c: (-len(c.atoms), c.energy_per_atom))
        for key, group in sorted(groups.items())
    }


def kind_specs(inference: InferenceConfig, iteration: int, kind: str) -> list[MDRunSpec]:
    """One run per temperature x pressure x repeat for starts of `kind` (slabs: NVT only)."""
    pressures: list[float | None] = [None]
    if inference.pressures and kind in NPT_KINDS:
        pressures = list(inference.pressures)
    specs = []
    for temperature in inference.temperatures:
        for pressure in pressures:
            for repeat in range(inference.runs_per_temperature):
                run_id = f"T{temperature:g}" + (f"_P{pressure:g}" if pressure is not None else "")
                run_id += f"_{kind}_r{repeat}"
                seed = run_seed(iteration, run_id)
                specs.append(
                    MDRunSpec.from_config(inference, run_id, temperature, pressure, seed, kind)
                )
    return specs


def run_seed(iteration: int, run_id: str) -> int:
    """A seed of its own per (iteration, run); the same on every machine and every rerun."""
    entropy = [iteration, zlib.crc32(run_id.encode())]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def md_start(candidate: StartCandidate, scans: Sequence[VolumeScan] = ()) -> Atoms:
    """A copy without calculator in its equilibrium cell (see `equilibrium_cell`); slabs run
    periodic with their vacuum, as pw.x labeled them."""
    atoms = candidate.atoms.copy()
    atoms.calc = None
    if candidate.atoms.pbc.all():
        atoms.set_cell(equilibrium_cell(candidate.atoms, scans), scale_atoms=True)
    atoms.pbc = True
    return atoms


def equilibrium_cell(atoms: Atoms, scans: Sequence[VolumeScan]) -> np.ndarray:
    """The unstrained cell the structure was made from (its k-point cell; its own cell when
    it has none), scaled to the DFT equilibrium (see `lattice_factor`). Fractional positions
    are kept, so a rattle survives and a pure strain disappears."""
    cell = np.asarray(atoms.info.get(KPOINT_CELL, atoms.cell.array), dtype=float)
    if not scans or KPOINT_CELL not in atoms.info:
        return cell
    per_atom = abs(float(np.linalg.det(cell))) / len(atoms)
    return cell * lattice_factor(composition(atoms.get_chemical_symbols()), per_atom, scans)


def lattice_factor(key: Composition, volume_per_atom: float, scans: Sequence[VolumeScan]) -> float:
    """Linear factor from a generator cell to the DFT equilibrium of its composition.

    A crystal with a scan of its own composition: that scan's factor (of the scan nearest in
    volume when there are several). An alloy of scanned pure elements, built at Vegard's law
    of `system.lattice_constants`: Vegard's law of the DFT lattice constants, i.e. the
    fraction-weighted mean of the pure factors weighted by their lattice lengths. Else: the
    factor of the scan nearest in volume.
    """
    own = [scan for scan in scans if scan.composition == key]
    if own:
        return _nearest(own, volume_per_atom).lattice_scale()
    pure = {scan.composition[0][0]: scan for scan in scans if len(scan.composition) == 1}
    if key and all(element in pure for element, _ in key):
        lengths = {element: pure[element].reference_volume ** (1 / 3) for element, _ in key}
        built = sum(x * lengths[element] for element, x in key)
        relaxed = sum(x * lengths[element] * pure[element].lattice_scale() for element, x in key)
        return relaxed / built
    return _nearest(scans, volume_per_atom).lattice_scale()


def _nearest(scans: Sequence[VolumeScan], volume_per_atom: float) -> VolumeScan:
    return min(scans, key=lambda s: abs(np.log(s.reference_volume / volume_per_atom)))
