"""The DFT check end to end with real pw.x on 2- and 4-atom Si cells (about 1-2 minutes on 2
busy cores): the example's old settings (kspacing 0.6, 24/96 Ry, Si.pbe-rrkj) stop `run` with
one line before any label, the value that line names passes, and a rerun runs no pw.x."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from ase.build import bulk
from ase.io import write
from typer.testing import CliRunner

from mlip_autopipec.cli import app
from mlip_autopipec.config import load_config
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.dft_check import stored_result
from tests.conftest import MINIMAL_CONFIG

pytestmark = pytest.mark.skipif(shutil.which("pw.x") is None, reason="pw.x not installed")

runner = CliRunner()
ADVICE = re.compile(r"use kspacing <= ([0-9.]+)")


def small_campaign(root: Path, kspacing: float) -> Path:
    """Cells of 2 atoms (the primitive cell) and 4 atoms (doubled along a): at one k-spacing
    their meshes differ, as the example's 8- and 16-atom cells' do."""
    write(root / "si2.extxyz", bulk("Si", "diamond", a=5.43))
    data: dict[str, Any] = copy.deepcopy(MINIMAL_CONFIG)
    data["system"] = {
        "elements": ["Si"],
        "prototype": None,
        "seed_structures": ["si2.extxyz"],
        "min_distance": 1.0,
    }
    data["exploration"] = {
        "generation": {
            "seed": 3,
            "supercells": [[1, 1, 1], [2, 1, 1]],
            "volumetric_strains": [-0.04, 0.0, 0.04],
            "shear_strains": [0.03],
            "rattle_stdev": [0.1],
            "mc_rattle": False,
            "vacancies": 0,
        }
    }
    data["dft"].update(kspacing=kspacing, ecutwfc=24.0, ecutrho=96.0, timeout=600)
    data["dft_check"] = {"enabled": True}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def pw_runs(root: Path) -> int:
    return len(list((root / "work" / "dft_check").rglob("pw.out")))


def test_old_example_settings_are_refused_and_the_named_value_passes(tmp_path: Path) -> None:
    config_path = small_campaign(tmp_path, kspacing=0.6)
    result = runner.invoke(app, ["run", str(config_path)])
    assert result.exit_code == 1, result.output
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Traceback" not in result.output
    assert error[0].startswith("error: DFT check failed: dft.kspacing 0.6 gives ")
    advice = ADVICE.search(error[0])
    assert advice is not None, error[0]
    config = load_config(config_path)
    campaign = Campaign.open(config)
    assert campaign.database.count() == 0  # nothing explored, nothing labeled
    document = stored_result(campaign)
    assert document is not None and not document["passed"]
    effects = {d["effect"]: d for d in document["differences"]}
    assert effects["kpoints"]["energy"] > effects["cutoff"]["energy"]
    status = runner.invoke(app, ["status", str(config_path)])
    assert "DFT check FAILED: dft.kspacing 0.6" in status.output

    passing = float(advice.group(1))
    small_campaign(tmp_path, kspacing=passing)
    checked = runner.invoke(app, ["check-dft", str(config_path)])
    assert checked.exit_code == 0, checked.output
    assert f"DFT check passed: dft settings pass (kspacing {passing:g}" in checked.output
    runs = pw_runs(tmp_path)
    again = runner.invoke(app, ["check-dft", str(config_path)])
    assert again.exit_code == 0 and pw_runs(tmp_path) == runs  # stored: no pw.x
    assert runner.invoke(app, ["report", str(config_path)]).exit_code == 0
    page = (tmp_path / "work" / "report" / "index.html").read_text()
    assert "<h2>DFT check</h2><p><b>passed</b>" in page
