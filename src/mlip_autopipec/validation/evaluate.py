"""One side's properties from its two stages, and the potential-vs-DFT table.

A property whose structures lack a result (a failed DFT label) is None: the rest still count.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mlip_autopipec.validation.checks import (
    Check,
    born_check,
    optical_check,
    phonon_check,
)
from mlip_autopipec.validation.elastic import (
    bulk_modulus_from_constants,
    force_strain_coupling,
    gamma_force_constants,
    internal_strain_correction,
    optical_stability,
    shear_constant,
    uniaxial_constants,
)
from mlip_autopipec.validation.equilibrium import Equilibrium
from mlip_autopipec.validation.phonons import PhononResult, phonon_frequencies
from mlip_autopipec.validation.properties import (
    EOSResult,
    Results,
    relative_error,
    surface_energy,
    vacancy_formation_energy,
)
from mlip_autopipec.validation.structures import (
    GAMMA_DISPLACEMENT,
    ValidationPlan,
    slab_name,
    surface_area,
)

ZERO_FREQUENCY = 0.1  # THz: two frequencies this close to zero (acoustic at Gamma) agree


@dataclass
class SideProperties:
    """Everything one side (potential or DFT) gives, stage 2 at `lattice_constant`."""

    lattice_constant: float  # Å, where stage 2 ran: the side's own a0, or the reference
    fallback: bool = False  # no usable E(V) minimum: stage 2 at the reference
    eos: EOSResult | None = None
    elastic: dict[str, float | None] | None = None  # C11, C12, C44 (relaxed), C44_clamped, B
    vacancy_energy: float | None = None  # unrelaxed
    vacancy_relaxed: float | None = None
    surface_energies: dict[str, float] = field(default_factory=dict)
    phonons: PhononResult | None = None
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why a property is missing or doubtful


@dataclass(frozen=True)
class Comparison:
    """One row of the table: a property, its unit, both values and the relative error."""

    name: str
    unit: str
    potential: float | None
    dft: float | None
    zero: float = 0.0  # values within this of zero on both sides compare as equal
    composition: str = ""  # the material the row is of; "" in a one-material campaign

    @property
    def relative_error(self) -> float | None:
        return relative_error(self.potential, self.dft, self.zero)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "potential": self.potential,
            "dft": self.dft,
            "relative_error": self.relative_error,
            "composition": self.composition,
        }


def row_label(row: dict[str, Any]) -> str:
    """A table row's property, named with its material when it has one (Ge: a0)."""
    composition = row.get("composition")
    return f"{composition}: {row['name']}" if composition else str(row["name"])


def side_properties(
    side: str,
    equilibrium: Equilibrium,
    plan: ValidationPlan,
    results: Results,
    relaxed_defect_energy: float | None = None,
) -> SideProperties:
    """Stage 2's properties; `relaxed_defect_energy` is the vacancy cell's energy after its
    ions were relaxed (fixed cell), None when this side could not relax it."""
    found = SideProperties(
        lattice_constant=plan.lattice_constant,
        fallback=equilibrium.fallback,
        eos=equilibrium.eos,
        checks=list(equilibrium.checks),
        notes=list(equilibrium.notes),
    )
    found.elastic = _elastic(plan, results, side, found)
    defect = results.get("vacancy_defect")
    found.vacancy_energy = _vacancy(results, None if defect is None else defect.energy)
    found.vacancy_relaxed = _vacancy(results, relaxed_defect_energy)
    found.surface_energies = _surfaces(plan, results)
    found.phonons = _phonons(plan, results)
    if found.phonons is not None:
        lowest = min(min(row) for row in found.phonons.band_frequencies)
        found.checks.append(phonon_check(lowest, side))
    return found


def _have(results: Results, names: list[str]) -> bool:
    return bool(names) and all(name in results for name in names)


def _elastic(
    plan: ValidationPlan, results: Results, side: str, found: SideProperties
) -> dict[str, float | None] | None:
    names = plan.names("elastic_")
    if not _have(results, names) or any(results[n].stress is None for n in names):
        return None
    strain = plan.settings.elastic_strain
    xx = [results[f"elastic_xx_{sign}"] for sign in ("plus", "minus")]
    yz = [results[f"elastic_yz_{sign}"] for sign in ("plus", "minus")]
    c11, c12 = uniaxial_constants(strain, xx[0].stress, xx[1].stress)  # type: ignore[arg-type]
    clamped = shear_constant(strain, yz[0].stress, yz[1].stress)  # type: ignore[arg-type]
    relaxed = _relaxed_c44(plan, results, clamped, side, found)
    constants: dict[str, float | None] = {
        "C11": c11,
        "C12": c12,
        "C44": relaxed,
        "C44_clamped": clamped,
        "B": bulk_modulus_from_constants(c11, c12),
    }
    found.checks.append(born_check(constants, side))
    return constants


