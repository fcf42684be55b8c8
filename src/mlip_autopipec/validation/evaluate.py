"""One side's properties from its per-structure results, and the potential-vs-DFT table.

A property whose structures lack a result (a failed DFT label) is None: the rest still count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipec.validation.phonons import PhononResult, phonon_frequencies
from mlip_autopipec.validation.properties import (
    Calculated,
    EOSResult,
    cubic_elastic_constants,
    fit_eos,
    relative_error,
    surface_energy,
    vacancy_formation_energy,
)
from mlip_autopipec.validation.structures import (
    ValidationPlan,
    slab_name,
    surface_area,
)

Results = dict[str, Calculated]


@dataclass
class SideProperties:
    """Everything one side (potential or DFT) gives for a plan."""

    eos: EOSResult | None = None
    elastic: dict[str, float] | None = None
    vacancy_energy: float | None = None
    surface_energies: dict[str, float] = field(default_factory=dict)
    phonons: PhononResult | None = None
    notes: list[str] = field(default_factory=list)  # why a property is missing or doubtful


@dataclass(frozen=True)
class Comparison:
    """One row of the table: a property, its unit, both values and the relative error."""

    name: str
    unit: str
    potential: float | None
    dft: float | None

    @property
    def relative_error(self) -> float | None:
        return relative_error(self.potential, self.dft)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "potential": self.potential,
            "dft": self.dft,
            "relative_error": self.relative_error,
        }


def evaluate_potential(structures: dict[str, Atoms], potential: Path) -> Results:
    """Energy, forces and stress of every structure with the ACE potential (pyace)."""
    from mlip_autopipec.core.quiet_imports import pyace_calculator

    calculator = pyace_calculator(str(potential))
    results = {}
    for name, atoms in structures.items():
        probe = atoms.copy()
        probe.calc = calculator
        results[name] = Calculated(
            energy=float(probe.get_potential_energy()),
            forces=np.array(probe.get_forces()),
            stress=np.array(probe.get_stress(voigt=True)),
        )
    return results


def side_properties(plan: ValidationPlan, results: Results) -> SideProperties:
    side = SideProperties()
    side.eos = _eos(plan, results, side.notes)
    side.elastic = _elastic(plan, results)
    side.vacancy_energy = _vacancy(results)
    side.surface_energies = _surfaces(plan, results)
    side.phonons = _phonons(plan, results)
    return side


def _have(results: Results, names: list[str]) -> bool:
    return bool(names) and all(name in results for name in names)


def _eos(plan: ValidationPlan, results: Results, notes: list[str]) -> EOSResult | None:
    names = plan.names("eos_")
    if not _have(results, names):
        return None
    n_atoms = len(plan.primitive)
    volumes = [plan.structures[name].get_volume() / n_atoms for name in names]
    energies = [results[name].energy / n_atoms for name in names]
    v_reference = plan.primitive.get_volume() / n_atoms
    try:
        eos = fit_eos(volumes, energies, _lattice_constant(plan), v_reference)
    except (RuntimeError, ValueError) as error:
        notes.append(f"eos: the Birch-Murnaghan fit failed ({error})")
        return None
    if not min(volumes) <= eos.v0 <= max(volumes):
        notes.append("eos: the fitted minimum lies outside the sampled volumes (extrapolated)")
    return eos


def _lattice_constant(plan: ValidationPlan) -> float:
    """The conventional lattice constant of the reference cell (what system.lattice_constant
    means), recovered from the primitive volume of the cubic prototypes."""
    per_conventional = {"fcc": 4, "diamond": 4, "rocksalt": 4, "zincblende": 4, "bcc": 2, "sc": 1}
    cells = per_conventional.get(plan.prototype)
    if cells is None:  # hcp: the in-plane lattice constant
        return float(plan.primitive.cell.lengths()[0])
    return float((plan.primitive.get_volume() * cells) ** (1 / 3))


def _elastic(plan: ValidationPlan, results: Results) -> dict[str, float] | None:
    names = ["elastic_plus", "elastic_minus"]
    if not _have(results, names) or any(results[n].stress is None for n in names):
        return None
    plus, minus = (results[name].stress for name in names)
    assert plus is not None and minus is not None
    return cubic_elastic_constants(plan.settings.elastic_strain, plus, minus)


def _vacancy(results: Results) -> float | None:
    if not _have(results, ["vacancy_bulk", "vacancy_defect"]):
        return None
    perfect = results["vacancy_bulk"]
    n_perfect = len(perfect.forces)
    return vacancy_formation_energy(perfect.energy, n_perfect, results["vacancy_defect"].energy)


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


def compare(potential: SideProperties, dft: SideProperties) -> list[Comparison]:
    """The table rows, in a fixed order; a property neither side has is left out."""
    rows = []
    if potential.eos or dft.eos:
        rows.append(Comparison("a0", "Å", _get(potential.eos, "a0"), _get(dft.eos, "a0")))
        rows.append(
            Comparison(
                "B", "GPa", _get(potential.eos, "bulk_modulus"), _get(dft.eos, "bulk_modulus")
            )
        )
    for key in ("C11", "C12", "C44"):
        if potential.elastic or dft.elastic:
            mine, theirs = potential.elastic or {}, dft.elastic or {}
            rows.append(Comparison(f"{key} (clamped ions)", "GPa", mine.get(key), theirs.get(key)))
    if potential.vacancy_energy is not None or dft.vacancy_energy is not None:
        rows.append(
            Comparison("E_vac (unrelaxed)", "eV", potential.vacancy_energy, dft.vacancy_energy)
        )
    for name in sorted(set(potential.surface_energies) | set(dft.surface_energies)):
        label = f"gamma_{name.removeprefix('surface_')} (unrelaxed)"
        rows.append(
            Comparison(
                label, "J/m^2", potential.surface_energies.get(name), dft.surface_energies.get(name)
            )
        )
    rows.extend(_phonon_rows(potential.phonons, dft.phonons))
    return rows


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
                )
            )
    return rows


def _frequency(result: PhononResult | None, point: str, pick: Any) -> float | None:
    if result is None or point not in result.point_frequencies:
        return None
    return float(pick(result.point_frequencies[point]))


def _get(result: EOSResult | None, name: str) -> float | None:
    return None if result is None else float(getattr(result, name))
