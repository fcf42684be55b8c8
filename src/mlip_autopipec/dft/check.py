"""The DFT settings check: are the labels converged enough to agree with each other?

Which structures (a few of the campaign's own: its smallest and largest cells, a strained one,
a hot one), which settings (the configured ones, denser k-points, a higher cutoff) and how
their results compare. Pure functions: plain data in, plain data out; the wiring runs pw.x.

The k-point effect (configured vs denser k-points, same cutoff) and the cutoff effect
(configured vs higher cutoff, same k-points) are measured separately, so the verdict can name
the setting to blame. Both are basis-set-like errors that add up: the labels' distance from
converged is estimated as their sum (converged ~ dense-k + (high-cutoff - configured)).
Energies are compared as energies relative to each other (a shift per element drops out, as it
does in training), forces and stresses as they are.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from mlip_autopipec.config import DFTCheckConfig, DFTConfig
from mlip_autopipec.dft.inputs import SCFParameters, write_pw_input

BASE = "configured"
KPOINTS = "dense_kpoints"
CUTOFF = "high_cutoff"
INTERMEDIATE = "intermediate_kpoints"
EV_PER_A3_IN_GPA = 160.21766208
# DFTConfig fields that say how pw.x is run, not what it computes: they do not change a label.
RUN_ONLY_FIELDS = (
    "command",
    "launcher",
    "timeout",
    "max_timeout",
    "max_retries",
    "recovery",
    "mixing_beta",
    "electron_maxstep",
)
STRAINED_ORIGINS = ("strain", "shear")
HOT_ORIGINS = ("rattle", "md", "hot")
# How-to-run values written into the input for calculation keys (they do not change a label).
CANONICAL_SCF = SCFParameters(mixing_beta=0.7, electron_maxstep=100, timeout=3600.0)
MIN_DISTANCE_PROBE = 4.0  # Å: neighbour search radius for the most distorted structure


@dataclass(frozen=True)
class CheckStructure:
    name: str  # e.g. "smallest", "hot": why it was picked
    origin: str
    atoms: Atoms


@dataclass(frozen=True)
class SCFValues:
    """One converged pw.x result: energy (eV), forces (eV/Å), stress (eV/Å^3, Voigt) or None."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray | None = None


def pick_structures(candidates: Sequence[tuple[Atoms, str]]) -> list[CheckStructure]:
    """The smallest and the largest cell; among the strained cells the most compressed, among
    the hot (rattled) ones the most distorted, each of the fewest atoms (pw.x time grows fast
    with size and denser k-points). Each structure at most once; works on any material and
    origin names; a role with no candidate is left out."""
    pool = [(atoms, origin) for atoms, origin in candidates if len(atoms) > 0]
    size = [(len(a), float(a.get_volume()) if a.cell.rank == 3 else 0.0) for a, _ in pool]
    order = sorted(range(len(pool)), key=lambda i: size[i])
    strained = [i for i, (_, origin) in enumerate(pool) if _matches(origin, STRAINED_ORIGINS)]
    hot = [i for i, (_, origin) in enumerate(pool) if _matches(origin, HOT_ORIGINS)]
    roles = [
        ("smallest", order),
        ("largest", order[::-1]),
        ("strained", sorted(strained, key=lambda i: (size[i][0], size[i][1] / size[i][0]))),
        ("hot", sorted(hot, key=lambda i: (size[i][0], _min_distance(pool[i][0])))),
    ]
    chosen: list[int] = []
    picked = []
    for name, ranking in roles:
        index = next((i for i in ranking if i not in chosen), None)
        if index is not None:
            chosen.append(index)
            picked.append(CheckStructure(name, pool[index][1], pool[index][0].copy()))
    return picked


def _matches(origin: str, words: Sequence[str]) -> bool:
    return any(word in origin.lower() for word in words)


def _min_distance(atoms: Atoms) -> float:
    distances = neighbor_list("d", atoms, MIN_DISTANCE_PROBE)
    return float(distances.min()) if len(distances) else MIN_DISTANCE_PROBE


def check_settings(dft: DFTConfig, check: DFTCheckConfig) -> dict[str, DFTConfig]:
    """The configured settings and the two references: denser k-points, a higher cutoff."""
    return {
        BASE: dft,
        KPOINTS: with_kspacing(dft, dft.kspacing * check.kspacing_factor),
        CUTOFF: with_cutoff(dft, check.cutoff_factor),
    }


def intermediate_settings(dft: DFTConfig, check: DFTCheckConfig) -> DFTConfig:
    """A k-spacing between the configured one and the reference (geometric mean), tried when
    the configured one fails, so the verdict can name a cheaper passing value."""
    return with_kspacing(dft, dft.kspacing * math.sqrt(check.kspacing_factor))


def with_kspacing(dft: DFTConfig, kspacing: float) -> DFTConfig:
    """Denser k-points; pw.x's time limits grow with the number of k-points."""
    kspacing = round(kspacing, 4)
    return _longer(dft.model_copy(update={"kspacing": kspacing}), (dft.kspacing / kspacing) ** 3)


def with_cutoff(dft: DFTConfig, factor: float) -> DFTConfig:
    """A higher cutoff; pw.x's time limits grow with the number of plane waves."""
    ecutrho = None if dft.ecutrho is None else round(dft.ecutrho * factor, 2)
    changed = dft.model_copy(update={"ecutwfc": round(dft.ecutwfc * factor, 2), "ecutrho": ecutrho})
    return _longer(changed, factor**1.5)


def _longer(dft: DFTConfig, factor: float) -> DFTConfig:
    """Time limits scaled by `factor` (never shorter): they do not change a label."""
    factor = max(1.0, factor)
    limit = None if dft.max_timeout is None else dft.max_timeout * factor
    return dft.model_copy(update={"timeout": dft.timeout * factor, "max_timeout": limit})


