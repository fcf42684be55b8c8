"""A restart reads back the labels pw.x finished while nobody stored them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ase.build import bulk

from mlip_autopipec.dft.harvest import HARVESTED, finished_label
from mlip_autopipec.dft.runner import OUTPUT_NAME, label_structure
from tests.unit.test_dft_runner import CONVERGED, dft_config

SILICON = bulk("Si", "diamond", a=5.43)


def finished_run(tmp_path: Path, config_dict: dict[str, Any], submission: str = "sub_0"):
    dft = dft_config(tmp_path, config_dict, [{"when": ".", **CONVERGED}])
    structure_dir = tmp_path / "dft" / "000003"
    outcome = label_structure(3, SILICON, dft, structure_dir / submission)
    assert outcome.labeled
    return dft, structure_dir, outcome


def test_a_finished_run_is_read_back_with_its_numbers(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    dft, structure_dir, ran = finished_run(tmp_path, config_dict)
    harvested = finished_label(3, SILICON, dft, structure_dir)
    assert harvested is not None and harvested.labeled
    assert harvested.result.energy == ran.result.energy
    assert (harvested.result.forces == ran.result.forces).all()
    assert harvested.attempts[0].message == HARVESTED


def test_an_unfinished_output_is_not_a_label(tmp_path: Path, config_dict: dict[str, Any]) -> None:
    dft, structure_dir, _ = finished_run(tmp_path, config_dict)
    output = structure_dir / "sub_0" / "attempt_0" / OUTPUT_NAME
    lines = output.read_text().splitlines()
    output.write_text("\n".join(lines[: len(lines) // 2]))  # killed half way
    assert finished_label(3, SILICON, dft, structure_dir) is None


def test_a_run_of_another_structure_or_other_settings_is_not_taken(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    dft, structure_dir, _ = finished_run(tmp_path, config_dict)
    other = SILICON.copy()
    other.positions[0, 0] += 0.05
    assert finished_label(3, other, dft, structure_dir) is None
    denser = dft.model_copy(update={"kspacing": dft.kspacing / 2})
    assert finished_label(3, SILICON, denser, structure_dir) is None
    harder = dft.model_copy(update={"ecutwfc": dft.ecutwfc + 10})
    assert finished_label(3, SILICON, harder, structure_dir) is None


def test_the_newest_finished_submission_wins(tmp_path: Path, config_dict: dict[str, Any]) -> None:
    dft, structure_dir, _ = finished_run(tmp_path, config_dict)
    for submission in ("sub_2", "sub_10"):  # 10 after 2: by number, not by name
        shutil.copytree(
            structure_dir / "sub_0" / "attempt_0", structure_dir / submission / "attempt_0"
        )
    newer = structure_dir / "sub_10" / "attempt_0"
    harvested = finished_label(3, SILICON, dft, structure_dir)
    assert harvested is not None and harvested.attempts[0].run_dir == str(newer)
