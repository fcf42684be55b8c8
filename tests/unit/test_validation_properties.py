"""The validation's pure parts on constructed data: structures, property formulas, comparison
table, the config section and the report fragment."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
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
from mlip_autopipec.orchestration.report_validation import validation_section
from mlip_autopipec.validation.evaluate import Calculated, compare, side_properties
from mlip_autopipec.validation.properties import (
    cubic_elastic_constants,
    fit_eos,
    radial_distribution,
    rdf_peaks,
    surface_energy,
    vacancy_formation_energy,
)
from mlip_autopipec.validation.structures import build_plan, strain_matrix, strained
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


def test_elastic_constants_from_a_linear_stress_strain_law() -> None:
    c11, c12, c44 = 160.0, 60.0, 80.0
    stiffness = np.zeros((6, 6))
    stiffness[:3, :3] = c12
    np.fill_diagonal(stiffness[:3, :3], c11)
    stiffness[3:, 3:] = np.eye(3) * c44
    residual = np.array([1.0, 1.0, 1.0, 0, 0, 0]) * 0.5  # a pressure that must cancel

    def stress(strain: float) -> np.ndarray:
        eps = strain_matrix(strain)
        voigt = np.array([eps[0, 0], eps[1, 1], eps[2, 2], 2 * eps[1, 2], 2 * eps[0, 2], 0])
        return (stiffness @ voigt + residual) * GPa

    found = cubic_elastic_constants(0.01, stress(0.01), stress(-0.01))
    assert found == pytest.approx({"C11": c11, "C12": c12, "C44": c44})


def test_elastic_constants_of_emt_copper_match_finite_differences_of_its_energy() -> None:
    """The strained cells and the stress sign agree with ASE: C11 > C12 > 0, C44 > 0."""
    cell = bulk("Cu", "fcc", a=3.59)
    stresses = []
    for sign in (1, -1):
        atoms = strained(cell, strain_matrix(sign * 0.005))
        atoms.calc = EMT()
        stresses.append(atoms.get_stress())
    found = cubic_elastic_constants(0.005, *stresses)
    assert found["C11"] > found["C12"] > 0 and found["C44"] > 0
    assert 100 < found["C11"] < 250  # EMT Cu: ~170 GPa


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


def test_the_default_plan_for_si_is_twelve_small_cells() -> None:
    system = config_from_dict(copy.deepcopy(MINIMAL_CONFIG)).system
    plan = build_plan(system, ValidationConfig(), [])
    counts = {p: len(plan.names(p)) for p in ("eos_", "elastic_", "vacancy_", "phonon_")}
    assert counts == {"eos_": 7, "elastic_": 2, "vacancy_": 2, "phonon_": 1}
    assert [len(plan.structures[n]) for n in plan.names("vacancy_")] == [16, 15]
    assert len(plan.structures["phonon_000"]) == 16
    surfaces = [SurfaceSpec(miller=(1, 1, 1), layers=2, vacuum=4.0)]
    with_slab = build_plan(system, ValidationConfig(properties=["eos", "surface"]), surfaces)
    assert set(with_slab.structures) == {f"eos_{i}" for i in range(7)} | {"bulk", "surface_111"}
    # the bulk reference is the middle E-V point: one pw.x run for both
    assert structure_hash(with_slab.structures["bulk"]) == structure_hash(
        with_slab.structures["eos_3"]
    )


def test_hcp_has_no_cubic_elastic_constants() -> None:
    system = SystemConfig(elements=["Si"], prototype="hcp", lattice_constant=3.8)
    plan = build_plan(system, ValidationConfig(properties=["eos", "elastic"]), [])
    assert not plan.names("elastic_") and len(plan.names("eos_")) == 7


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
    plan = build_plan(system, settings, [])
    results = emt_results(plan.structures)
    side = side_properties(plan, results)
    assert side.eos is not None and 3.55 < side.eos.a0 < 3.65
    assert side.vacancy_energy is not None and 0.5 < side.vacancy_energy < 2.0
    assert side.phonons is not None and 6 < max(side.phonons.point_frequencies["X"]) < 9
    missing = dict(results)
    del missing["vacancy_defect"]
    table = {row.name: row for row in compare(side, side_properties(plan, missing))}
    assert table["E_vac (unrelaxed)"].dft is None
    assert table["E_vac (unrelaxed)"].relative_error is None
    assert table["a0"].relative_error == 0.0


def test_config_section_defaults_and_errors() -> None:
    data = copy.deepcopy(MINIMAL_CONFIG)
    config = config_from_dict(data)
    assert config.validation.enabled and "phonons" in config.validation.properties
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
            {"name": "a0", "unit": "Å", "potential": 5.5, "dft": 5.0, "relative_error": 0.1}
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
    }
    (folder / "iter_002.json").write_text(json.dumps(document))
    section = validation_section(campaign)
    assert "+10.0 %" in section and "12 structures (11 labeled, 1 failed)" in section
    assert "42 s of pw.x" in section and "<img" not in section


def test_every_e_v_and_strained_cell_gets_the_same_k_mesh() -> None:
    from mlip_autopipec.dft.inputs import kpoint_mesh
    from mlip_autopipec.validation.structures import (
        common_kspacing,
        elastic_structures,
        eos_structures,
    )

    primitive = bulk("Si", "diamond", a=5.43)
    cells = [*eos_structures(primitive, ValidationConfig()).values()]
    cells += elastic_structures(primitive, 0.01).values()
    assert len({kpoint_mesh(atoms, 0.5) for atoms in cells}) > 1  # what the fix is for
    spacing = common_kspacing(cells, 0.5)
    assert spacing <= 0.5
    assert len({kpoint_mesh(atoms, spacing) for atoms in cells}) == 1