def physical_settings(dft: DFTConfig) -> dict[str, object]:
    """What a label depends on: the dft section without how pw.x is launched."""
    settings = json.loads(dft.model_dump_json())
    return {key: value for key, value in sorted(settings.items()) if key not in RUN_ONLY_FIELDS}


def calculation_key(atoms: Atoms, dft: DFTConfig) -> str:
    """Identifies one pw.x calculation by its input (k-mesh and all), with how-to-run fields
    held fixed: equal keys, equal labels."""
    text = write_pw_input(atoms, dft, CANONICAL_SCF).text
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def kpoints_of(atoms: Atoms, dft: DFTConfig) -> tuple[int, int, int]:
    """The Monkhorst-Pack mesh pw.x gets for `atoms` at `dft`."""
    return write_pw_input(atoms, dft, CANONICAL_SCF).kpts


def settings_fingerprint(check: DFTCheckConfig, calculation_keys: Sequence[str]) -> str:
    """Changes when the dft settings, the check's own settings or its structures change."""
    document = {
        "check": json.loads(check.model_dump_json(exclude={"enabled"})),
        "runs": sorted(calculation_keys),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StructureDifference:
    """One structure, settings A minus settings B."""

    name: str
    atoms: int
    force_rms: float  # meV/Å, RMS over force components
    force_max: float  # meV/Å, largest change of one atom's force vector
    energy: float  # meV/atom, after the shift common to all structures is removed
    energy_shift: float  # meV/atom, before
    stress: float | None  # GPa, largest change of a stress component


@dataclass(frozen=True)
class Difference:
    """How far one set of results is from another, over the check's structures."""

    effect: str  # "kpoints", "cutoff" or "total"
    compared: str  # e.g. "kspacing 0.6 vs 0.36"
    structures: tuple[StructureDifference, ...]

    @property
    def force_rms(self) -> float:
        weights = np.array([s.atoms for s in self.structures], dtype=float)
        squares = np.array([s.force_rms**2 for s in self.structures])
        return float(np.sqrt(np.sum(weights * squares) / np.sum(weights)))

    @property
    def force_max(self) -> float:
        return max(s.force_max for s in self.structures)

    @property
    def energy(self) -> float:
        return max(abs(s.energy) for s in self.structures)

    @property
    def stress(self) -> float | None:
        values = [s.stress for s in self.structures if s.stress is not None]
        return max(values) if values else None

    def quantities(self) -> dict[str, float | None]:
        return {
            "force_rms": self.force_rms,
            "force_max": self.force_max,
            "energy": self.energy,
            "stress": self.stress,
        }


def compare(
    structures: Sequence[CheckStructure],
    a: dict[str, SCFValues],
    b: dict[str, SCFValues],
    effect: str,
    compared: str,
) -> Difference:
    """A minus B on the structures both have results for."""
    both = [s for s in structures if s.name in a and s.name in b]
    shifts = [(a[s.name].energy - b[s.name].energy) / len(s.atoms) for s in both]
    residuals = relative_energies(shifts, [s.atoms for s in both])
    rows = []
    for structure, shift, residual in zip(both, shifts, residuals, strict=True):
        force = (a[structure.name].forces - b[structure.name].forces) * 1000.0
        rows.append(
            StructureDifference(
                name=structure.name,
                atoms=len(structure.atoms),
                force_rms=float(np.sqrt(np.mean(force**2))),
                force_max=float(np.linalg.norm(force, axis=1).max()),
                energy=residual * 1000.0,
                energy_shift=shift * 1000.0,
                stress=_stress_change(a[structure.name], b[structure.name]),
            )
        )
    return Difference(effect, compared, tuple(rows))


def relative_energies(per_atom: Sequence[float], structures: Sequence[Atoms]) -> list[float]:
    """Per-atom energy changes less the part a shift per element explains (least squares over
    the composition): what a fit with per-element reference energies would see."""
    if not per_atom:
        return []
    elements = sorted({s for atoms in structures for s in atoms.get_chemical_symbols()})
    fractions = np.array([_fractions(atoms, elements) for atoms in structures])
    values = np.asarray(per_atom, dtype=float)
    shifts, *_ = np.linalg.lstsq(fractions, values, rcond=None)
    return [float(r) for r in values - fractions @ shifts]


def _fractions(atoms: Atoms, elements: Sequence[str]) -> list[float]:
    symbols = atoms.get_chemical_symbols()
    return [symbols.count(element) / len(symbols) for element in elements]


def _stress_change(a: SCFValues, b: SCFValues) -> float | None:
    if a.stress is None or b.stress is None:
        return None
    return float(np.abs(np.asarray(a.stress) - np.asarray(b.stress)).max() * EV_PER_A3_IN_GPA)


def extrapolated(
    base: dict[str, SCFValues], kpoints: dict[str, SCFValues], cutoff: dict[str, SCFValues]
) -> dict[str, SCFValues]:
    """The converged estimate per structure: dense k-points plus the cutoff's change."""
    estimate = {}
    for name in base.keys() & kpoints.keys() & cutoff.keys():
        b, k, c = base[name], kpoints[name], cutoff[name]
        stress = None
        if b.stress is not None and k.stress is not None and c.stress is not None:
            stress = np.asarray(k.stress) + np.asarray(c.stress) - np.asarray(b.stress)
        estimate[name] = SCFValues(
            energy=k.energy + c.energy - b.energy,
            forces=np.asarray(k.forces) + np.asarray(c.forces) - np.asarray(b.forces),
            stress=stress,
        )
    return estimate
