"""`explore` end to end with CHGNet on the bundled Si example and on hand-made candidates."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from typer.testing import CliRunner

from mlip_autopipec.cli import app
from mlip_autopipec.config import MLIPConfig, config_from_dict
from mlip_autopipec.core import keys
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.database import open_database
from mlip_autopipec.orchestration.exploration import run_exploration, select_candidates

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "si" / "config.yaml"


def example_dict(work_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    data["workflow"]["work_dir"] = str(work_dir)
    # Picks only: the anchors (sent to DFT besides them) are tested in test_anchors/test_workflow.
    data["exploration"]["anchors"] = {"enabled": False}
    return data


def make_config(data: dict[str, Any]) -> MLIPConfig:
    return config_from_dict(data, base_dir=EXAMPLE.parent)


def expected_generated(generation: dict[str, Any]) -> int:
    supercells = len(generation["supercells"])
    deformed = (
        supercells * len(generation["volumetric_strains"]) * (1 + len(generation["shear_strains"]))
    )
    rattle_kinds = 2 if generation["mc_rattle"] else 1
    rattled = deformed * len(generation["rattle_stdev"]) * generation["rattles_per_structure"]
    surfaces = len(generation.get("surfaces", []))
    return deformed + rattled * rattle_kinds + supercells * generation["vacancies"] + surfaces


def test_explore_on_the_si_example_writes_the_expected_counts_once(tmp_path: Path) -> None:
    data = example_dict(tmp_path / "work")
    config = make_config(data)
    first = run_exploration(Campaign.open(config), iteration=0)
    selection = first.selection
    assert selection is not None
    assert first.generated == expected_generated(data["exploration"]["generation"]) == 32
    assert first.filtered + first.inserted == first.generated
    assert selection.candidates == first.inserted
    assert selection.selected == selection.selected_in_iteration == 8

    database = open_database(config)
    counts = Counter(record.status for record in database.select())
    assert sum(counts.values()) == first.inserted
    assert counts[keys.SELECTED] == 8
    assert counts[keys.REJECTED] == selection.prescreened + sum(
        selection.filtered_by_reason.values()
    )
    assert counts[keys.CANDIDATE] == first.inserted - 8 - counts[keys.REJECTED]
    for record in database.select():
        assert record.iteration == 0 and record.origin.startswith("builder:")
        assert keys.DESCRIPTOR in record.data
    ranks = sorted(
        r.key_value_pairs[keys.SELECTION_RANK] for r in database.select(status="selected")
    )
    assert ranks == list(range(8))

    second = run_exploration(Campaign.open(config), iteration=0)
    assert second.inserted == 0 and second.already_present == first.inserted
    assert second.selection is not None and second.selection.evaluated == 0
    assert second.selection.selected == 0 and second.selection.selected_in_iteration == 8
    assert database.count() == first.inserted
    assert database.count(**{keys.STATUS: keys.SELECTED}) == 8

    data["exploration"]["selection"]["n_select"] = 11
    more = select_candidates(Campaign.open(make_config(data)), iteration=0)
    assert more.selected == 3 and more.selected_in_iteration == 11
    assert more.warm_start == 8  # the first picks are the warm start of the new ones
    assert database.count(**{keys.STATUS: keys.SELECTED}) == 11


def small_generation() -> dict[str, Any]:
    return {
        "seed": 1,
        "supercells": [[1, 1, 1]],
        "volumetric_strains": [-0.03, 0.0, 0.03],
        "shear_strains": [0.04],
        "rattle_stdev": [0.05, 0.15],
        "rattles_per_structure": 1,
        "mc_rattle": True,
        "vacancies": 1,
    }


def test_prescreen_limits_reject_with_the_reason_in_the_database(tmp_path: Path) -> None:
    data = example_dict(tmp_path / "work")
    data["exploration"]["generation"] = small_generation()
    data["exploration"]["surrogate"]["max_force"] = 3.0
    data["exploration"]["surrogate"]["max_energy_above_min"] = 0.1
    config = make_config(data)
    summary = run_exploration(Campaign.open(config), iteration=0)
    assert summary.selection is not None
    screened = summary.selection.prescreened_by_reason
    assert screened["max_force"] > 0 and screened["energy_above_min"] > 0
    database = open_database(config)
    rejected = database.select(**{keys.STATUS: keys.REJECTED})
    assert len(rejected) == summary.selection.prescreened
    for record in rejected:
        force = record.key_value_pairs[keys.SURROGATE_MAX_FORCE]
        reason = record.key_value_pairs[keys.REASON]
        assert reason.startswith("max_force: ") == (force > 3.0)
        assert reason.split(":")[0] in ("max_force", "energy_above_min")
    for record in database.select(**{keys.STATUS: keys.SELECTED}):
        assert record.key_value_pairs[keys.SURROGATE_MAX_FORCE] <= 3.0


def rattled_si(seed: int, repeat: tuple[int, int, int] = (1, 1, 1)) -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(repeat)
    atoms.positions += np.random.default_rng(seed).normal(0, 0.04, size=atoms.positions.shape)
    return atoms


def labeled(atoms: Atoms) -> Atoms:
    result = atoms.copy()
    result.calc = SinglePointCalculator(result, energy=-43.0, forces=np.zeros((len(atoms), 3)))
    return result


def test_candidates_from_any_source_are_filtered_screened_and_picked_far_from_labeled(
    tmp_path: Path,
) -> None:
    data = example_dict(tmp_path / "work")
    data["exploration"]["selection"]["n_select"] = 1
    config = make_config(data)
    database = open_database(config)
    known = rattled_si(0)
    database.add_structures([labeled(known)], keys.LABELED, 0, "dft")
    near_known = known.copy()
    near_known.positions += 1e-3  # a rigid shift: same environments as the labeled one
    strained = rattled_si(1)
    strained.set_cell(strained.cell * 1.05, scale_atoms=True)
    too_close = rattled_si(2)
    too_close.positions[1] = too_close.positions[0] + [1.2, 0, 0]  # fails the 1.33 Å filter
    isolated = Atoms("Si2", positions=[[0, 0, 0], [9, 9, 9]], cell=[20, 20, 20], pbc=True)
    ids = database.add_structures(
        [near_known, strained, too_close, isolated], keys.CANDIDATE, 0, "md:extracted"
    )

    summary = select_candidates(Campaign.open(config), iteration=0)

    assert summary.candidates == 4 and summary.evaluated == 3
    assert summary.filtered_by_reason == {"min_distance": 1}
    assert summary.prescreened_by_reason == {"surrogate_error": 1}
    assert summary.warm_start == 1
    status = {row_id: database.get(row_id).status for row_id in ids}
    assert status == {
        ids[0]: keys.CANDIDATE,
        ids[1]: keys.SELECTED,  # the far one; the near duplicate of the labeled one stays
        ids[2]: keys.REJECTED,
        ids[3]: keys.REJECTED,
    }
    assert database.get(ids[2]).key_value_pairs[keys.REASON].startswith("min_distance: ")
    assert "isolated" in database.get(ids[3]).key_value_pairs[keys.REASON]
    (labeled_row,) = database.select(**{keys.STATUS: keys.LABELED})
    assert keys.DESCRIPTOR in labeled_row.data  # cached for the next warm start


def test_explore_command_prints_a_summary_and_is_repeatable(tmp_path: Path) -> None:
    data = example_dict(tmp_path / "work")
    data["exploration"]["generation"] = small_generation()
    data["exploration"]["selection"]["n_select"] = 5
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(data))
    runner = CliRunner()

    first = runner.invoke(app, ["explore", str(config_path)])
    assert first.exit_code == 0, first.output
    assert "Exploration, iteration 0" in first.output
    assert "selected in this iteration" in first.output
    second = runner.invoke(app, ["explore", str(config_path), "--iteration", "0"])
    assert second.exit_code == 0, second.output
    database = open_database(make_config(data))
    assert database.count(**{keys.STATUS: keys.SELECTED}) == 5
    stored = re.search(r"already in the database\W+(\d+)", second.output)
    assert stored is not None and int(stored.group(1)) == database.count() > 0
    assert runner.invoke(app, ["explore", str(config_path), "--iteration", "-1"]).exit_code == 2
