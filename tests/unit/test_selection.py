"""exploration.selection: the method switch, n_select sized to the task slots, and the random and
representative (kmedoids) picks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlip_autopipec.config import ConfigError, config_from_dict
from mlip_autopipec.orchestration.exploration import resolve_n_select
from mlip_autopipec.orchestration.summaries import ExploreSummary, SelectSummary, read_summary
from mlip_autopipec.surrogate.fps import standardize
from mlip_autopipec.surrogate.representative import random_draw, representatives


def selection_config(config_dict: dict[str, Any], tmp_path: Path, **selection: Any) -> Any:
    config_dict["exploration"] = {"selection": selection}
    return config_from_dict(config_dict, base_dir=tmp_path)


def test_defaults_are_maxvol_after_fps(config_dict: dict[str, Any], tmp_path: Path) -> None:
    selection = selection_config(config_dict, tmp_path).exploration.selection
    assert (selection.method, selection.initial_method) == ("maxvol", "fps")
    assert selection.n_select is None and selection.seed == 0


@pytest.mark.parametrize(
    ("field", "value"), [("method", "cur"), ("initial_method", "maxvol"), ("seed", -1)]
)
def test_unknown_methods_and_bad_seeds_are_one_line_errors(
    config_dict: dict[str, Any], tmp_path: Path, field: str, value: Any
) -> None:
    with pytest.raises(ConfigError) as caught:
        selection_config(config_dict, tmp_path, **{field: value})
    (problem,) = caught.value.problems
    assert f"exploration.selection.{field}" in problem and "\n" not in problem


@pytest.mark.parametrize(
    ("compute", "expected"),
    [
        ({"n_workers": 2}, 8),  # 2 slots: 8 is already a multiple
        ({"n_workers": 3}, 9),
        ({"n_workers": 2, "threads_per_worker": 5}, 10),
        ({"n_workers": 16}, 16),
        ({"jobqueue": {"jobs": 3, "cores": 4}}, 12),
        ({"jobqueue": {"jobs": 3, "cores": 8, "tasks_per_job": 2}}, 12),
        ({"scheduler_address": "tcp://host:8786", "n_workers": 1}, 8),
    ],
)
def test_default_n_select_keeps_every_task_slot_busy(
    config_dict: dict[str, Any], tmp_path: Path, compute: dict[str, Any], expected: int
) -> None:
    config_dict["compute"] = compute
    assert resolve_n_select(config_from_dict(config_dict, base_dir=tmp_path)) == expected


def test_an_explicit_n_select_wins(config_dict: dict[str, Any], tmp_path: Path) -> None:
    config_dict["compute"] = {"n_workers": 16}
    assert resolve_n_select(selection_config(config_dict, tmp_path, n_select=3)) == 3


def test_random_draw_is_reproducible_and_differs_per_iteration() -> None:
    first = random_draw(100, 10, seed=0, iteration=1)
    assert np.array_equal(first, random_draw(100, 10, seed=0, iteration=1))
    assert len(set(first.tolist())) == 10 and first.max() < 100
    assert not np.array_equal(first, random_draw(100, 10, seed=0, iteration=2))
    assert not np.array_equal(first, random_draw(100, 10, seed=1, iteration=1))
    assert sorted(random_draw(4, 10, seed=0, iteration=0).tolist()) == [0, 1, 2, 3]


def clustered(rng: np.random.Generator, sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Tight clusters around far-apart centres; returns (points, cluster label of each)."""
    centres = np.eye(len(sizes), 6) * 50.0
    points = np.vstack(
        [centre + rng.normal(0, 0.5, (n, 6)) for centre, n in zip(centres, sizes, strict=True)]
    )
    labels = np.repeat(np.arange(len(sizes)), sizes)
    order = rng.permutation(len(points))
    return points[order], labels[order]


def test_kmedoids_picks_one_per_cluster_the_central_one_largest_cluster_first() -> None:
    points, labels = clustered(np.random.default_rng(3), [5, 30, 12, 2])
    picks = representatives(points, 4, seed=0)
    assert labels[picks].tolist() == [1, 2, 0, 3]
    scaled, _ = standardize(points)  # medoids are central in the space k-means runs in
    for pick in picks:
        members = scaled[labels == labels[pick]]
        centre = members.mean(axis=0)
        nearest = np.linalg.norm(members - centre, axis=1).min()
        assert np.linalg.norm(scaled[pick] - centre) == pytest.approx(nearest)
    assert np.array_equal(picks, representatives(points, 4, seed=0))


def test_kmedoids_never_picks_a_duplicate_and_handles_empty_pools() -> None:
    points = np.vstack([np.zeros((5, 3)), np.ones((5, 3))])
    assert sorted(points[representatives(points, 6)][:, 0].tolist()) == [0.0, 1.0]
    assert representatives(np.empty((0, 3)), 4).size == 0


def test_the_method_is_kept_in_the_summaries_and_explains_an_empty_maxvol_batch() -> None:
    summary = SelectSummary(iteration=2, prescreened_out=1, selected=0, method="maxvol")
    assert read_summary("select", 2, summary.to_json()) == summary
    assert "active set" in (summary.stop_reason() or "")
    assert "by maxvol" in summary.describe()
    assert "by kmedoids" in ExploreSummary(selected=8, method="kmedoids").describe()
    assert "method" not in SelectSummary(iteration=1, selected=3).to_json()  # older files read
