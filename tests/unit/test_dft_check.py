"""The DFT settings check: structure picks, settings, comparison and verdict (pw.x replaced by
its recorded real outputs of 2-atom Si cells, tests/data/qe/check/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write as ase_io_write

from mlip_autopipec.config import DFTCheckConfig, config_from_dict
from mlip_autopipec.dft.check import (
    BASE,
    CUTOFF,
    KPOINTS,
    CheckStructure,
    SCFValues,
    calculation_key,
    check_settings,
    compare,
    extrapolated,
    intermediate_settings,
    pick_structures,
    relative_energies,
)
from mlip_autopipec.dft.check_verdict import judge, outcome_document
from mlip_autopipec.dft.parser import parse_pw_output
from mlip_autopipec.generation import StructureBuilder
from tests.conftest import DATA_DIR

RECORDED = DATA_DIR / "qe" / "check"
FAKE_PW = Path(__file__).resolve().parents[1] / "fakes" / "pw_scripted.py"
CHECK = DFTCheckConfig()


def values(energy: float, forces: Any, stress: Any = None) -> SCFValues:
    return SCFValues(energy, np.asarray(forces, dtype=float), stress)


def si(n: int = 2, a: float = 5.43) -> Atoms:
    return bulk("Si", "diamond", a=a).repeat((1, 1, max(1, n // 2)))


def dft_config(config_dict: dict[str, Any], **dft: Any) -> Any:
    config_dict["dft"].update(dft)
    return config_from_dict(config_dict).dft


# --- which structures --------------------------------------------------------------------


def test_picks_smallest_largest_most_compressed_and_most_distorted(
    config_dict: dict[str, Any],
) -> None:
    config = config_from_dict(config_dict)
    built = StructureBuilder(config.system, config.exploration.generation, 0).build()
    picked = pick_structures([(item.atoms, item.origin) for item in built])
    by_name = {p.name: p for p in picked}
    assert list(by_name) == ["smallest", "largest", "strained", "hot"]
    sizes = [len(item.atoms) for item in built]
    assert len(by_name["smallest"].atoms) == min(sizes)
    assert len(by_name["largest"].atoms) == max(sizes)
    assert "strain" in by_name["strained"].origin or "shear" in by_name["strained"].origin
    assert "rattle" in by_name["hot"].origin
    volumes = [len(p.atoms) / p.atoms.get_volume() for p in picked]
    assert len({round(v, 6) for v in volumes}) >= 2  # not four copies of one cell


def test_any_material_and_unknown_origins_give_smallest_and_largest() -> None:
    cu = bulk("Cu", "fcc", a=3.6)
    picked = pick_structures([(cu.repeat(2), "seed"), (cu, "seed"), (cu.repeat(3), "seed")])
    assert [(p.name, len(p.atoms)) for p in picked] == [("smallest", 1), ("largest", 27)]
    assert pick_structures([]) == []


# --- which settings ----------------------------------------------------------------------


def test_references_are_denser_kpoints_and_a_higher_cutoff(config_dict: dict[str, Any]) -> None:
    dft = dft_config(config_dict, kspacing=0.6, ecutwfc=24.0, ecutrho=96.0)
    settings = check_settings(dft, CHECK)
    assert settings[BASE] == dft
    assert settings[KPOINTS].kspacing == pytest.approx(0.36)
    assert (settings[KPOINTS].ecutwfc, settings[KPOINTS].ecutrho) == (24.0, 96.0)
    assert (settings[CUTOFF].ecutwfc, settings[CUTOFF].ecutrho) == (31.2, 124.8)
    assert settings[CUTOFF].kspacing == 0.6
    assert 0.36 < intermediate_settings(dft, CHECK).kspacing < 0.6


def test_calculation_key_ignores_how_pw_x_runs_not_what_it_computes(
    config_dict: dict[str, Any],
) -> None:
    dft = dft_config(config_dict)
    atoms = si()
    key = calculation_key(atoms, dft)
    quieter = dft.model_copy(update={"timeout": 5000.0, "mixing_beta": 0.3, "launcher": ["x"]})
    assert calculation_key(atoms, quieter) == key
    assert calculation_key(atoms, dft.model_copy(update={"kspacing": 0.2})) != key
    assert calculation_key(atoms, dft.model_copy(update={"ecutwfc": 40.0})) != key
    moved = atoms.copy()
    moved.positions[0, 0] += 0.01
    assert calculation_key(moved, dft) != key


# --- the comparison ----------------------------------------------------------------------


def test_a_shift_common_to_all_structures_is_not_an_error() -> None:
    structures = [si(2), si(4), si(8)]
    assert np.allclose(relative_energies([0.5, 0.5, 0.5], structures), 0.0)
    residuals = relative_energies([0.5, 0.5, 0.53], structures)
    assert residuals[2] == pytest.approx(0.02) and sum(residuals) == pytest.approx(0.0)


def test_a_shift_per_element_is_not_an_error() -> None:
    def alloy(n_si: int, n_ge: int) -> Atoms:
        return Atoms(f"Si{n_si}Ge{n_ge}", positions=np.eye(3)[[0] * (n_si + n_ge)])

    structures = [alloy(2, 0), alloy(1, 1), alloy(1, 3), alloy(0, 2)]
    per_atom = [
        (0.1 * s.symbols.count("Si") - 0.3 * s.symbols.count("Ge")) / len(s) for s in structures
    ]
    assert np.allclose(relative_energies(per_atom, structures), 0.0)


def test_forces_energies_and_stress_are_compared_per_structure() -> None:
    atoms = si(2)
    structures = [CheckStructure("a", "x", atoms), CheckStructure("b", "x", atoms)]
    stress = np.zeros(6)
    a = {
        "a": values(-10.0, [[0.03, 0, 0], [0, 0.04, 0]], stress),
        "b": values(-9.0, np.zeros((2, 3))),
    }
    b = {"a": values(-10.2, np.zeros((2, 3)), stress + 0.01), "b": values(-9.2, np.zeros((2, 3)))}
    difference = compare(structures, a, b, "kpoints", "test")
    first = difference.structures[0]
    assert first.force_rms == pytest.approx(1000 * np.sqrt((0.03**2 + 0.04**2) / 6))
    assert first.force_max == pytest.approx(40.0)
    assert first.energy_shift == pytest.approx(100.0)  # meV/atom: 0.2 eV over 2 atoms
    assert difference.energy == pytest.approx(0.0)  # both moved by the same amount
    assert first.stress == pytest.approx(1.602, rel=1e-3)  # 0.01 eV/Å^3 in GPa
    assert difference.structures[1].stress is None and difference.stress == pytest.approx(
        1.602, rel=1e-3
    )


def test_converged_estimate_adds_the_cutoff_change_to_dense_kpoints() -> None:
    base = {"s": values(1.0, [[1.0, 0, 0]], np.ones(6))}
    dense_k = {"s": values(2.0, [[3.0, 0, 0]], 2 * np.ones(6))}
    high_cut = {"s": values(0.5, [[0.0, 0, 0]], np.zeros(6))}
    estimate = extrapolated(base, dense_k, high_cut)["s"]
    assert estimate.energy == 1.5
    assert estimate.forces.tolist() == [[2.0, 0, 0]]
    assert estimate.stress is not None and estimate.stress.tolist() == [1.0] * 6
    assert extrapolated(base, dense_k, {}) == {}


# --- the verdict -------------------------------------------------------------------------


def synthetic(force_k: float, force_c: float, energy_k: float = 0.0) -> Any:
    """Differences where the k-points move forces by force_k and the cutoff by force_c eV/Å."""
    structures = [CheckStructure(n, "x", si(2)) for n in ("a", "b")]
    zero = np.zeros((2, 3))
    base = {n: values(0.0, zero, np.zeros(6)) for n in ("a", "b")}
    kick = np.array([[1.0, 0, 0], [-1.0, 0, 0]])
    dense_k = {
        "a": values(2 * energy_k, force_k * kick, np.zeros(6)),
        "b": values(0.0, force_k * kick, np.zeros(6)),
    }
    high_cut = {n: values(0.0, force_c * kick, np.zeros(6)) for n in ("a", "b")}
    converged = extrapolated(base, dense_k, high_cut)
    return (
        compare(structures, base, dense_k, "kpoints", "k"),
        compare(structures, base, high_cut, "cutoff", "c"),
        compare(structures, base, converged, "total", "t"),
    )


def test_kpoints_off_by_more_than_tolerance_name_kspacing_and_the_reference(
    config_dict: dict[str, Any],
) -> None:
    dft = dft_config(config_dict, kspacing=0.6, ecutwfc=24.0, ecutrho=96.0)
    outcome = judge(dft, CHECK, synthetic(0.086, 0.002))
    assert not outcome.passed and outcome.blamed == ("kpoints",)
    assert outcome.message.startswith("dft.kspacing 0.6 gives forces ")
    assert "meV/Å RMS (tolerance 30)" in outcome.message
    assert outcome.message.endswith("off converged, mostly from the k-points; use kspacing <= 0.36")
    assert "\n" not in outcome.message


def test_a_passing_intermediate_kspacing_is_named_instead(config_dict: dict[str, Any]) -> None:
    dft = dft_config(config_dict, kspacing=0.6)
    differences = synthetic(0.086, 0.0)
    close = synthetic(0.01, 0.0)[2]
    assert judge(dft, CHECK, differences, (0.465, close)).message.endswith("kspacing <= 0.46")
    far = synthetic(0.07, 0.0)[2]
    assert judge(dft, CHECK, differences, (0.465, far)).message.endswith("kspacing <= 0.36")


def test_cutoff_off_names_ecutwfc_and_keeps_the_ecutrho_ratio(config_dict: dict[str, Any]) -> None:
    dft = dft_config(config_dict, kspacing=0.3, ecutwfc=24.0, ecutrho=96.0)
    outcome = judge(dft, CHECK, synthetic(0.002, 0.05))
    assert outcome.blamed == ("cutoff",)
    assert outcome.message.startswith("dft.ecutwfc 24 gives forces")
    assert outcome.message.endswith("use ecutwfc >= 32 (ecutrho 128)")


def test_both_settings_off_give_two_parts_on_one_line(config_dict: dict[str, Any]) -> None:
    dft = dft_config(config_dict, kspacing=0.6)
    outcome = judge(dft, CHECK, synthetic(0.07, 0.0), None)
    assert outcome.blamed == ("kpoints",)
    loose = DFTCheckConfig(force_rms=10.0, force_max=1000.0)
    both = judge(dft, loose, synthetic(0.03, 0.02))
    assert both.blamed == ("kpoints",)  # forces: the k-points contribute most
    energy_k = judge(dft, loose, synthetic(0.0, 0.02, energy_k=0.02))
    assert set(energy_k.blamed) == {"kpoints", "cutoff"} and "; " in energy_k.message
    assert "relative energies" in energy_k.message


def test_within_tolerance_passes_with_the_numbers(config_dict: dict[str, Any]) -> None:
    dft = dft_config(config_dict, kspacing=0.3, ecutwfc=30.0)
    outcome = judge(dft, CHECK, synthetic(0.005, 0.002))
    assert outcome.passed and outcome.blamed == ()
    assert outcome.message.startswith("dft settings pass (kspacing 0.3, ecutwfc 30): forces ")
    document = outcome_document(outcome, CHECK)
    assert json.loads(json.dumps(document))["passed"] is True
    assert [d["effect"] for d in document["differences"]] == ["kpoints", "cutoff", "total"]


# --- recorded real pw.x outputs ------------------------------------------------------------


def recorded(setting: str) -> dict[str, SCFValues]:
    found = {}
    for name in ("eq", "strained", "hot"):
        result = parse_pw_output((RECORDED / f"{name}_{setting}.out").read_text(), 0)
        assert result.is_label and result.forces is not None
        found[name] = SCFValues(result.energy or 0.0, result.forces, result.stress)
    return found


def recorded_differences() -> Any:
    structures = [CheckStructure(name, name, si(2)) for name in ("eq", "strained", "hot")]
    base, dense_k, high_cut = recorded(BASE), recorded(KPOINTS), recorded(CUTOFF)
    return (
        compare(structures, base, dense_k, "kpoints", "kspacing 0.6 vs 0.36"),
        compare(structures, base, high_cut, "cutoff", "ecutwfc 24 vs 31.2"),
        compare(structures, base, extrapolated(base, dense_k, high_cut), "total", "total"),
    )


def test_recorded_example_settings_are_refused_for_their_kpoints(
    config_dict: dict[str, Any],
) -> None:
    """The old example settings (kspacing 0.6, 24/96 Ry, Si.pbe-rrkj) on real pw.x results of
    2-atom cells: all cells shift by about 81-87 meV/atom, but not alike, and the hot cell's
    forces move by 30 meV/Å RMS; the cutoff hardly matters."""
    kpoints, cutoff, total = recorded_differences()
    assert min(s.energy_shift for s in kpoints.structures) > 80
    assert max(s.energy_shift for s in kpoints.structures) < 90
    assert kpoints.energy > 3.0 and total.energy > 3.0
    assert cutoff.force_rms < 1.0 and cutoff.energy < 0.1 and (cutoff.stress or 0) < 0.1
    assert {s.name: round(s.force_rms) for s in kpoints.structures}["hot"] == 31
    dft = dft_config(config_dict, kspacing=0.6, ecutwfc=24.0, ecutrho=96.0)
    # 2-atom cells only: at the default 5 meV/atom they pass; the example's own cells do not
    strict = DFTCheckConfig(energy=3.0)
    outcome = judge(dft, strict, (kpoints, cutoff, total))
    assert not outcome.passed and outcome.blamed == ("kpoints",)
    assert outcome.message == (
        "dft.kspacing 0.6 gives relative energies 3.21 meV/atom (tolerance 3) off converged, "
        "mostly from the k-points; use kspacing <= 0.36"
    )


def test_recorded_settings_pass_looser_tolerances(config_dict: dict[str, Any]) -> None:
    dft = dft_config(config_dict, kspacing=0.6, ecutwfc=24.0, ecutrho=96.0)
    loose = DFTCheckConfig(energy=5.0, force_rms=40.0)
    outcome = judge(dft, loose, recorded_differences())
    assert outcome.passed
    assert "forces 17.4 meV/Å RMS (tolerance 40)" in outcome.message


# --- wiring: stored result, reuse, `run` stops before any label -----------------------------


def two_atom_campaign(tmp_path: Path, config_dict: dict[str, Any], **dft: Any) -> Any:
    """A campaign whose generated structures are all 2-atom Si cells (a seed structure), with
    pw.x replaced by the recorded outputs of the `eq` cell, chosen by the settings asked."""
    from mlip_autopipec.orchestration.campaign import Campaign

    ase_io_write(tmp_path / "si2.extxyz", bulk("Si", "diamond", a=5.43))
    script = tmp_path / "script.json"
    rules = [
        {"when": r"ecutwfc\s*=\s*31\.2", "stdout": str(RECORDED / "eq_high_cutoff.out")},
        {"when": r"K_POINTS automatic\n6 6 6", "stdout": str(RECORDED / "eq_dense_kpoints.out")},
        {"when": ".", "stdout": str(RECORDED / "eq_configured.out")},
    ]
    script.write_text(json.dumps([{**rule, "exit": 0} for rule in rules]))
    config_dict["system"] = {
        "elements": ["Si"],
        "prototype": None,
        "seed_structures": ["si2.extxyz"],
    }
    config_dict["exploration"] = {
        "generation": {"supercells": [[1, 1, 1]], "vacancies": 0, "surfaces": []}
    }
    config_dict["dft"].update(
        command=[sys.executable, str(FAKE_PW), str(script)], ecutwfc=24.0, ecutrho=96.0, **dft
    )
    config_dict["dft_check"] = {"enabled": True}
    config_dict["compute"] = {"n_workers": 1}
    return Campaign.open(config_from_dict(config_dict, base_dir=tmp_path))


def fake_starts(campaign: Any) -> int:
    return sum(len(p.read_text().splitlines()) for p in campaign.layout.work_dir.rglob("fake.log"))


def test_check_is_stored_and_reused_until_the_dft_settings_change(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    from mlip_autopipec.orchestration.dft_check import result_path, run_dft_check
    from mlip_autopipec.orchestration.report_dft_check import status_lines

    campaign = two_atom_campaign(tmp_path, config_dict, kspacing=0.6)
    document, reused = run_dft_check(campaign)
    assert not reused and document["passed"]  # one recorded output for every cell: no change
    starts = fake_starts(campaign)
    assert starts == 3 * len(document["structures"]) >= 6
    assert json.loads(result_path(campaign).read_text())["fingerprint"] == document["fingerprint"]
    assert [s["kpoints"]["configured"] for s in document["structures"]][0] == [4, 4, 4]
    assert run_dft_check(campaign)[1] is True and fake_starts(campaign) == starts
    assert status_lines(campaign)[0].startswith("DFT check passed: dft settings pass")
    # Other tolerances: judged again, from the stored pw.x results
    stricter = campaign.config.model_copy(update={"dft_check": DFTCheckConfig(force_rms=1.0)})
    again = type(campaign)(stricter, campaign.database, campaign.layout)
    assert run_dft_check(again)[1] is False and fake_starts(campaign) == starts
    # Other dft settings: the stored verdict is out of date, and pw.x runs again
    denser = again.config.model_copy(
        update={"dft": again.config.dft.model_copy(update={"kspacing": 0.5})}
    )
    changed = type(campaign)(denser, campaign.database, campaign.layout)
    assert "made for other dft settings" in status_lines(changed)[0]
    run_dft_check(changed)
    assert fake_starts(campaign) > starts


def test_run_stops_before_any_label_when_the_check_fails(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    from mlip_autopipec.orchestration.campaign import Campaign
    from mlip_autopipec.orchestration.dft_check import DFTCheckFailed, DFTCheckSummary
    from mlip_autopipec.orchestration.workflow import PhaseExecutor, WorkflowManager

    config_dict["dft_check"] = {"enabled": True}
    campaign = Campaign.open(config_from_dict(config_dict, base_dir=tmp_path))
    ran: list[str] = []

    def phase(campaign: Any, iteration: int, progress: Any) -> Any:
        ran.append("phase")
        raise AssertionError("no phase may run")

    line = "dft.kspacing 0.6 gives forces 86 meV/Å RMS off converged (...); use kspacing <= 0.36"

    def failing(campaign: Any, progress: Any) -> DFTCheckSummary:
        ran.append("check")
        return DFTCheckSummary(False, line, result="work/dft_check/result.json")

    phases = {name: phase for name in ("explore", "label", "train", "infer", "extract", "select")}
    manager = WorkflowManager(campaign, PhaseExecutor(campaign, phases, failing))
    with pytest.raises(DFTCheckFailed) as error:
        manager.run()
    assert ran == ["check"]
    assert str(error.value) == (f"DFT check failed: {line} (details: work/dft_check/result.json)")


def test_a_failed_pw_x_run_stops_the_check_and_is_tried_again(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    from mlip_autopipec.orchestration.dft_check import DFTCheckFailed, run_dft_check

    campaign = two_atom_campaign(tmp_path, config_dict, kspacing=0.6, max_retries=0)
    script = tmp_path / "script.json"
    rules = json.loads(script.read_text())
    broken = {"stdout": str(DATA_DIR / "qe" / "si2_scf_not_converged_6.7.out"), "exit": 2}
    script.write_text(json.dumps([{**rules[1], **broken}, *rules]))
    with pytest.raises(DFTCheckFailed, match=r"pw.x failed on the \w+ structure .*dense_kpoints"):
        run_dft_check(campaign)
    script.write_text(json.dumps(rules))
    document, reused = run_dft_check(campaign)
    assert document["passed"] and not reused
