"""Validation per composition: each pure crystal at its own equilibrium, the alloys' a0 and
mixing energies against each side's own pure crystals, on EMT Cu-Au (an alloy whose answers
can be computed here independently)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from scipy.optimize import minimize_scalar

from mlip_autopipec.config import SystemConfig, ValidationConfig
from mlip_autopipec.validation.alloys import (
    alloy_plans,
    compare_alloys,
    ordered_alloy,
    random_alloy,
)
from mlip_autopipec.validation.calculator import alloy_calculator_side, calculator_side
from mlip_autopipec.validation.evaluate import row_label
from mlip_autopipec.validation.score import error_text, row_error
from mlip_autopipec.validation.structures import material_scans

SETTINGS = ValidationConfig(properties=["eos", "alloys"])
CU_AU = SystemConfig(elements=["Cu", "Au"], prototype="fcc")
HALF = {"Cu": 0.5, "Au": 0.5}


class ShiftedEMT(Calculator):
    """EMT plus a constant energy per atom of each element: another reference energy, the
    same physics (what a DFT code with other pseudopotentials does to total energies)."""

    implemented_properties = ["energy", "forces", "stress"]

    def __init__(self, shifts: dict[str, float]) -> None:
        super().__init__()
        self.shifts = shifts

    def calculate(
        self, atoms: Any = None, properties: Any = None, changes: Any = all_changes
    ) -> None:
        super().calculate(atoms, properties, changes)
        probe = self.atoms.copy()
        probe.calc = EMT()
        shift = sum(self.shifts.get(symbol, 0.0) for symbol in probe.get_chemical_symbols())
        self.results = {
            "energy": probe.get_potential_energy() + shift,
            "forces": probe.get_forces(),
            "stress": probe.get_stress(),
        }


def own_minimum(atoms: Atoms, calculator: Any) -> tuple[float, float]:
    """(volume, energy) per atom at the minimum of E under isotropic scaling."""

    def energy(factor: float) -> float:
        probe = atoms.copy()
        probe.set_cell(atoms.cell * factor, scale_atoms=True)
        probe.calc = calculator
        return float(probe.get_potential_energy() / len(probe))

    best = minimize_scalar(energy, bracket=(0.97, 1.0, 1.03))
    return atoms.get_volume() * best.x**3 / len(atoms), float(best.fun)


def by_element(pure: list[Any]) -> dict[str, Any]:
    return dict(zip(CU_AU.elements, pure, strict=True))


def sides(calculator: Any, compositions: list[dict[str, float]]) -> tuple[list[Any], list[Any]]:
    scans = material_scans(CU_AU, SETTINGS, [])
    pure = [calculator_side(calculator, scan) for scan in scans]
    plans = alloy_plans(compositions, {scan.composition: scan for scan in scans})
    return pure, [alloy_calculator_side(calculator, plan) for plan in plans]


def test_ordered_cells_are_the_smallest_that_hold_the_composition() -> None:
    diamond = bulk("Si", "diamond", a=5.43)
    zincblende, repeats = ordered_alloy(diamond, {"Si": 0.5, "Ge": 0.5})
    assert (repeats, zincblende.get_chemical_symbols()) == (1, ["Si", "Ge"])
    quarter, repeats = ordered_alloy(diamond, {"Si": 0.75, "Ge": 0.25})
    assert repeats == 2 and sorted(quarter.get_chemical_symbols()) == ["Ge", "Si", "Si", "Si"]
    fcc, repeats = ordered_alloy(bulk("Cu", "fcc", a=3.6), {"Cu": 0.25, "Au": 0.75})
    assert repeats == 4 and fcc.get_chemical_symbols().count("Au") == 3
    third, repeats = ordered_alloy(diamond, {"Si": 0.667, "Ge": 0.333})  # as a user writes 1/3
    assert repeats == 3 and third.get_chemical_symbols().count("Ge") == 2
    random = random_alloy(bulk("Cu", "fcc", a=3.6).repeat(2), {"Cu": 0.25, "Au": 0.75})
    assert random.get_chemical_symbols().count("Au") == 6


def test_each_pure_element_is_validated_at_its_own_lattice_constant() -> None:
    scans = material_scans(CU_AU, SETTINGS, [])
    assert [scan.composition for scan in scans] == ["Cu", "Au"]
    assert [scan.primitive.get_chemical_symbols() for scan in scans] == [["Cu"], ["Au"]]
    assert scans[1].lattice_constant == pytest.approx(bulk("Au", "fcc").cell.lengths()[0] * 2**0.5)
    single = material_scans(SystemConfig(elements=["Cu"], prototype="fcc"), SETTINGS, [])
    assert [scan.composition for scan in single] == [""]  # one material: rows name nothing


def test_mixing_energy_and_alloy_a0_are_each_sides_own() -> None:
    """EMT's ordered CuAu: E_mix from its own minima, computed here independently."""
    pure, alloys = sides(EMT(), [HALF])
    ordered = alloys[0]
    assert ordered.composition == "Au0.5Cu0.5"
    e_cu = own_minimum(bulk("Cu", "fcc", a=3.6), EMT())[1]
    e_au = own_minimum(bulk("Au", "fcc", a=4.08), EMT())[1]
    cell, _ = ordered_alloy(bulk("Cu", "fcc", a=3.84), HALF)
    v_alloy, e_alloy = own_minimum(cell, EMT())
    assert ordered.eos is not None and not ordered.fallback
    assert ordered.eos.v0 == pytest.approx(v_alloy, rel=2e-3)
    rows = compare_alloys(alloys, alloys, by_element(pure), by_element(pure))
    by_name = {row.name: row for row in rows}
    mixing = by_name["E_mix (ordered)"]
    assert mixing.dft == pytest.approx(1000 * (e_alloy - (e_cu + e_au) / 2), abs=1.0)
    a_cu, a_au = (side.eos.a0 for side in pure)
    assert min(a_cu, a_au) < by_name["a0 (alloy)"].dft < max(a_cu, a_au)
    assert by_name["Vegard deviation"].dft == pytest.approx(
        by_name["a0 (alloy)"].dft - (a_cu + a_au) / 2
    )
    assert by_name["E_mix (random, unrelaxed)"].dft is not None
    assert {row_label(row.as_dict()) for row in rows} >= {"Au0.5Cu0.5: E_mix (ordered)"}


