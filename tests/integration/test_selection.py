"""Selection by D-optimality in a real ACE basis (MaxVol w.r.t. the fit's active set), and the
method switch through `select_candidates` with CHGNet as the surrogate."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mlip_autopipec.config import MLIPConfig, config_from_dict
from mlip_autopipec.core import keys
from mlip_autopipec.core.quiet_imports import pyace_calculator
from mlip_autopipec.inference.selection import GAMMA_TOLERANCE, select_maxvol
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.database import open_database
from mlip_autopipec.orchestration.exploration import select_candidates
from mlip_autopipec.surrogate.representative import random_draw
from tests.integration.conftest import TrainedCampaign, training_config_dict

pytestmark = pytest.mark.slow


def strained_si(scale: float, rattle: float, seed: int) -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.set_cell(atoms.cell * scale, scale_atoms=True)
    atoms.positions += np.random.default_rng(seed).normal(0, rattle, atoms.positions.shape)
    return atoms


def training_structures(campaign: TrainedCampaign, count: int | None = None) -> list[Atoms]:
    """8-atom cells the potential was fitted on (their atoms built its active set)."""
    rows = open_database(campaign.config).select(**{keys.STATUS: keys.LABELED, keys.SPLIT: "train"})
    cells = [row.atoms for row in rows if len(row.atoms) == 8][:count]
    return [Atoms(a.numbers, a.positions, cell=a.cell, pbc=a.pbc) for a in cells]


def candidate_pool(campaign: TrainedCampaign) -> list[Atoms]:
    """Three training cells, then a compressed cell, then one compressed and rattled further."""
    return [*training_structures(campaign, 3), strained_si(0.9, 0.05, 1), strained_si(0.8, 0.1, 2)]


def max_gammas(campaign: TrainedCampaign, structures: list[Atoms]) -> list[float]:
    fit = campaign.result
    calculator = pyace_calculator(str(fit.potential), str(fit.active_set))
    gammas = []
    for atoms in structures:
        probe = atoms.copy()
        probe.calc = calculator
        probe.get_potential_energy()
        gammas.append(float(np.max(calculator.results["gamma"])))
    return gammas


def test_maxvol_picks_only_what_grows_the_active_set_most_novel_first(
    trained_campaign: TrainedCampaign,
) -> None:
    pool = candidate_pool(trained_campaign)
    gammas = max_gammas(trained_campaign, pool)
    assert all(g <= GAMMA_TOLERANCE for g in gammas[:3]), gammas  # inside the active set
    # Every training cell, the worst-fitted ones too: pace_activeset runs with -a.
    trained = max_gammas(trained_campaign, training_structures(trained_campaign))
    assert max(trained) <= GAMMA_TOLERANCE, trained
    assert gammas[4] > gammas[3] > 1, gammas
    fit = trained_campaign.result

    everything = select_maxvol(pool, fit.potential, fit.active_set, max_count=10)
    assert everything.indices == (4, 3)  # never padded with the three inside
    assert everything.extrapolative == 2
    assert everything.gammas == pytest.approx([gammas[4], gammas[3]], rel=1e-6)

    best = select_maxvol(pool, fit.potential, fit.active_set, max_count=1)
    assert best.indices == (4,)
    inside_only = select_maxvol(pool[:3], fit.potential, fit.active_set, max_count=5)
    assert inside_only.indices == () and inside_only.extrapolative == 0


def selection_config(root: Path, **selection: Any) -> MLIPConfig:
    data = training_config_dict(root)
    data["exploration"] = {
        "selection": selection,
        "surrogate": {"max_force": 1000.0, "max_energy_above_min": 100.0},  # keep all for the test
    }
    return config_from_dict(data, base_dir=root)


def add_pool(config: MLIPConfig, pool: list[Atoms], iteration: int) -> list[int]:
    return open_database(config).add_structures(
        pool, keys.CANDIDATE, iteration, "md:extract", skip_duplicates=False
    )


def selected_in(config: MLIPConfig, iteration: int) -> dict[int, dict[str, Any]]:
    rows = open_database(config).select(**{keys.STATUS: keys.SELECTED, keys.ITERATION: iteration})
    return {row.id: row.key_value_pairs for row in rows}


def test_method_switch_through_select_candidates(
    trained_campaign: TrainedCampaign, tmp_path: Path
) -> None:
    shutil.copytree(trained_campaign.root / "work", tmp_path / "work")
    pool = candidate_pool(trained_campaign)

    maxvol = selection_config(tmp_path, method="maxvol", n_select=4)
    ids = add_pool(maxvol, pool, iteration=1)
    summary = select_candidates(Campaign.open(maxvol), iteration=1)
    assert summary.method == "maxvol" and summary.selected == 2  # only two lie outside
    picked = selected_in(maxvol, 1)
    assert set(picked) == {ids[3], ids[4]}
    assert picked[ids[4]][keys.SELECTION_RANK] == 0
    for row_id in (ids[3], ids[4]):
        assert picked[row_id][keys.SELECTION_METHOD] == "maxvol"
        assert picked[row_id][keys.SELECTION_GAMMA] > 1
    again = select_candidates(Campaign.open(maxvol), iteration=1)
    assert again.selected == 0 and again.selected_in_iteration == 2

    random = selection_config(tmp_path, method="random", n_select=2, seed=7)
    ids = add_pool(random, pool, iteration=2)
    assert select_candidates(Campaign.open(random), iteration=2).method == "random"
    expected = {ids[i] for i in random_draw(len(ids), 2, seed=7, iteration=2)}
    picked = selected_in(random, 2)
    assert set(picked) == expected
    assert {kv[keys.SELECTION_METHOD] for kv in picked.values()} == {"random"}

    # Iteration 0 has no fit before it: maxvol falls back to initial_method.
    initial = selection_config(tmp_path, initial_method="kmedoids", n_select=2)
    add_pool(initial, pool, iteration=0)
    first = select_candidates(Campaign.open(initial), iteration=0)
    assert first.method == "kmedoids" and first.selected == 2
    assert {kv[keys.SELECTION_METHOD] for kv in selected_in(initial, 0).values()} == {"kmedoids"}
