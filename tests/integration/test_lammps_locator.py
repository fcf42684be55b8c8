"""How the LAMMPS tests find their program, and what happens when there is none."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration import lammps_fixtures
from tests.integration.lammps_fixtures import find_lammps_profile, require_lammps


@pytest.fixture
def no_lammps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(lammps_fixtures, "SHARED_LMP", tmp_path / "shared" / "lmp")


@pytest.mark.usefixtures("no_lammps")
def test_missing_lammps_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI needs a LAMMPS with ML-PACE"):
        require_lammps()


@pytest.mark.usefixtures("no_lammps")
def test_missing_lammps_skips_with_its_reason_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no lmp on PATH"):
        require_lammps()
    assert find_lammps_profile()[0] is None


def test_a_lammps_without_ml_pace_on_path_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "lmp"
    fake.write_text("#!/bin/sh\necho 'Installed packages:'\necho\necho 'MANYBODY'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(lammps_fixtures, "SHARED_LMP", tmp_path / "absent")
    profile, reason = find_lammps_profile()
    assert profile is None and "has no ML-PACE package" in reason