def test_per_element_reference_energies_do_not_change_mixing_energies() -> None:
    """Energies per atom 2000 eV apart between the elements (as Ge PAW and Si are): the
    mixing energies, the alloy a0 and their errors stay the EMT ones."""
    shifted = ShiftedEMT({"Au": -2000.0, "Cu": -100.0})
    compositions = [HALF, {"Cu": 0.75, "Au": 0.25}]
    pure, alloys = sides(EMT(), compositions)
    pure_shifted, alloys_shifted = sides(shifted, compositions)
    rows = compare_alloys(
        alloys_shifted,
        alloys,
        by_element(pure_shifted),
        by_element(pure),
    )
    for row in rows:
        assert row.potential == pytest.approx(row.dft, abs=1e-3), row.name  # meV, Å
        assert row_error(row.as_dict()) in (None, pytest.approx(0, abs=1e-4))


def test_a_mixing_energy_off_by_the_target_scores_one() -> None:
    row = {"name": "E_mix (ordered)", "unit": "meV/atom", "potential": 25.0, "dft": 10.0}
    assert row_error({**row, "relative_error": 1.5}) == pytest.approx(1.0)
    vegard = {"name": "Vegard deviation", "potential": 0.02, "dft": -0.01, "relative_error": 3}
    assert row_error(vegard) is None
    alloy_a0 = {
        "name": "a0 (alloy)",
        "potential": 5.6,
        "dft": 5.6 * 1.01,
        "relative_error": -0.0099,
    }
    assert row_error(alloy_a0) == pytest.approx(0.99)


