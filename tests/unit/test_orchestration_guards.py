"""Failures the orchestrator must catch before any work is submitted, and stopping rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ase.build import bulk

from mlip_autopipec.config import config_from_dict
from mlip_autopipec.core import keys
from mlip_autopipec.core.process import ExecutableNotFoundError
from mlip_autopipec.inference.lammps import LammpsError
from mlip_autopipec.orchestration.database import open_database
from mlip_autopipec.orchestration.inference import check_engine, start_structures
from mlip_autopipec.orchestration.labeling import label_selected
from mlip_autopipec.orchestration.workflow import WorkflowError, WorkflowManager


def test_missing_pw_x_fails_fast_and_leaves_rows_selected(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config_dict["dft"]["command"] = ["no-such-pw.x"]
    config = config_from_dict(config_dict, base_dir=tmp_path)
    database = open_database(config)
    database.add_structures([bulk("Si", "diamond", a=5.43)], keys.SELECTED, 0, "t")
    with pytest.raises(ExecutableNotFoundError, match="no-such-pw.x"):
        label_selected(config)
    assert [r.status for r in database.select()] == [keys.SELECTED]


def test_lammps_without_ml_pace_is_refused_before_md(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config_dict["inference"] = {"engine": "lammps", "lammps_command": ["/bin/echo"]}
    with pytest.raises(LammpsError, match="no ML-PACE"):
        check_engine(config_from_dict(config_dict, base_dir=tmp_path))


def test_md_never_starts_from_cut_out_environments(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    import numpy as np
    from ase.calculators.singlepoint import SinglePointCalculator

    config = config_from_dict(config_dict, base_dir=tmp_path)
    database = open_database(config)
    box = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 2, 2))
    box.calc = SinglePointCalculator(box, energy=-1.0, forces=np.zeros((len(box), 3)))
    database.add_structures([box], keys.LABELED, 1, "md:extract")
    with pytest.raises(WorkflowError, match="no labeled bulk structure"):
        start_structures(database, 2)
    cell = bulk("Si", "diamond", a=5.43, cubic=True)
    cell.calc = SinglePointCalculator(cell, energy=-2.0, forces=np.zeros((8, 3)))
    database.add_structures([cell], keys.LABELED, 0, "builder:strain")
    starts = start_structures(database, 2)
    assert [len(a) for a in starts] == [8, 8]


def test_stop_when_nothing_new_survives_selection(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    manager = WorkflowManager(config_from_dict(config_dict, base_dir=tmp_path))
    assert manager.decide(1, "select", {"selected": 0}).stop
    assert not manager.decide(1, "select", {"selected": 3}).stop
    assert manager.decide(1, "extract", {"candidates": 0}).stop
