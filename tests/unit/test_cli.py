from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from typer.testing import CliRunner

from mlip_autopipec.cli import app
from tests.conftest import PSEUDO_DIR, write_config

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_validate_bundled_example() -> None:
    result = runner.invoke(app, ["validate", str(REPO / "examples/si/config.yaml")])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_validate_names_every_problem(tmp_path: Path, config_dict: dict[str, Any]) -> None:
    config_dict["inference"] = {"temperatures": [-300]}
    config_dict["dft"]["pseudopotentials"] = {"Si": "Si.nothere.UPF"}
    path = write_config(tmp_path, config_dict)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "inference.temperatures.0: Input should be greater than or equal to 0" in result.output
    assert (
        "dft.pseudopotentials: Si: " in result.output
        and "Si.nothere.UPF not found" in result.output
    )
    assert "Traceback" not in result.output


def test_validate_refuses_a_basis_pyace_has_not_for_two_elements(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    """pyace's white-list of function shapes is smaller for several elements: the default six
    orders pass for Si alone and are refused for Si-Ge, with the settings and a shape that
    works named, before any DFT (pacemaker would fail after it)."""
    config_dict["system"]["elements"] = ["Si", "Ge"]
    config_dict["dft"]["pseudopotentials"]["Ge"] = "Ge.pbe-kjpaw.UPF"
    result = runner.invoke(app, ["validate", str(write_config(tmp_path, config_dict))])
    assert result.exit_code == 2, result.output
    assert "training.nradmax_by_orders / lmax_by_orders: pyace has no basis" in result.output
    assert "for 2 element(s) Si, Ge" in result.output and "5 orders work" in result.output
    config_dict["training"] = {"nradmax_by_orders": [15, 6, 4, 3, 2],
                               "lmax_by_orders": [0, 3, 3, 2, 2]}  # fmt: skip
    result = runner.invoke(app, ["validate", str(write_config(tmp_path, config_dict))])
    assert result.exit_code == 0, result.output


def test_validate_malformed_yaml_and_unknown_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("system: [unclosed\n")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2 and "malformed YAML" in result.output
    assert "Traceback" not in result.output
    bad.write_text("system: {elements: [Si]}\nsurprise: 1\n")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2 and "surprise: Extra inputs are not permitted" in result.output


@pytest.fixture
def pseudo_dir(tmp_path: Path) -> Path:
    """Debian's pseudopotentials for Si (two PBE, one LDA), Ge and Al, and a stray file."""
    folder = tmp_path / "pseudo"
    folder.mkdir()
    for name in ("Si.pbe-rrkj.UPF", "Si.pbe-nl-rrkjus_psl.1.0.0.UPF", "Si.pz-vbc.UPF",
                 "Ge.pbe-kjpaw.UPF", "Al.pz-vbc.UPF"):  # fmt: skip
        shutil.copy(PSEUDO_DIR / name, folder / name)
    (folder / "README").write_text("not a pseudopotential")
    return folder


def init_material(target: Path, *arguments: str) -> Any:
    result = runner.invoke(app, ["init", str(target), *arguments])
    assert result.exit_code == 0, result.output
    validated = runner.invoke(app, ["validate", str(target / "config.yaml")])
    assert validated.exit_code == 0, validated.output
    return yaml.safe_load((target / "config.yaml").read_text())


def test_init_for_an_alloy_chooses_what_the_si_example_fixes_by_hand(
    tmp_path: Path, pseudo_dir: Path
) -> None:
    config = init_material(
        tmp_path / "sige", "--elements", "Si", "Ge", "--pseudo-dir", str(pseudo_dir),
        "--pseudo", "Si=Si.pbe-rrkj.UPF",
    )  # fmt: skip
    assert config["system"]["elements"] == ["Si", "Ge"]
    assert config["system"]["prototype"] == "diamond"  # ASE's for Si
    assert config["system"]["lattice_constants"] == {"Si": 5.43, "Ge": 5.66}
    assert config["dft"]["pseudopotentials"] == {"Si": "Si.pbe-rrkj.UPF", "Ge": "Ge.pbe-kjpaw.UPF"}
    assert config["dft"]["ecutrho"] == 8 * config["dft"]["ecutwfc"]  # Ge is PAW
    assert config["dft"]["kspacing"] == 0.3  # a semiconductor
    compositions = config["exploration"]["generation"]["alloy_compositions"]
    assert compositions == [{"Si": 0.75, "Ge": 0.25}, {"Si": 0.5, "Ge": 0.5},
                            {"Si": 0.25, "Ge": 0.75}]  # fmt: skip
    assert len(config["training"]["nradmax_by_orders"]) == 5  # what pyace takes for two


def test_init_for_a_metal_gets_dense_k_points_and_a_wide_slab(
    tmp_path: Path, pseudo_dir: Path
) -> None:
    config = init_material(
        tmp_path / "al", "--elements", "Al", "--prototype", "fcc", "--pseudo-dir", str(pseudo_dir)
    )
    assert config["dft"]["pseudopotentials"] == {"Al": "Al.pz-vbc.UPF"}  # LDA: all there is
    assert config["dft"]["kspacing"] == 0.15 and config["dft"]["occupations"] == "smearing"
    assert config["system"]["lattice_constants"] == {"Al": 4.05}
    (surface,) = config["exploration"]["generation"]["surfaces"]
    assert surface["repeat"] == [2, 2]  # a 1x1 fcc (111) slab is a column
    assert config["exploration"]["generation"]["alloy_compositions"] == []


def test_init_refuses_ambiguous_or_missing_pseudopotentials_with_the_choice(
    tmp_path: Path, pseudo_dir: Path
) -> None:
    result = runner.invoke(
        app,
        ["init", str(tmp_path / "a"), "--elements", "Si", "Ge", "--pseudo-dir", str(pseudo_dir)],
    )
    assert result.exit_code == 1
    assert "several pbe pseudopotentials for Si" in result.output
    assert "Si.pbe-nl-rrkjus_psl.1.0.0.UPF, Si.pbe-rrkj.UPF" in result.output
    assert "--pseudo Si=FILE" in result.output
    result = runner.invoke(
        app, ["init", str(tmp_path / "b"), "--elements", "Cu", "--pseudo-dir", str(pseudo_dir)]
    )
    assert result.exit_code == 1 and "no pbe pseudopotential for Cu" in result.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_init_writes_a_config_that_validates(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "campaign")])
    assert result.exit_code == 0, result.output
    path = tmp_path / "campaign" / "config.yaml"
    assert runner.invoke(app, ["validate", str(path)]).exit_code == 0
    assert runner.invoke(app, ["init", str(tmp_path / "campaign")]).exit_code == 1


