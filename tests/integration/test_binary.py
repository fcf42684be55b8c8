"""A Si-Ge campaign from `init --elements Si Ge`: real pw.x, real pacemaker, one iteration.

The config `init` writes is kept except for what makes it small (cells, counts, steps): the
pseudopotentials, cutoffs, per-element lattice constants, alloy compositions and the basis
shape are init's, so a binary that pyace or pace_activeset refuses fails here, not after a
user's DFT.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlip_autopipec.config import load_config
from mlip_autopipec.core import keys
from mlip_autopipec.core.composition import composition, formula
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.fit_errors import errors_by_composition
from mlip_autopipec.orchestration.training import finished_fits
from mlip_autopipec.training.dataset import LabeledStructure
from mlip_autopipec.training.evaluation import score

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("pw.x") is None, reason="pw.x not installed"),
]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlip_autopipec", *args]


def small(config: dict[str, Any]) -> dict[str, Any]:
    """init's config with 8-atom cells, seven candidates (all labeled), a short fit, no MD."""
    config["dft"].update(kspacing=0.5, timeout=600)
    config["dft_check"] = {"enabled": False}  # tests/integration/test_dft_check.py runs it
    config["exploration"]["anchors"] = {"enabled": False}
    config["exploration"]["generation"].update(
        supercells=[[1, 1, 1]], volumetric_strains=[0.0], shear_strains=[], rattle_stdev=[0.05],
        rattles_per_structure=1, mc_rattle=False, vacancies=0, surfaces=[], alloy_arrangements=1,
        alloy_compositions=[{"Si": 0.5, "Ge": 0.5}],
    )  # fmt: skip
    config["exploration"]["selection"] = {"n_select": 8, "initial_method": "fps"}
    config["training"].update(
        number_of_functions_per_element=10, maxiter=20, final_maxiter=0, test_fraction=0.0
    )
    config["workflow"].update(work_dir="work", max_iterations=1)
    config["validation"] = {"enabled": False}
    return config


def test_a_binary_campaign_from_init_labels_every_composition_and_trains(
    tmp_path: Path,
) -> None:
    made = subprocess.run(
        cli("init", str(tmp_path), "--elements", "Si", "Ge", "--pseudo", "Si=Si.pbe-rrkj.UPF"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(small(yaml.safe_load(path.read_text()))))
    result = subprocess.run(cli("run", str(path)), capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    campaign = Campaign.open(load_config(path))
    labeled = campaign.database.select(**{keys.STATUS: keys.LABELED})
    per_composition = Counter(formula(composition(r.atoms.get_chemical_symbols())) for r in labeled)
    # the pre-screen compared Ge with Ge, not with Si 2000 eV/atom above: every composition
    # the generators made reached DFT
    assert set(per_composition) == {"Si", "Ge", "Ge0.5Si0.5"}, per_composition
    (iteration, fit), *_ = finished_fits(campaign)
    assert iteration == 0 and fit.metrics.train.n_structures == len(labeled)
    blocks = yaml.safe_load(fit.potential.read_text())["species"]
    assert {block["speciesblock"] for block in blocks} >= {"Si", "Ge", "Ge Si"}
    assert (fit.folder / "output_potential.asi").is_file()  # pace_activeset ran for both

    # What selection shares picks by: the fit's force error per composition, which pools
    # back to its error over all of them.
    structures = [LabeledStructure(row.id, row.atoms) for row in labeled]
    entries = errors_by_composition(fit, structures)
    assert {formula(tuple(map(tuple, e["composition"]))) for e in entries} == set(per_composition)
    pooled = score(fit.potential, structures, fit.metrics.reference_energies)
    assert pooled is not None
    squares = sum(e["errors"]["rmse_forces"] ** 2 * e["errors"]["n_atoms"] for e in entries)
    assert squares / pooled.n_atoms == pytest.approx(pooled.rmse_forces**2, rel=1e-6)
