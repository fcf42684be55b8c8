from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlip_autopipec.config import ConfigError, MLIPConfig, config_from_dict, load_config
from mlip_autopipec.config.example import EXAMPLE_CONFIG

REPO = Path(__file__).resolve().parents[2]


def problems_of(data: Any, base_dir: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data, base_dir=base_dir)
    return caught.value.problems


def test_bundled_example_is_valid() -> None:
    config = load_config(REPO / "examples/si/config.yaml")
    assert config.system.elements == ["Si"]
    assert config.dft.ecutwfc == 24.0 and config.dft.ecutrho == 96.0
    assert config.workflow.work_dir == REPO / "examples/si/work"


def test_init_template_is_the_bundled_example() -> None:
    assert (REPO / "examples/si/config.yaml").read_text() == EXAMPLE_CONFIG


def test_minimal_config_gets_defaults(config_dict: dict[str, Any], tmp_path: Path) -> None:
    config = config_from_dict(config_dict, base_dir=tmp_path)
    assert isinstance(config, MLIPConfig)
    assert config.workflow.database_path == tmp_path / "work" / "mlip.db"
    assert config.inference.gamma_lower < config.inference.gamma_upper


def test_relative_paths_resolve_against_config_folder(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config_dict["workflow"] = {"work_dir": "runs/a", "database": "db/x.db"}
    config = config_from_dict(config_dict, base_dir=tmp_path)
    assert config.workflow.work_dir == tmp_path / "runs/a"
    assert config.workflow.database_path == tmp_path / "db/x.db"


def test_config_is_frozen(config_dict: dict[str, Any]) -> None:
    config = config_from_dict(config_dict)
    with pytest.raises(ValueError):
        config.dft.ecutwfc = 10  # type: ignore[misc]


@pytest.mark.parametrize(
    ("section", "change", "expected_path"),
    [
        ("inference", {"temperatures": [300, -5]}, "inference.temperatures.1"),
        ("inference", {"gamma_lower": 5, "gamma_upper": 2}, "inference"),
        ("system", {"elements": ["Xx"]}, "system.elements"),
        ("dft", {"ecutwfc": -1}, "dft.ecutwfc"),
        ("dft", {"ecutwfc": 30, "ecutrho": 60}, "dft"),
        ("dft", {"pseudopotentials": {"Si": "missing.UPF"}}, "dft.pseudopotentials"),
        ("dft", {"pseudopotentials": {"Si": "Si.UPF\n/\n&system"}}, "dft.pseudopotentials"),
        ("dft", {"kspacing": 0}, "dft.kspacing"),
        ("training", {"cutoff": 0}, "training.cutoff"),
        ("training", {"kappa": 1.5}, "training.kappa"),
        ("workflow", {"max_iterations": 0}, "workflow.max_iterations"),
        ("compute", {"n_workers": 0}, "compute.n_workers"),
        ("exploration", {"selection": {"n_select": -1}}, "exploration.selection.n_select"),
    ],
)
def test_each_constraint_names_its_field(
    config_dict: dict[str, Any], section: str, change: dict[str, Any], expected_path: str
) -> None:
    config_dict.setdefault(section, {}).update(change)
    problems = problems_of(config_dict)
    assert any(p.startswith(expected_path + ":") for p in problems), problems


def test_pseudopotential_needed_for_every_element(config_dict: dict[str, Any]) -> None:
    config_dict["system"]["elements"] = ["Si", "Ge"]
    problems = problems_of(config_dict)
    assert any(p.startswith("dft:") and "Ge" in p for p in problems), problems


def test_unknown_key_and_wrong_type_are_reported_together(config_dict: dict[str, Any]) -> None:
    config_dict["dft"]["ecutwfcc"] = 30
    config_dict["inference"] = {"steps": "many"}
    problems = problems_of(config_dict)
    assert any(p.startswith("dft.ecutwfcc:") for p in problems)
    assert any(p.startswith("inference.steps:") for p in problems)


def test_missing_section(config_dict: dict[str, Any]) -> None:
    del config_dict["dft"]
    assert "dft.pseudopotentials: Field required" in problems_of(config_dict)


def test_default_work_dir_is_next_to_the_config(
    config_dict: dict[str, Any], tmp_path: Path
) -> None:
    del config_dict["workflow"]
    config = config_from_dict(config_dict, base_dir=tmp_path)
    assert config.workflow.database_path == tmp_path / "work" / "mlip.db"


@pytest.mark.parametrize(
    ("section", "change", "message"),
    [
        ("inference", {"temperatures": [300, 300]}, "values must be unique"),
        ("inference", {"temperatures": []}, "at least 1 item"),
        ("inference", {"pressures": [float("inf")]}, "finite number"),
        ("workflow", {"work_dir": "~nosuchuser/w"}, "home directory"),
        ("dft", {"pseudo_dir": "/tmp/x'\"/\n&system"}, "must be a plain path"),
    ],
)
def test_more_constraints(
    config_dict: dict[str, Any], section: str, change: dict[str, Any], message: str
) -> None:
    config_dict.setdefault(section, {}).update(change)
    problems = problems_of(config_dict)
    assert any(p.startswith(section) and message in p for p in problems), problems


def test_malformed_yaml_is_one_clean_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("system: {elements: [Si]\ndft: : :\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("(yaml): malformed YAML at line")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


# The fuzz of the loader and of the typed tree lives in test_config_fuzz.py.
