"""The validation's pure parts on constructed data: structures, property formulas, comparison
table, the config section and the report fragment."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.units import GPa

from mlip_autopipec.config import (
    ConfigError,
    SurfaceSpec,
    SystemConfig,
    ValidationConfig,
    config_from_dict,
)
from mlip_autopipec.core.database import structure_hash
from mlip_autopipec.orchestration.campaign import Campaign, CampaignLayout
from mlip_autopipec.orchestration.report_validation import validation_lines, validation_section
from mlip_autopipec.validation.calculator import calculator_side
from mlip_autopipec.validation.elastic import shear_constant, uniaxial_constants
from mlip_autopipec.validation.evaluate import compare, side_properties
from mlip_autopipec.validation.properties import (
    Calculated,
    fit_eos,
    radial_distribution,
    rdf_peaks,
    surface_energy,
    vacancy_formation_energy,
)
from mlip_autopipec.validation.structures import (
    ANCHOR_VOLUME_STRAINS,
    eos_volume_factors,
    equilibrium_plan,
    scan_plan,
    shear_strain,
    strained,
    uniaxial_strain,
)
from tests.conftest import MINIMAL_CONFIG


def birch_murnaghan(volume: np.ndarray, e0: float, v0: float, b0: float, bp: float) -> np.ndarray:
    eta = (v0 / volume) ** (2 / 3)
    return e0 + 9 * v0 * b0 / 16 * ((eta - 1) ** 3 * bp + (eta - 1) ** 2 * (6 - 4 * eta))


def test_eos_fit_recovers_a_known_bulk_modulus_and_volume() -> None:
    b0 = 98.0 * GPa
    volumes = np.linspace(19.0, 21.6, 7)
    energies = birch_murnaghan(volumes, -5.4, 20.2, b0, 4.2)
    result = fit_eos(list(volumes), list(energies), a_reference=5.43, v_reference=20.0)
    assert result.bulk_modulus == pytest.approx(98.0, rel=1e-3)
    assert result.v0 == pytest.approx(20.2, rel=1e-4)
    assert result.a0 == pytest.approx(5.43 * (20.2 / 20.0) ** (1 / 3), rel=1e-4)


def cubic_stiffness(c11: float, c12: float, c44: float) -> np.ndarray:
    stiffness = np.zeros((6, 6))
    stiffness[:3, :3] = c12
    np.fill_diagonal(stiffness[:3, :3], c11)
    stiffness[3:, 3:] = np.eye(3) * c44
    return stiffness


def linear_stress(stiffness: np.ndarray, eps: np.ndarray, residual: float = 0.5) -> np.ndarray:
    """Voigt stress (eV/Å^3) of a linear law plus a residual pressure that must cancel."""
    voigt = np.array([eps[0, 0], eps[1, 1], eps[2, 2], 2 * eps[1, 2], 2 * eps[0, 2], 0])
    return (stiffness @ voigt + residual * np.array([1, 1, 1, 0, 0, 0])) * GPa


def test_elastic_constants_from_a_linear_stress_strain_law() -> None:
    stiffness = cubic_stiffness(160.0, 60.0, 80.0)
    plus, minus = (linear_stress(stiffness, uniaxial_strain(s)) for s in (0.01, -0.01))
    assert uniaxial_constants(0.01, plus, minus) == pytest.approx((160.0, 60.0))
    plus, minus = (linear_stress(stiffness, shear_strain(s)) for s in (0.01, -0.01))
    assert shear_constant(0.01, plus, minus) == pytest.approx(80.0)


def test_elastic_constants_of_emt_copper_match_finite_differences_of_its_energy() -> None:
    """The strained cells and the stress sign agree with ASE: C11 > C12 > 0, C44 > 0."""
    cell = bulk("Cu", "fcc", a=3.59)

    def stresses(matrix: Any) -> list[np.ndarray]:
        found = []
        for sign in (1, -1):
            atoms = strained(cell, matrix(sign * 0.005))
            atoms.calc = EMT()
            found.append(atoms.get_stress())
        return found

    c11, c12 = uniaxial_constants(0.005, *stresses(uniaxial_strain))
    c44 = shear_constant(0.005, *stresses(shear_strain))
    assert c11 > c12 > 0 and c44 > 0
    assert 100 < c11 < 250  # EMT Cu: ~170 GPa


def test_vacancy_and_surface_formulas() -> None:
    assert vacancy_formation_energy(-80.0, 16, -70.0) == pytest.approx(-70.0 + 75.0)
    # 1 eV excess over two faces of 1 Å^2 each: 0.5 eV/Å^2 = 8.01 J/m^2
    assert surface_energy(-9.0, 2, -5.0, 1.0) == pytest.approx(8.0109, rel=1e-4)


def test_rdf_of_a_perfect_crystal_peaks_at_the_neighbour_distances() -> None:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    r, g = radial_distribution([atoms], r_max=4.5, n_bins=450)
    first, second = rdf_peaks(r, g)
    assert first == pytest.approx(5.43 * np.sqrt(3) / 4, abs=0.01)
    assert second == pytest.approx(5.43 / np.sqrt(2), abs=0.01)
    assert np.all(g[r < 2.2] == 0)


def test_the_default_plan_for_si_scans_seven_volumes_then_builds_stage_two_at_a0() -> None:
    system = config_from_dict(copy.deepcopy(MINIMAL_CONFIG)).system
    scan = scan_plan(system, ValidationConfig(), [])
    assert list(scan.structures) == [f"eos_{i}" for i in range(7)]
    plan = equilibrium_plan(scan, 20.5)
    assert plan.primitive.get_volume() / 2 == pytest.approx(20.5, rel=1e-5)
    assert plan.lattice_constant == pytest.approx((20.5 * 8) ** (1 / 3), rel=1e-5)
    counts = {p: len(plan.names(p)) for p in ("elastic_", "gamma_", "vacancy_", "phonon_")}
    assert counts == {"elastic_": 4, "gamma_": 6, "vacancy_": 2, "phonon_": 1}
    assert [len(plan.structures[n]) for n in plan.names("vacancy_")] == [16, 15]
    assert len(plan.structures["phonon_000"]) == 16
    surfaces = [SurfaceSpec(miller=(1, 1, 1), layers=2, vacuum=4.0)]
    settings = ValidationConfig(properties=["eos", "surface"])
    with_slab = equilibrium_plan(scan_plan(system, settings, surfaces), 20.5)
    assert set(with_slab.structures) == {"bulk", "surface_111"}
    assert structure_hash(with_slab.structures["bulk"]) == structure_hash(with_slab.primitive)


@pytest.mark.parametrize("points", [5, 7, 9, 11, 13])
def test_no_e_v_volume_equals_a_training_anchor_volume(points: int) -> None:
    factors = eos_volume_factors(ValidationConfig(eos_points=points))
    quarter_step = 0.16 / (points - 1) / 4
    for anchor in ANCHOR_VOLUME_STRAINS:
        assert np.min(np.abs(factors - 1 - anchor)) >= quarter_step - 1e-12, (points, anchor)
    assert factors.min() <= 0.92 and factors.max() >= 1.08  # still spans +-8 %
    assert np.all(np.diff(factors) > 0)


def test_hcp_has_no_cubic_elastic_constants() -> None:
    system = SystemConfig(elements=["Si"], prototype="hcp", lattice_constant=3.8)
    scan = scan_plan(system, ValidationConfig(properties=["eos", "elastic"]), [])
    assert len(scan.names("eos_")) == 7
    assert not equilibrium_plan(scan, 20.0).names("elastic_")


def emt_results(structures: dict[str, Any], scale: float = 1.0) -> dict[str, Calculated]:
    results = {}
    for name, atoms in structures.items():
        probe = atoms.copy()
        probe.calc = EMT()
        results[name] = Calculated(
            probe.get_potential_energy() * scale, probe.get_forces() * scale, probe.get_stress()
        )
    return results


def test_both_sides_of_emt_copper_agree_and_a_failed_label_leaves_a_gap() -> None:
    pytest.importorskip("phonopy")
    system = SystemConfig(elements=["Cu"], prototype="fcc", lattice_constant=3.6)
    settings = ValidationConfig(properties=["eos", "elastic", "vacancy", "phonons"])
    scan = scan_plan(system, settings, [])
    side = calculator_side(EMT(), scan, "DFT")
    assert side.eos is not None and 3.55 < side.eos.a0 < 3.65
    assert side.vacancy_energy is not None and 0.5 < side.vacancy_energy < 2.0
    assert side.phonons is not None and 6 < max(side.phonons.point_frequencies["X"]) < 9
    assert all(check.passed for check in side.checks), side.checks
    plan = equilibrium_plan(scan, side.eos.v0)
    results = emt_results(plan.structures)
    del results["vacancy_defect"]
    from mlip_autopipec.validation.equilibrium import Equilibrium

    gap = side_properties("DFT", Equilibrium(side.eos.v0, side.eos.a0, side.eos), plan, results)
    table = {row.name: row for row in compare(side, gap)}
    assert table["E_vac (unrelaxed)"].dft is None
    assert table["E_vac (unrelaxed)"].relative_error is None
    assert table["a0"].relative_error == 0.0
    assert table["C11"].relative_error == pytest.approx(0.0, abs=1e-9)
    # one atom per cell: the highest frequency at Gamma is acoustic, two zeros are no error
    assert table["phonon max at G"].relative_error is None


def test_config_section_defaults_and_errors() -> None:
    data = copy.deepcopy(MINIMAL_CONFIG)
    config = config_from_dict(data)
    assert config.validation.enabled and "phonons" in config.validation.properties
    assert config.validation.eos_volume_range == 0.08
    data["validation"] = {"properties": ["eos", "bandgap"], "eos_points": 3}
    with pytest.raises(ConfigError) as error:
        config_from_dict(data)
    text = " ".join(error.value.problems)
    assert "validation.properties" in text and "validation.eos_points" in text


def test_report_section_reads_the_json(tmp_path: Path) -> None:
    config = config_from_dict(copy.deepcopy(MINIMAL_CONFIG), base_dir=tmp_path)
    campaign = Campaign(config, None, CampaignLayout(tmp_path / "work"))  # type: ignore[arg-type]
    assert "No validation yet" in validation_section(campaign)
    folder = tmp_path / "work" / "validation"
    folder.mkdir(parents=True)
    document = {
        "iteration": 2,
        "potential": "p.yaml",
        "comparisons": [
            {"name": "a0", "unit": "Å", "potential": 5.5, "dft": 5.0, "relative_error": 0.1},
            {
                "name": "E_mix (ordered)",
                "unit": "meV/atom",
                "potential": 49.5,
                "dft": 34.5,
                "relative_error": 0.435,
                "composition": "Ge0.5Si0.5",
            },
        ],
        "dft_cost": {
            "structures": 12,
            "labeled": 11,
            "failed": 1,
            "new_calculations": 0,
            "wall_time": 42.0,
        },
        "md": None,
        "plots": ["missing.png"],
        "checks": [
            {
                "name": "E(V) convex over the scan",
                "side": "potential",
                "passed": False,
                "detail": "d2E/dV2 <= 0 at 20.01 Å^3/atom (a 5.430 Å)",
            },
            {"name": "Born stability (cubic)", "side": "DFT", "passed": True, "detail": "ok"},
        ],
        "score": {"score": 1.5, "failed_checks": 1, "mean_error_over_target": 1.0},
    }
    (folder / "iter_002.json").write_text(json.dumps(document))
    section = validation_section(campaign)
    assert "+10.0 %" in section and "12 structures (11 labeled, 1 failed)" in section
    assert "+15 meV/atom" in section and "43.5 %" not in section
    assert "42 s of pw.x" in section and "<img" not in section
    assert 'color:#c00"><b>FAILED potential: E(V) convex over the scan' in section
    assert "Checks: 1 of 2 passed" in section
    lines = validation_lines(campaign)
    assert lines[1].strip().startswith("FAILED potential: E(V) convex over the scan: d2E/dV2")
    assert sum("FAILED" in line for line in lines) == 1
    assert any("score 1.500 (1 failed checks" in line for line in lines)
    assert any("DFT side: 1 of 12 pw.x calculations failed" in line for line in lines)
    md = {"atoms": 16, "temperature": 1200.0, "steps": 200, "steps_done": 10, "max_gamma": 23.6,
          "in_domain": False, "gamma_upper": 8.0}  # fmt: skip
    (folder / "iter_002.json").write_text(json.dumps({**document, "md": md}))
    lines = validation_lines(campaign)
    assert "  MD 1200 K: 10 of 200 steps, max gamma 23.6 (left its domain)" in lines
    assert "10 of 200 steps): max gamma 23.6" in validation_section(campaign)


def test_every_primitive_cell_of_both_stages_gets_the_same_k_mesh() -> None:
    """One mesh for the E-V cells and for the strained and displaced cells of stage 2,
    wherever in the scanned range a side's a0 falls, at the training labels' own k-spacing."""
    from mlip_autopipec.dft.inputs import kpoint_mesh

    system = SystemConfig(elements=["Si"], prototype="diamond", lattice_constant=5.43)
    scan = scan_plan(system, ValidationConfig(properties=["eos", "elastic"]), [])
    cells = list(scan.structures.values())
    for volume in (18.6, 20.0, 21.6):  # a0 anywhere in the +-8 % scan
        cells += equilibrium_plan(scan, volume).structures.values()
    assert len({kpoint_mesh(atoms, 0.5) for atoms in cells}) == 1
    own_cells = [
        Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True) for atoms in cells
    ]
    assert len({kpoint_mesh(atoms, 0.5) for atoms in own_cells}) > 1  # what the rule is for
