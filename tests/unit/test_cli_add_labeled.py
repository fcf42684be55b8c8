"""`mlip-autopipe add CONFIG FILE --labeled` with the recorded real QE data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ase.io
import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from typer.testing import CliRunner

from mlip_autopipec.cli import app
from mlip_autopipec.config import load_config
from mlip_autopipec.core import keys
from mlip_autopipec.orchestration.database import open_database
from tests.conftest import DATA_DIR, write_config

runner = CliRunner()
SI_DATA = DATA_DIR / "si_labeled.extxyz"


def test_real_qe_data_keeps_energy_forces_and_stress(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config_dict["system"]["min_distance"] = 1.0
    config = write_config(tmp_path, config_dict)
    result = runner.invoke(app, ["add", str(config), str(SI_DATA), "--labeled", "--iteration", "2"])
    assert result.exit_code == 0, result.output
    frames = ase.io.read(SI_DATA, index=":")
    assert f"added {len(frames)} structure(s) as 'labeled'" in result.output
    records = open_database(load_config(config)).select(**{keys.STATUS: keys.LABELED})
    assert len(records) == len(frames)
    by_energy = {round(r.atoms.get_potential_energy(), 8): r for r in records}
    for frame in frames:
        record = by_energy[round(frame.get_potential_energy(), 8)]
        assert record.iteration == 2 and record.origin == f"import:{SI_DATA.name}"
        assert np.allclose(record.atoms.get_forces(), frame.get_forces())
        assert np.allclose(record.atoms.get_stress(), frame.get_stress())
        assert np.allclose(record.atoms.positions, frame.positions)


def test_labeled_import_checks_elements_and_accepts_missing_stress(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config = write_config(tmp_path, config_dict)
    germanium = bulk("Ge")
    germanium.calc = SinglePointCalculator(germanium, energy=-200.0, forces=np.zeros((2, 3)))
    path = tmp_path / "ge.extxyz"
    ase.io.write(path, germanium)
    result = runner.invoke(app, ["add", str(config), str(path), "--labeled"])
    assert result.exit_code == 1 and "Ge not in the configured elements" in result.output
    silicon = bulk("Si")
    silicon.calc = SinglePointCalculator(silicon, energy=-214.0, forces=np.zeros((2, 3)))
    path = tmp_path / "si_no_stress.extxyz"
    ase.io.write(path, silicon)
    result = runner.invoke(app, ["add", str(config), str(path), "--labeled"])
    assert result.exit_code == 0, result.output
    (record,) = open_database(load_config(config)).select(**{keys.STATUS: keys.LABELED})
    assert record.atoms.get_potential_energy() == -214.0
    assert "stress" not in record.atoms.calc.results


def test_add_selected_refuses_a_structure_without_a_cell(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config = write_config(tmp_path, config_dict)
    molecule = Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]])
    path = tmp_path / "molecule.xyz"
    ase.io.write(path, molecule)
    result = runner.invoke(app, ["add", str(config), str(path), "--selected"])
    assert result.exit_code == 1
    assert (
        f"nothing imported: {path}[0]: no cell vector a, b, c (pw.x needs a full 3D cell; "
        "give molecules and slabs a box with vacuum)" in " ".join(result.output.split())
    )


def test_add_labeled_drops_magnetic_moments_and_export_reads_back(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config = write_config(tmp_path, config_dict)
    silicon = bulk("Si")
    silicon.set_initial_magnetic_moments([1.0, 1.0])
    silicon.calc = SinglePointCalculator(
        silicon, energy=-214.0, forces=np.zeros((2, 3)), magmoms=[0.5, 0.5]
    )
    path = tmp_path / 'odd "name"=1.extxyz'
    ase.io.write(path, silicon)
    result = runner.invoke(app, ["add", str(config), str(path), "--labeled"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out.extxyz"
    result = runner.invoke(app, ["export", str(config), str(out)])
    assert result.exit_code == 0, result.output
    (back,) = ase.io.read(out, index=":")
    assert back.info["origin"] == "import:odd__name__1.extxyz"
    assert back.get_potential_energy() == -214.0
    assert not back.has("initial_magmoms") and "magmoms" not in back.calc.results
