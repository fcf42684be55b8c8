"""Shared fixtures: a minimal valid config as a dict and on disk."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

PSEUDO_DIR = Path("/usr/share/espresso/pseudo")
DATA_DIR = Path(__file__).parent / "data"

MINIMAL_CONFIG: dict[str, Any] = {
    "system": {"elements": ["Si"], "prototype": "diamond", "lattice_constant": 5.43},
    "dft": {
        "pseudo_dir": str(PSEUDO_DIR),
        "pseudopotentials": {"Si": "Si.pbe-rrkj.UPF"},
        "ecutwfc": 20.0,
        "kspacing": 0.5,
        "timeout": 120,
    },
    "dft_check": {"enabled": False},  # pw.x at denser settings: tests/*/test_dft_check.py
    "workflow": {"work_dir": "work"},
    "compute": {"n_workers": 2},
}


@pytest.fixture
def config_dict() -> dict[str, Any]:
    return copy.deepcopy(MINIMAL_CONFIG)


def write_config(directory: Path, data: dict[str, Any]) -> Path:
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def config_file(tmp_path: Path, config_dict: dict[str, Any]) -> Path:
    return write_config(tmp_path, config_dict)
