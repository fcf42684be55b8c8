"""Input files are read without side effects: no blocking open of a FIFO or a device, and no
ASE tables added to an SQLite file that is not an ase.db database (issue 20)."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from typer.testing import CliRunner

from mlip_autopipec.cli import app
from mlip_autopipec.config import ConfigError, config_from_dict
from tests.conftest import write_config
from tests.unit.test_campaign import assert_one_clear_line

runner = CliRunner()


def foreign_sqlite(path: Path) -> bytes:
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
        connection.execute("INSERT INTO notes VALUES ('mine')")
        connection.commit()
    return path.read_bytes()


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_add_refuses_a_fifo_or_a_device_without_opening_it(
    tmp_path: Path, config_dict: dict[str, Any], kind: str
) -> None:
    config_path = write_config(tmp_path, config_dict)
    source = tmp_path / "structures.extxyz"
    if kind == "fifo":
        os.mkfifo(source)
    else:
        source.symlink_to("/dev/zero")
    result = runner.invoke(app, ["add", str(config_path), str(source)])
    assert result.exit_code == 1
    assert_one_clear_line(result.output, "not a file of structures")


def test_add_never_writes_into_a_foreign_sqlite_file(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config_path = write_config(tmp_path, config_dict)
    source = tmp_path / "notes.db"
    before = foreign_sqlite(source)
    result = runner.invoke(app, ["add", str(config_path), str(source)])
    assert result.exit_code == 1
    assert_one_clear_line(result.output, "not an ase.db database")
    assert source.read_bytes() == before


def test_a_foreign_sqlite_validation_set_is_refused_untouched(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    source = tmp_path / "notes.db"
    before = foreign_sqlite(source)
    config_dict["workflow"] = {"work_dir": "work", "validation_set": str(source)}
    with pytest.raises(ConfigError) as caught:
        config_from_dict(config_dict, base_dir=tmp_path)
    (problem,) = caught.value.problems
    assert "validation_set" in problem and "not an ase.db database" in problem
    assert source.read_bytes() == before


def test_a_validation_set_with_nan_positions_is_refused(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.calc = SinglePointCalculator(atoms, energy=-200.0, forces=np.zeros((2, 3)))
    atoms.positions[1, 2] = np.nan
    source = tmp_path / "validation.extxyz"
    ase.io.write(source, atoms)
    config_dict["workflow"] = {"work_dir": "work", "validation_set": str(source)}
    with pytest.raises(ConfigError) as caught:
        config_from_dict(config_dict, base_dir=tmp_path)
    (problem,) = caught.value.problems
    assert "positions or cell are not finite" in problem


def test_an_ase_db_input_is_read_from_a_copy_and_left_as_it_is(tmp_path: Path) -> None:
    import ase.db

    from mlip_autopipec.config.files import read_frames

    source = tmp_path / "structures.db"
    with ase.db.connect(str(source)) as database:
        database.write(bulk("Si", "diamond", a=5.43))
        database.write(bulk("Si", "diamond", a=5.43, cubic=True))
    before = source.read_bytes()
    assert [len(atoms) for atoms in read_frames(source)] == [2, 8]
    assert source.read_bytes() == before