def labeled_frames(count: int) -> list[Any]:
    frames = []
    for seed in range(count):
        atoms = bulk("Si", "diamond", a=5.43)
        atoms.rattle(0.05, seed=seed)
        forces = np.random.default_rng(seed).normal(size=(2, 3))
        atoms.calc = SinglePointCalculator(atoms, energy=-215.0 - seed, forces=forces)
        frames.append(atoms)
    return frames


def test_add_status_and_export_round_trip(tmp_path: Path, config_dict: dict[str, Any]) -> None:
    config = write_config(tmp_path, config_dict)
    data = tmp_path / "data.extxyz"
    ase.io.write(data, labeled_frames(3))
    result = runner.invoke(app, ["add", str(config), str(data), "--labeled"])
    assert result.exit_code == 0, result.output
    assert "added 3 structure(s) as 'labeled'" in result.output
    again = runner.invoke(app, ["add", str(config), str(data), "--labeled"])
    assert "added 0 structure(s)" in again.output and "3 already present" in again.output
    status = runner.invoke(app, ["status", str(config)])
    assert status.exit_code == 0 and "labeled" in status.output
    out = tmp_path / "out.extxyz"
    assert runner.invoke(app, ["export", str(config), str(out)]).exit_code == 0
    exported = ase.io.read(out, index=":")
    assert len(exported) == 3
    assert sorted(a.get_potential_energy() for a in exported) == [-217.0, -216.0, -215.0]
    assert (tmp_path / "work" / "mlip-autopipe.log").exists()


def test_add_labeled_refuses_bad_data_and_writes_nothing(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config = write_config(tmp_path, config_dict)
    frames = labeled_frames(2)
    frames[1].calc.results["forces"] = np.full((2, 3), np.nan)
    data = tmp_path / "bad.extxyz"
    ase.io.write(data, frames)
    result = runner.invoke(app, ["add", str(config), str(data), "--labeled"])
    assert result.exit_code == 1 and "forces are not finite" in result.output
    unlabeled = tmp_path / "plain.xyz"
    ase.io.write(unlabeled, bulk("Si"))
    result = runner.invoke(app, ["add", str(config), str(unlabeled), "--labeled"])
    assert result.exit_code == 1 and "no DFT energy and forces" in result.output
    germanium = tmp_path / "ge.xyz"
    ase.io.write(germanium, bulk("Ge"))
    result = runner.invoke(app, ["add", str(config), str(germanium)])
    assert result.exit_code == 1 and "Ge not in the configured elements" in result.output
    from mlip_autopipec.config import load_config
    from mlip_autopipec.orchestration.database import open_database

    assert open_database(load_config(config)).count() == 0


def test_unreadable_structure_file(tmp_path: Path, config_dict: dict[str, Any]) -> None:
    config = write_config(tmp_path, config_dict)
    junk = tmp_path / "junk.cif"
    junk.write_text("this is not a cif\n")
    result = runner.invoke(app, ["add", str(config), str(junk)])
    assert result.exit_code == 1 and "junk.cif" in result.output
