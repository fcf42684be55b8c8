"""The campaign boundary: locks that guard the data, read-only commands that touch nothing,
and one clear line for every expected failure of a command."""

from __future__ import annotations

import gc
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
from mlip_autopipec.config import config_from_dict
from mlip_autopipec.core import keys
from mlip_autopipec.orchestration.campaign import (
    Campaign,
    CampaignError,
    CampaignLayout,
    open_campaign,
)
from mlip_autopipec.orchestration.lock import CampaignBusyError, LockFileError
from tests.conftest import write_config

runner = CliRunner()


def assert_one_clear_line(output: str, *fragments: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    assert "Traceback" not in output
    for fragment in fragments:
        assert fragment in lines[0], output


def two_configs_sharing_a_database(tmp_path: Path, config_dict: dict[str, Any]) -> list[Path]:
    paths = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        data = {**config_dict, "workflow": {"work_dir": "work", "database": "../shared.db"}}
        paths.append(write_config(folder, data))
    return paths


def test_a_second_campaign_on_the_same_database_is_refused_and_loses_nothing(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    from mlip_autopipec.config import load_config

    first, second = two_configs_sharing_a_database(tmp_path, config_dict)
    with open_campaign(load_config(first)) as campaign:
        (row,) = campaign.database.add_structures([bulk("Si")], keys.SELECTED, 0, "t")
        campaign.database.set_status([row], keys.LABELING)  # pw.x is running on it
        result = runner.invoke(app, ["label", str(second)])
        assert result.exit_code == 1
        assert_one_clear_line(result.output, "another mlip-autopipe process", "shared.db")
        with pytest.raises(CampaignBusyError), open_campaign(load_config(second)):
            pass
        assert campaign.database.get(row).status == keys.LABELING
    with open_campaign(load_config(second)) as again:  # released with the first command
        assert again.database.get(row).status == keys.LABELING


def test_the_work_dir_lock_refuses_a_second_command(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config = config_from_dict(config_dict, base_dir=tmp_path)
    busy = pytest.raises(CampaignBusyError, match=str(tmp_path / "work"))
    with open_campaign(config), busy, open_campaign(config):
        pass


def test_a_symlinked_lock_file_is_never_followed(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config = config_from_dict(config_dict, base_dir=tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    layout = CampaignLayout(config.workflow.work_dir)
    layout.work_dir.mkdir()
    layout.lock_file.symlink_to(victim)
    with pytest.raises(LockFileError, match="symbolic link"), open_campaign(config):
        pass
    assert victim.read_text() == "precious"


def test_status_on_a_missing_campaign_creates_nothing(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config = write_config(tmp_path, config_dict)
    for command in ("status", "report", "export"):
        args = [command, str(config)] + ([str(tmp_path / "out.xyz")] if command == "export" else [])
        result = runner.invoke(app, args)
        assert result.exit_code == 1
        assert_one_clear_line(result.output, "no campaign here")
    assert not (tmp_path / "work").exists()


def test_status_on_a_foreign_sqlite_file_writes_nothing_into_it(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    foreign = tmp_path / "inventory.db"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE parts (name TEXT)")
    before = foreign.read_bytes()
    config_dict["workflow"] = {"work_dir": "work", "database": str(foreign)}
    config = write_config(tmp_path, config_dict)
    for command in ("status", "run"):
        result = runner.invoke(app, [command, str(config)])
        assert result.exit_code == 1
        assert_one_clear_line(result.output, "not an ase.db database", "inventory.db")
    assert foreign.read_bytes() == before


def test_a_corrupt_database_file_is_one_clear_line(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "mlip.db").write_bytes(b"\x00garbage" * 512)
    config = write_config(tmp_path, config_dict)
    for command in ("status", "label"):
        result = runner.invoke(app, [command, str(config)])
        assert result.exit_code == 1
        assert_one_clear_line(result.output, "not a readable SQLite database")


def test_a_work_dir_that_is_a_file_is_one_clear_line(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    (tmp_path / "work").write_text("not a folder")
    config = write_config(tmp_path, config_dict)
    for command in ("train", "validate"):
        result = runner.invoke(app, [command, str(config)])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert "workflow.work_dir" in result.output and "not a folder" in result.output
    campaign_config = config_from_dict({**config_dict, "workflow": {"work_dir": "elsewhere"}})
    moved = campaign_config.model_copy(
        update={
            "workflow": campaign_config.workflow.model_copy(update={"work_dir": tmp_path / "work"})
        }
    )
    with pytest.raises(CampaignError, match="is a file, not a folder"), open_campaign(moved):
        pass


def test_a_read_only_database_or_work_dir_is_one_clear_line(
    tmp_path: Path, config_dict: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root ignores permission bits, so a read-only mount is simulated where SQLite asks."""
    import mlip_autopipec.core.database as database_module

    config = write_config(tmp_path, config_dict)
    Campaign.open(config_from_dict(config_dict, base_dir=tmp_path))
    monkeypatch.setattr(database_module, "_writable", lambda path: False)
    result = runner.invoke(app, ["label", str(config)])
    assert result.exit_code == 1
    assert_one_clear_line(result.output, "is not writable", "mlip.db")


def test_markup_in_paths_and_messages_cannot_break_a_command(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config_dict["workflow"] = {"work_dir": "odd[bold]name[/]x"}
    config = write_config(tmp_path, config_dict)
    assert runner.invoke(app, ["validate", str(config)]).exit_code == 0
    result = runner.invoke(app, ["status", str(config)])
    assert result.exit_code == 1
    assert_one_clear_line(result.output, "odd[bold]name[/]x")


def test_config_that_is_not_utf8_is_reported_without_traceback(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_bytes(b"system:\n  elements: [\xff\xfe]\n")
    for command in ("validate", "run", "status"):
        result = runner.invoke(app, [command, str(config)])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and "UTF-8" in result.output


def settle(database: Path) -> None:
    """Close this process's lingering connections and move the write-ahead log into the file,
    so that the bytes on disk stay what they are unless a command writes."""
    gc.collect()
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for suffix in ("-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)


def test_a_hard_link_to_a_campaigns_database_is_refused(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    from mlip_autopipec.config import load_config
    from mlip_autopipec.orchestration.lock import SharedDatabaseFileError

    first, second = two_configs_sharing_a_database(tmp_path, config_dict)
    with open_campaign(load_config(first)) as campaign:
        campaign.database.add_structures([bulk("Si")], keys.SELECTED, 0, "t")
    settle(tmp_path / "shared.db")
    os.link(tmp_path / "shared.db", tmp_path / "hardlink.db")
    data = {**config_dict, "workflow": {"work_dir": "work", "database": "../hardlink.db"}}
    other = write_config(tmp_path / "second", data)
    before = (tmp_path / "shared.db").read_bytes()
    result = runner.invoke(app, ["label", str(other)])
    assert result.exit_code == 1
    assert_one_clear_line(result.output, "hard links", "hardlink.db")
    with pytest.raises(SharedDatabaseFileError), open_campaign(load_config(first)):
        pass  # the first name is just as unsafe now
    assert (tmp_path / "shared.db").read_bytes() == before


@pytest.mark.parametrize("command", ["status", "export", "report"])
def test_a_damaged_database_is_one_line_and_stays_as_it_is(
    tmp_path: Path, config_dict: dict[str, Any], command: str
) -> None:
    config_path = write_config(tmp_path, config_dict)
    config = config_from_dict(config_dict, base_dir=tmp_path)
    with open_campaign(config) as campaign:
        for seed in range(30):
            atoms = bulk("Si", cubic=True)
            atoms.rattle(0.05, seed=seed)
            campaign.database.add_structures([atoms], keys.CANDIDATE, 0, "t")
    database = config.workflow.database_path
    settle(database)
    data = bytearray(database.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    data[page:] = bytes(len(data) - page)  # every page after the schema zeroed
    database.write_bytes(bytes(data))
    args = [command, str(config_path)] + (
        [str(tmp_path / "x.extxyz")] if command == "export" else []
    )
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert_one_clear_line(result.output, "cannot be read")
    assert database.read_bytes() == bytes(data)


def test_status_and_export_work_on_a_campaign_that_cannot_be_written(
    tmp_path: Path, config_dict: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    config_path = write_config(tmp_path, config_dict)
    config = config_from_dict(config_dict, base_dir=tmp_path)
    with open_campaign(config) as campaign:
        atoms = bulk("Si", cubic=True)
        atoms.calc = SinglePointCalculator(atoms, energy=-850.0, forces=np.zeros((8, 3)))
        campaign.database.add_structures([atoms], keys.LABELED, 0, "t")
    work = config.workflow.work_dir
    settle(config.workflow.database_path)
    before = {path: path.read_bytes() for path in work.rglob("*") if path.is_file()}
    real_access = os.access

    def read_only_mount(path: Any, mode: int, *args: Any, **kwargs: Any) -> bool:
        if mode & os.W_OK and str(path).startswith(str(work)):
            return False  # as on a read-only mount (root passes any chmod)
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", read_only_mount)
    status = runner.invoke(app, ["status", str(config_path)])
    assert status.exit_code == 0, status.output
    assert "labeled" in status.output
    out = tmp_path / "labels.extxyz"
    exported = runner.invoke(app, ["export", str(config_path), str(out)])
    assert exported.exit_code == 0, exported.output
    assert len(ase.io.read(out, index=":")) == 1
    after = {path: path.read_bytes() for path in work.rglob("*") if path.is_file()}
    assert after == before  # nothing written into the campaign
