"""Physical validation with the real potential (pacemaker fit) and real pw.x on tiny Si cells:
every property on both sides, each at its own a0, the checks, the report section, and a rerun
that runs no pw.x."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mlip_autopipec.cli import app
from mlip_autopipec.config import MLIPConfig, config_from_dict
from mlip_autopipec.core import keys
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.report import write_report
from mlip_autopipec.orchestration.training import finished_fits
from mlip_autopipec.orchestration.validation import validate_candidate, validate_potential
from mlip_autopipec.orchestration.validation_dft import (
    DFTReferenceAlongside,
    dft_reference,
    validation_campaign,
)
from mlip_autopipec.validation.checks import HELD_OUT_FORCES
from tests.conftest import write_config
from tests.integration.conftest import TrainedCampaign, training_config_dict

pytestmark = pytest.mark.skipif(shutil.which("pw.x") is None, reason="pw.x not installed")

# Cheap but real: the campaign's own 20 Ry / coarse-k pw.x settings, 5 E-V points, an 8-atom
# vacancy cell relaxed by 3 pw.x steps at most, the 2-atom cell as phonon supercell (exact at
# Gamma), one 4-atom slab.
TINY_VALIDATION = {
    "eos_points": 5,
    "vacancy_supercell": [2, 2, 1],
    "vacancy_relax_steps": 3,
    "phonon_supercell": [1, 1, 1],
    "md_steps": 40,
}


def validation_config(root: Path) -> MLIPConfig:
    data = training_config_dict(root)
    data["dft"]["timeout"] = 600
    data["exploration"] = {
        "generation": {"surfaces": [{"miller": [1, 1, 1], "layers": 2, "vacuum": 4.0}]}
    }
    data["inference"] = {"temperatures": [300.0, 600.0], "gamma_every": 10}
    data["validation"] = TINY_VALIDATION
    write_config(root, data)
    return config_from_dict(data, base_dir=root)


@pytest.fixture(scope="module")
def validated(
    trained_campaign: TrainedCampaign, tmp_path_factory: pytest.TempPathFactory
) -> tuple[MLIPConfig, dict]:
    root = tmp_path_factory.mktemp("validated")
    shutil.copytree(trained_campaign.root / "work", root / "work")
    config = validation_config(root)
    campaign = Campaign.open(config)
    # DFT's side in a thread of its own (Dask and pw.x there), as `run` has it alongside the
    # final fit
    reference = DFTReferenceAlongside(campaign).wait()
    assert reference is not None
    path = validate_potential(campaign, reference=reference)
    return config, json.loads(path.read_text())


def rows(document: dict) -> dict[str, dict]:
    return {row["name"]: row for row in document["comparisons"]}


def test_every_property_is_computed_on_both_sides(validated: tuple[MLIPConfig, dict]) -> None:
    _, document = validated
    table = rows(document)
    expected = {"a0", "B (EOS)", "B (from C11, C12)", "C11", "C12", "C44 (relaxed ions)"}
    expected |= {"C44 (clamped ions)", "E_vac (unrelaxed)", "E_vac (relaxed)"}
    expected |= {"gamma_111 (unrelaxed)", "phonon max at G"}
    assert expected <= set(table)
    for name in ("B (EOS)", "C11", "C44 (clamped ions)", "E_vac (unrelaxed)", "phonon max at G"):
        assert math.isfinite(table[name]["dft"]), table[name]
    # The DFT side is physical even at 20 Ry (the potential, fitted on little data, need not be).
    dft = document["dft_side"]
    assert 5.3 < table["a0"]["dft"] < 5.6 and not dft["fallback"]
    assert dft["lattice_constant"] == pytest.approx(table["a0"]["dft"], abs=1e-4)
    assert 60 < table["B (EOS)"]["dft"] < 120
    assert table["B (from C11, C12)"]["dft"] == pytest.approx(table["B (EOS)"]["dft"], rel=0.15)
    assert table["C11"]["dft"] > table["C12"]["dft"] > 0
    relaxed, clamped = table["C44 (relaxed ions)"]["dft"], table["C44 (clamped ions)"]["dft"]
    assert 0 < relaxed < clamped  # Si: ~75-80 vs ~100 GPa
    assert 2.0 < table["E_vac (unrelaxed)"]["dft"] < 6.0
    assert table["E_vac (relaxed)"]["dft"] <= table["E_vac (unrelaxed)"]["dft"] + 1e-3
    assert 0.5 < table["gamma_111 (unrelaxed)"]["dft"] < 4.0
    assert 12 < table["phonon max at G"]["dft"] < 19  # Si optical mode, ~15.5 THz
    dft_checks = [c for c in document["checks"] if c["side"] == "DFT"]
    assert dft_checks and all(c["passed"] for c in dft_checks), dft_checks
    assert {c["side"] for c in document["checks"]} == {"potential", "DFT"}
    assert document["score"]["score"] >= 0
    cost = document["dft_cost"]
    assert cost["labeled"] == cost["structures"] == cost["new_calculations"]
    assert cost["structures"] >= 5 + 4 + 6 + 2 + 2 + 1  # stage 1 + stage 2 at DFT's a0
    assert cost["failed"] == 0 and cost["wall_time"] > 0


def test_the_potential_is_scored_against_the_stored_dft_side_without_pw_x(
    validated: tuple[MLIPConfig, dict],
) -> None:
    config, document = validated
    campaign = Campaign.open(config)
    fit = finished_fits(campaign)[-1][1]
    attempts = sorted((config.workflow.work_dir / "validation" / "dft").rglob("attempt_*"))
    candidate = validate_candidate(campaign, fit)  # reads the stored DFT labels only
    assert candidate["score"] == document["score"]
    assert [r["dft"] for r in candidate["comparisons"]] == [
        r["dft"] for r in document["comparisons"]
    ]
    assert sorted((config.workflow.work_dir / "validation" / "dft").rglob("attempt_*")) == attempts


def test_the_potential_is_checked_on_the_campaigns_held_out_labels(
    validated: tuple[MLIPConfig, dict],
) -> None:
    """The forces on the test split, which the fit never saw: the same RMSE pacemaker reports
    for its test set, judged against workflow.target_force_rmse."""
    config, document = validated
    campaign = Campaign.open(config)
    fit = finished_fits(campaign)[-1][1]
    held_out = campaign.database.select(**{keys.STATUS: keys.LABELED, keys.SPLIT: "test"})
    assert held_out and fit.metrics.test is not None
    (check,) = [c for c in document["checks"] if c["name"] == HELD_OUT_FORCES]
    found = re.search(r"force RMSE (\d+) meV/Å on the (\d+) test-split labels", check["detail"])
    assert found is not None, check
    rmse, count = int(found.group(1)), int(found.group(2))
    assert count == len(held_out)
    assert rmse == pytest.approx(fit.metrics.test.rmse_forces, abs=1)  # meV/Å
    assert check["passed"] == (rmse <= 1000 * config.workflow.target_force_rmse)


def test_md_check_reports_gamma_and_rdf(validated: tuple[MLIPConfig, dict]) -> None:
    config, document = validated
    md = document["md"]
    assert md["temperature"] == 600.0 and md["steps_done"] == 40
    assert md["max_gamma"] is not None and md["max_gamma"] > 0
    assert md["in_domain"] == (md["max_gamma"] < config.inference.gamma_upper)
    assert md["rdf_peaks"] and 2.1 < md["rdf_peaks"][0] < 2.6  # Si-Si bond
    folder = config.workflow.work_dir / "validation"
    for name in document["plots"]:
        assert (folder / name).stat().st_size > 1000


def test_validation_never_touches_the_training_database(
    validated: tuple[MLIPConfig, dict], trained_campaign: TrainedCampaign
) -> None:
    config, _ = validated
    copied = Campaign.open(config).database
    original = Campaign.open(trained_campaign.config).database
    assert copied.count() == original.count()
    assert not (config.workflow.work_dir / "dft").exists()


def test_report_shows_validation_and_a_rerun_reuses_the_dft_labels(
    validated: tuple[MLIPConfig, dict],
) -> None:
    config, first = validated
    attempts = sorted((config.workflow.work_dir / "validation" / "dft").glob("*/sub_*/attempt_*"))
    config_path = config.workflow.work_dir.parent / "config.yaml"
    result = CliRunner().invoke(app, ["validate-potential", str(config_path)])
    assert result.exit_code == 0, result.output
    again = json.loads(
        next((config.workflow.work_dir / "validation").glob("iter_*.json")).read_text()
    )
    assert again["dft_cost"]["new_calculations"] == 0
    assert [r["dft"] for r in again["comparisons"]] == [r["dft"] for r in first["comparisons"]]
    after = sorted((config.workflow.work_dir / "validation" / "dft").glob("*/sub_*/attempt_*"))
    assert after == attempts
    page = write_report(Campaign.open(config)).read_text()
    assert "<h2>Validation</h2>" in page and "C44 (relaxed ions)" in page
    assert "Checks:" in page
    assert "stays inside its domain" in page or "leaves its domain" in page
    assert page.count("data:image/png") >= 3


def test_an_iteration_without_a_potential_is_one_line_error(
    validated: tuple[MLIPConfig, dict],
) -> None:
    config, _ = validated
    config_path = config.workflow.work_dir.parent / "config.yaml"
    result = CliRunner().invoke(app, ["validate-potential", str(config_path), "--iteration", "7"])
    assert result.exit_code == 1
    assert "iteration 7 has no finished potential" in result.output


def test_changed_dft_settings_never_reuse_the_stored_labels(
    validated: tuple[MLIPConfig, dict],
) -> None:
    config, _ = validated
    data = yaml.safe_load((config.workflow.work_dir.parent / "config.yaml").read_text())
    data["dft"]["ecutwfc"] = float(data["dft"]["ecutwfc"]) + 2.0
    data["workflow"]["work_dir"] = str(config.workflow.work_dir)
    changed = config.workflow.work_dir.parent / "changed.yaml"
    changed.write_text(yaml.safe_dump(data))
    before = sorted((config.workflow.work_dir / "validation").rglob("*"))
    result = CliRunner().invoke(app, ["validate-potential", str(changed)])
    assert result.exit_code == 1
    assert "other dft settings (ecutwfc)" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert sorted((config.workflow.work_dir / "validation").rglob("*")) == before


def test_a_dft_side_calculation_that_failed_is_tried_again_on_the_next_run(
    validated: tuple[MLIPConfig, dict], tmp_path: Path
) -> None:
    config, _ = validated
    shutil.copytree(config.workflow.work_dir, tmp_path / "work")
    campaign = Campaign.open(validation_config(tmp_path))
    database = validation_campaign(campaign).database
    smallest = min(database.select(**{keys.STATUS: keys.LABELED}), key=lambda r: len(r.atoms))
    # as a pw.x timeout leaves it
    database.connector.db.update(smallest.id, **{keys.STATUS: keys.FAILED})

    cost = dft_reference(campaign).cost

    assert cost.new_calculations == 1 and cost.failed == 0
    assert database.select(id=smallest.id)[0].status == keys.LABELED
    assert dft_reference(campaign).cost.new_calculations == 0