def test_differences_are_shown_as_differences_and_ratios_as_percent() -> None:
    """What the table shows is what the score judges: a mixing energy 15 meV/atom off is
    "+15 meV/atom", not "+150 %"; a Vegard deviation near zero has no meaningful ratio."""
    mixing = {"name": "E_mix (ordered)", "unit": "meV/atom", "potential": 25.0, "dft": 10.0}
    assert error_text({**mixing, "relative_error": 1.5}) == "+15 meV/atom"
    vegard = {"name": "Vegard deviation", "unit": "Å", "potential": -0.0546, "dft": -0.0064}
    assert error_text({**vegard, "relative_error": -7.58}) == "-0.0482 Å"
    vacancy = {"name": "E_vac (unrelaxed)", "unit": "eV", "potential": 1.85, "dft": 3.05}
    assert error_text({**vacancy, "relative_error": -0.39}) == "-1.2 eV"
    a0 = {"name": "a0", "unit": "Å", "potential": 5.5, "dft": 5.0, "relative_error": 0.1}
    assert error_text(a0) == "+10.0 %"
    assert error_text({**a0, "potential": None, "relative_error": None}) == ""


def test_random_cell_is_the_same_structure_on_every_call() -> None:
    scans = material_scans(CU_AU, SETTINGS, [])
    plans = [alloy_plans([HALF], {s.composition: s for s in scans})[0] for _ in range(2)]
    first, second = (plan.random_at(12.0)["random"] for plan in plans)
    assert first.get_chemical_symbols() == second.get_chemical_symbols()
    np.testing.assert_allclose(first.positions, second.positions)


def test_the_table_names_every_row_and_check_by_its_composition() -> None:
    from mlip_autopipec.orchestration.validation import PotentialSides, candidate_document
    from mlip_autopipec.orchestration.validation_dft import (
        AlloyReference,
        DFTCost,
        DFTReference,
        MaterialReference,
    )

    scans = material_scans(CU_AU, SETTINGS, [])
    plans = alloy_plans([HALF], {scan.composition: scan for scan in scans})
    dft_pure, dft_alloys = sides(EMT(), [HALF])
    reference = DFTReference(
        tuple(MaterialReference(scan, side) for scan, side in zip(scans, dft_pure, strict=True)),
        tuple(AlloyReference(plan, side) for plan, side in zip(plans, dft_alloys, strict=True)),
        DFTCost(0.3, 0, 0, 0, 0, 0.0),
    )
    document = candidate_document(
        PotentialSides(*sides(ShiftedEMT({"Au": -50.0}), [HALF])), reference, []
    )
    labels = [row_label(row) for row in document["comparisons"]]
    assert labels[:2] == ["Cu: a0", "Cu: B (EOS)"] and "Au: a0" in labels
    assert "Au0.5Cu0.5: E_mix (random, unrelaxed)" in labels
    assert all(
        check["name"].split(": ")[0] in ("Cu", "Au", "Au0.5Cu0.5") for check in document["checks"]
    )
    assert document["score"]["failed_checks"] == 0
    assert document["score"]["mean_error_over_target"] == pytest.approx(0, abs=1e-3)
    assert [m["composition"] for m in document["materials"]] == ["Au", "Au0.5Cu0.5"]


def test_the_validation_md_starts_from_every_pure_crystal_and_every_alloy() -> None:
    from types import SimpleNamespace

    from mlip_autopipec.orchestration.validation import md_starts

    scans = material_scans(CU_AU, SETTINGS, [])
    plans = alloy_plans([HALF, {"Cu": 0.75, "Au": 0.25}], {s.composition: s for s in scans})
    reference: Any = SimpleNamespace(
        materials=[SimpleNamespace(scan=scan) for scan in scans],
        alloys=[SimpleNamespace(plan=plan) for plan in plans],
    )
    starts = md_starts(reference, (2, 2, 2))
    assert [(name, suffix) for name, suffix, _ in starts] == [
        ("Cu", ""), ("Au", "_Au"), (plans[0].scan.composition, f"_{plans[0].scan.composition}"),
        (plans[1].scan.composition, f"_{plans[1].scan.composition}"),
    ]  # fmt: skip
    cu, au, half, quarter = (atoms for _, _, atoms in starts)
    assert len(cu) == len(au) == 8 and set(au.get_chemical_symbols()) == {"Au"}
    for alloy, plan in ((half, plans[0]), (quarter, plans[1])):
        assert len(alloy) >= len(cu) and len(alloy) % len(plan.random) == 0
        symbols = alloy.get_chemical_symbols()
        assert symbols.count("Au") / len(symbols) == pytest.approx(plan.fractions["Au"])
