"""PacemakerWrapper's decisions that need no fit: where to start, finding the programs, refusing
to overwrite a finished fit. The real fits are in tests/integration/test_training.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlip_autopipec.config import TrainingConfig
from mlip_autopipec.training.dataset import DatasetBuilder
from mlip_autopipec.training.inputs import potential_section
from mlip_autopipec.training.metrics import ErrorSummary, FitMetrics, write_metrics
from mlip_autopipec.training.pacemaker import (
    METRICS_FILE,
    POTENTIAL,
    PREVIOUS_POTENTIAL,
    PacemakerProfile,
    PacemakerWrapper,
    TrainingError,
    TrainingResult,
    resolve_tool,
)

PROFILE = PacemakerProfile(("pacemaker",), ("pace_activeset",), ("pace_yaml2yace",), 10.0)


def previous_fit(folder: Path, training: TrainingConfig, n_train: int) -> TrainingResult:
    folder.mkdir(parents=True)
    (folder / POTENTIAL).write_text("elements: [Si]\n")
    metrics = FitMetrics(
        train=ErrorSummary(n_train, 8 * n_train, 5.0, 50.0),
        test=None,
        initial_loss=1.0,
        final_loss=0.01,
        n_iterations=10,
        fit_seconds=1.0,
        start_mode="scratch",
        previous_potential=None,
        reference_energies={"Si": -107.0},
        potential_section=potential_section(training, ["Si"]),
    )
    write_metrics(metrics, folder / METRICS_FILE)
    return TrainingResult.load(folder)


@pytest.mark.parametrize(
    ("settings", "n_before", "n_now", "mode"),
    [
        ({}, 20, 24, "continue"),
        ({}, 9, 17, "scratch"),  # grew by more than upfit_max_growth = 0.5
        ({"upfit_max_growth": 1.0}, 9, 17, "continue"),
        ({"upfit": False}, 20, 20, "scratch"),
        ({"number_of_functions_per_element": 30}, 20, 20, "extend"),
        ({"cutoff": 6.0}, 20, 20, "scratch"),
    ],
)
def test_start_of_a_fit(
    tmp_path: Path, settings: dict[str, object], n_before: int, n_now: int, mode: str
) -> None:
    before = TrainingConfig(number_of_functions_per_element=20)
    previous = previous_fit(tmp_path / "iter_000", before, n_before)
    now = TrainingConfig.model_validate({"number_of_functions_per_element": 20, **settings})
    staging = tmp_path / "iter_001.tmp"
    staging.mkdir()
    start = PacemakerWrapper(now, ["Si"], PROFILE)._start(previous, staging, n_now)
    assert start.mode == mode, start.reason
    assert (staging / PREVIOUS_POTENTIAL).is_file() == (mode != "scratch")


def test_programs_are_found_next_to_this_python_without_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    found = resolve_tool("pacemaker")
    assert Path(found).parent == Path(sys.executable).parent
    profile = PacemakerProfile.from_config(TrainingConfig())
    assert Path(profile.activeset[0]).name == "pace_activeset"
    assert profile.activeset[1:] == ("-a",)  # every training atom may enter the active set
    assert Path(profile.yaml2yace[0]).name == "pace_yaml2yace"


def test_missing_program_is_named() -> None:
    from mlip_autopipec.core.process import ExecutableNotFoundError

    with pytest.raises(ExecutableNotFoundError, match="no-such-pacemaker"):
        PacemakerProfile.from_config(TrainingConfig(command=["no-such-pacemaker"]))


def test_a_finished_fit_is_never_overwritten(tmp_path: Path) -> None:
    previous = previous_fit(tmp_path / "iter_000", TrainingConfig(), 10)
    wrapper = PacemakerWrapper(TrainingConfig(), ["Si"], PROFILE)
    with pytest.raises(TrainingError, match="exists already"):
        wrapper.fit([], DatasetBuilder({"Si": -107.0}), previous.folder)
    assert (previous.folder / POTENTIAL).read_text() == "elements: [Si]\n"


def test_a_singular_active_set_refits_with_fewer_functions_than_distinct_environments(
    tmp_path: Path,
) -> None:
    """A perfect crystal's 8 atoms are one environment; rattled, each is its own. Only a
    singular MaxVol matrix (pyace: "Input matrix must not be singular") asks for a refit."""
    import numpy as np
    from ase.build import bulk

    from mlip_autopipec.training.dataset import TRAIN, LabeledStructure
    from mlip_autopipec.training.pacemaker import distinct_environments

    perfect = bulk("Si", "diamond", a=5.43, cubic=True)
    rattled = perfect.copy()
    rattled.positions += np.random.default_rng(0).normal(0, 0.05, (8, 3))
    structures = [LabeledStructure(k, atoms, TRAIN) for k, atoms in enumerate([perfect, rattled])]
    test = LabeledStructure(9, rattled.copy(), "test")  # the test split is not the active set's
    assert distinct_environments([*structures, test], 5.0) == {"Si": 9}
    wrapper = PacemakerWrapper(TrainingConfig(number_of_functions_per_element=60), ["Si"], PROFILE)
    (tmp_path / "pace_activeset.log").write_text("ValueError: Input matrix must not be singular")
    assert wrapper._basis_for_a_singular_active_set(structures, tmp_path) == 6  # 3/4 of 9
    (tmp_path / "pace_activeset.log").write_text("MemoryError")
    assert wrapper._basis_for_a_singular_active_set(structures, tmp_path) is None
