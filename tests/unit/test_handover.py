"""Which fit is handed over: the best by validation, not the newest."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from mlip_autopipec.orchestration.handover import choose
from mlip_autopipec.training.pacemaker import TrainingResult


def fits(*iterations: int) -> list[tuple[int, TrainingResult]]:
    return [(n, cast(TrainingResult, Path(f"iter_{n:03d}"))) for n in iterations]


def test_the_best_by_validation_is_handed_over_not_the_newest() -> None:
    choice = choose(fits(0, 1, 2, 3), {1: 0.12, 2: 0.08, 3: 0.30})
    assert choice.iteration == 2
    assert "iteration 3, scored worse" in choice.reason


def test_ties_go_to_the_newer_fit_and_unscored_fits_are_not_chosen() -> None:
    assert choose(fits(0, 1, 2, 3), {1: 0.1, 2: 0.1, 3: None}).iteration == 2


def test_without_validation_the_newest_is_handed_over_and_says_so() -> None:
    choice = choose(fits(0, 1), {})
    assert choice.iteration == 1
    assert "no validation" in choice.reason


def test_nothing_to_hand_over_is_an_error() -> None:
    with pytest.raises(ValueError, match="no finished fit"):
        choose(cast(Any, []), {})