def _relaxed_c44(
    plan: ValidationPlan, results: Results, clamped: float, side: str, found: SideProperties
) -> float | None:
    """Clamped C44 minus the internal-strain correction (single points only)."""
    n_atoms = len(plan.primitive)
    if n_atoms == 1:
        return clamped  # one atom per cell: nothing to relax
    names = plan.names("gamma_")
    if not _have(results, names):
        found.notes.append("C44 (relaxed ions): displaced-cell labels missing")
        return None
    displaced = {}
    for atom in range(n_atoms - 1):
        for axis, letter in enumerate("xyz"):
            pair = (results[f"gamma_{atom}_{letter}_{sign}"].forces for sign in ("plus", "minus"))
            displaced[(atom, axis)] = tuple(pair)
    phi = gamma_force_constants(n_atoms, GAMMA_DISPLACEMENT, displaced)  # type: ignore[arg-type]
    smallest = optical_stability(phi)
    found.checks.append(optical_check(smallest, side))
    if smallest <= 0:
        found.notes.append("C44 (relaxed ions): an unstable optical mode at Gamma, no value")
        return None
    strain = plan.settings.elastic_strain
    yz = [results[f"elastic_yz_{sign}"].forces for sign in ("plus", "minus")]
    coupling = force_strain_coupling(strain, yz[0], yz[1])
    return clamped - internal_strain_correction(coupling, phi, plan.primitive.get_volume())


def _vacancy(results: Results, defect_energy: float | None) -> float | None:
    if "vacancy_bulk" not in results or defect_energy is None:
        return None
    perfect = results["vacancy_bulk"]
    return vacancy_formation_energy(perfect.energy, len(perfect.forces), defect_energy)


def _surfaces(plan: ValidationPlan, results: Results) -> dict[str, float]:
    if "bulk" not in results:
        return {}
    e_bulk = results["bulk"].energy / len(plan.primitive)
    energies = {}
    for spec in plan.surfaces:
        name = slab_name(spec)
        if name in results:
            slab = plan.structures[name]
            area = surface_area(slab)
            energies[name] = surface_energy(results[name].energy, len(slab), e_bulk, area)
    return energies


def _phonons(plan: ValidationPlan, results: Results) -> PhononResult | None:
    names = plan.names("phonon_")
    if not _have(results, names):
        return None
    settings = plan.settings
    forces = [results[name].forces for name in names]
    return phonon_frequencies(
        plan.primitive, settings.phonon_supercell, settings.phonon_displacement, forces
    )


def compare(
    potential: SideProperties, dft: SideProperties, composition: str = ""
) -> list[Comparison]:
    """The table rows of one material, each naming `composition`, in a fixed order; a
    property neither side has is left out."""
    return [dataclasses.replace(row, composition=composition) for row in _compare(potential, dft)]


def _compare(potential: SideProperties, dft: SideProperties) -> list[Comparison]:
    rows = [Comparison("a0", "Å", _a0(potential), _a0(dft))]
    if potential.eos or dft.eos:
        rows.append(Comparison("B (EOS)", "GPa", _bulk(potential), _bulk(dft)))
    if potential.elastic or dft.elastic:
        mine, theirs = potential.elastic or {}, dft.elastic or {}
        for key, label in (
            ("B", "B (from C11, C12)"),
            ("C11", "C11"),
            ("C12", "C12"),
            ("C44", "C44 (relaxed ions)"),
            ("C44_clamped", "C44 (clamped ions)"),
        ):
            rows.append(Comparison(label, "GPa", mine.get(key), theirs.get(key)))
    for attribute, label in (("vacancy_energy", "unrelaxed"), ("vacancy_relaxed", "relaxed")):
        mine_value, theirs_value = getattr(potential, attribute), getattr(dft, attribute)
        if mine_value is not None or theirs_value is not None:
            rows.append(Comparison(f"E_vac ({label})", "eV", mine_value, theirs_value))
    for name in sorted(set(potential.surface_energies) | set(dft.surface_energies)):
        label = f"gamma_{name.removeprefix('surface_')} (unrelaxed)"
        rows.append(
            Comparison(
                label, "J/m^2", potential.surface_energies.get(name), dft.surface_energies.get(name)
            )
        )
    rows.extend(_phonon_rows(potential.phonons, dft.phonons))
    return rows


def _a0(side: SideProperties) -> float | None:
    """The side's own a0: None when its E(V) had no usable minimum (a failed check says so)."""
    return None if side.fallback or side.eos is None else side.eos.a0


def _bulk(side: SideProperties) -> float | None:
    """B of the side's EOS fit: None when that fit has no usable minimum (a fit that smooths
    away a missing minimum or an inflection is not the bulk modulus; a check says why)."""
    return None if side.fallback or side.eos is None else side.eos.bulk_modulus


def _phonon_rows(potential: PhononResult | None, dft: PhononResult | None) -> list[Comparison]:
    either = potential or dft
    points = either.point_frequencies if either is not None else {}
    rows = []
    for point in points:
        for label, pick in (("min", min), ("max", max)):
            if point == "G" and label == "min":
                continue  # the acoustic modes at Gamma are zero on both sides
            rows.append(
                Comparison(
                    f"phonon {label} at {point}",
                    "THz",
                    _frequency(potential, point, pick),
                    _frequency(dft, point, pick),
                    zero=ZERO_FREQUENCY,
                )
            )
    return rows


def _frequency(result: PhononResult | None, point: str, pick: Any) -> float | None:
    if result is None or point not in result.point_frequencies:
        return None
    return float(pick(result.point_frequencies[point]))
