"""Shared integration fixtures. `trained_campaign`: one real pacemaker fit on the recorded QE Si
data (15 functions, 30 BFGS steps, ~30 s on 2 cores), made once per session and copied by tests
that change the campaign."""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlip_autopipec.config import MLIPConfig, config_from_dict
from mlip_autopipec.core import keys
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.importing import import_files
from mlip_autopipec.orchestration.training import train_iteration
from mlip_autopipec.training.pacemaker import TrainingResult
from tests.conftest import DATA_DIR, MINIMAL_CONFIG, write_config
from tests.integration.lammps_fixtures import lammps_profile  # noqa: F401 - a fixture
from tests.integration.slurm_fixtures import local_slurm  # noqa: F401 - a fixture

SI_DATA = DATA_DIR / "si_labeled.extxyz"
SMALL_FIT = {
    "number_of_functions_per_element": 15,
    "maxiter": 30,
    "test_fraction": 0.2,
    "cutoff": 5.0,
}


def training_config_dict(root: Path, **training: Any) -> dict[str, Any]:
    data = copy.deepcopy(MINIMAL_CONFIG)
    data["system"]["min_distance"] = 1.0
    data["training"] = {**SMALL_FIT, **training}
    data["workflow"] = {"work_dir": str(root / "work")}
    return data


def training_config(root: Path, **training: Any) -> MLIPConfig:
    """A campaign config in `root` (also written as root/config.yaml for the CLI)."""
    data = training_config_dict(root, **training)
    write_config(root, data)
    return config_from_dict(data, base_dir=root)


@dataclass(frozen=True)
class TrainedCampaign:
    root: Path
    config: MLIPConfig
    result: TrainingResult

    def copy_to(self, destination: Path, **training: Any) -> MLIPConfig:
        """The same database and potentials in `destination`, with changed training settings."""
        shutil.copytree(self.root / "work", destination / "work")
        return training_config(destination, **training)


@pytest.fixture(scope="session")
def trained_campaign(tmp_path_factory: pytest.TempPathFactory) -> TrainedCampaign:
    pytest.importorskip("tensorpotential")
    root = tmp_path_factory.mktemp("trained_campaign")
    config = training_config(root)
    import_files(Campaign.open(config), [SI_DATA], keys.LABELED, 0)
    result = train_iteration(Campaign.open(config))
    return TrainedCampaign(root=root, config=config, result=result)
