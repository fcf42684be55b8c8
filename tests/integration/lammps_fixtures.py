"""Locating a LAMMPS with ML-PACE for the tests: `lmp` on PATH, then ../shared/lammps/bin/lmp
beside the repository (the build the project's CI provides). In CI (`CI=true`) a missing one
fails the test that needs it; elsewhere that test is skipped with the reason."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mlip_autopipec.inference.lammps_profile import LammpsError, LammpsProfile

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_LMP = REPO_ROOT.parent / "shared" / "lammps" / "bin" / "lmp"


def lammps_candidates() -> list[str]:
    candidates = []
    on_path = shutil.which("lmp")
    if on_path:
        candidates.append(on_path)
    if os.access(SHARED_LMP, os.X_OK):
        candidates.append(str(SHARED_LMP))
    return candidates


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def find_lammps_profile() -> tuple[LammpsProfile | None, str]:
    """The first candidate with ML-PACE, or None and why none qualified."""
    problems = []
    for lmp in lammps_candidates():
        try:
            return LammpsProfile.from_command([lmp]), ""
        except LammpsError as error:
            problems.append(str(error))
    if not problems:
        problems.append(f"no lmp on PATH and no {SHARED_LMP}")
    return None, "no LAMMPS with ML-PACE: " + "; ".join(problems)


def require_lammps() -> LammpsProfile:
    """The LAMMPS profile; without one: a failure in CI, a skip with the reason elsewhere."""
    profile, reason = find_lammps_profile()
    if profile is None:
        if in_ci():
            pytest.fail(f"CI needs a LAMMPS with ML-PACE: {reason}")
        pytest.skip(reason)
    return profile


@pytest.fixture(scope="session")
def lammps_profile() -> LammpsProfile:
    return require_lammps()
