"""Farthest point sampling: equal to a brute-force reference, warm start, threshold, scaling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlip_autopipec.surrogate import FarthestPointSampling, standardize


def brute_force_fps(
    points: np.ndarray, k: int, labeled: np.ndarray | None = None, start: int = 0
) -> list[int]:
    """The textbook definition with a full distance matrix; no tricks."""
    distances = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
    if labeled is None:
        nearest = np.full(len(points), np.inf)
    else:
        nearest = np.linalg.norm(points[:, None, :] - labeled[None, :, :], axis=-1).min(axis=1)
    picks: list[int] = []
    pick = start if labeled is None else int(np.argmax(nearest))
    while len(picks) < min(k, len(points)):
        picks.append(pick)
        nearest = np.minimum(nearest, distances[pick])
        nearest[picks] = -1.0
        pick = int(np.argmax(nearest))
    return picks


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("n", "d", "k"), [(30, 2, 10), (200, 8, 40), (50, 64, 50)])
def test_cold_start_equals_brute_force(seed: int, n: int, d: int, k: int) -> None:
    points = np.random.default_rng(seed).normal(size=(n, d))
    start = seed % n
    result = FarthestPointSampling(k, standardize=False).select(points, start_index=start)
    assert result.indices.tolist() == brute_force_fps(points, k, start=start)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 60),
    n_labeled=st.integers(1, 20),
    d=st.integers(1, 12),
)
def test_warm_start_equals_brute_force(seed: int, n: int, n_labeled: int, d: int) -> None:
    rng = np.random.default_rng(seed)
    points, labeled = rng.uniform(-3, 3, size=(n, d)), rng.uniform(-3, 3, size=(n_labeled, d))
    result = FarthestPointSampling(n, standardize=False).select(points, labeled)
    assert result.indices.tolist() == brute_force_fps(points, n, labeled)


def test_distances_are_the_max_min_distances_and_never_grow() -> None:
    points = np.random.default_rng(3).normal(size=(100, 5))
    result = FarthestPointSampling(20, standardize=False).select(points, start_index=0)
    assert result.distances[0] == np.inf
    assert np.all(np.diff(result.distances[1:]) <= 1e-12)
    picked = points[result.indices]
    for rank in range(1, len(picked)):
        expected = np.linalg.norm(picked[:rank] - picked[rank], axis=1).min()
        assert result.distances[rank] == pytest.approx(expected)


def test_cold_start_begins_farthest_from_the_mean() -> None:
    points = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [10.0, 10.0], [0.5, 0.5]])
    result = FarthestPointSampling(1, standardize=False).select(points)
    assert result.indices.tolist() == [3]


def two_clusters(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    near_labeled = rng.normal(0.0, 1.0, size=(50, 4))
    elsewhere = rng.normal(20.0, 1.0, size=(10, 4))
    return near_labeled, elsewhere


def test_warm_start_avoids_points_near_the_labeled_set() -> None:
    rng = np.random.default_rng(0)
    near_labeled, elsewhere = two_clusters(rng)
    points = np.vstack([near_labeled, elsewhere])
    labeled = near_labeled + rng.normal(0.0, 0.05, size=near_labeled.shape)  # already labeled
    warm = FarthestPointSampling(10).select(points, labeled)
    assert set(warm.indices.tolist()) == set(range(50, 60))
    cold = FarthestPointSampling(10).select(points)
    assert any(index < 50 for index in cold.indices)


def test_threshold_stops_selection() -> None:
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    points = np.vstack([centre + rng.normal(0, 0.5, size=(20, 2)) for centre in centres])
    result = FarthestPointSampling(30, min_distance=10.0, standardize=False).select(points)
    assert len(result.indices) == 3
    assert sorted(index // 20 for index in result.indices) == [0, 1, 2]
    assert np.all(result.distances >= 10.0)
    unlimited = FarthestPointSampling(30, standardize=False).select(points)
    assert len(unlimited.indices) == 30


def test_threshold_can_select_nothing_when_all_is_labeled_already() -> None:
    points = np.random.default_rng(2).normal(size=(20, 3))
    result = FarthestPointSampling(5, min_distance=0.5, standardize=False).select(points, points)
    assert len(result.indices) == 0


def test_duplicates_are_not_picked_twice() -> None:
    points = np.ones((10, 3))
    result = FarthestPointSampling(5).select(points)
    assert result.indices.tolist() == [0]


def test_more_picks_asked_than_candidates() -> None:
    points = np.random.default_rng(4).normal(size=(7, 3))
    result = FarthestPointSampling(100).select(points)
    assert sorted(result.indices.tolist()) == list(range(7))


def test_standardizing_makes_picks_independent_of_feature_units() -> None:
    points = np.random.default_rng(5).normal(size=(80, 3))
    rescaled = points * np.array([1000.0, 1.0, 0.001]) + np.array([5.0, -3.0, 7.0])
    first = FarthestPointSampling(15).select(points, start_index=0)
    second = FarthestPointSampling(15).select(rescaled, start_index=0)
    assert first.indices.tolist() == second.indices.tolist()


def test_standardize_uses_one_scale_for_candidates_and_labeled() -> None:
    candidates = np.array([[0.0, 1.0], [2.0, 1.0]])
    labeled = np.array([[4.0, 1.0]])
    scaled, scaled_labeled = standardize(candidates, labeled)
    assert scaled_labeled is not None
    both = np.vstack([scaled, scaled_labeled])
    assert np.allclose(both.mean(axis=0), 0.0)
    assert np.allclose(both[:, 0].std(), 1.0)
    assert np.all(both[:, 1] == 0.0)  # a constant column becomes zeros, not NaN


def test_float32_gives_the_same_picks_on_well_separated_data() -> None:
    points = np.random.default_rng(6).uniform(size=(500, 16))
    first = FarthestPointSampling(50, dtype=np.float64).select(points, start_index=0)
    second = FarthestPointSampling(50, dtype=np.float32).select(points, start_index=0)
    assert first.indices.tolist() == second.indices.tolist()


def test_labeled_descriptors_must_match_in_width() -> None:
    with pytest.raises(ValueError, match="labeled"):
        FarthestPointSampling(2).select(np.zeros((3, 4)), np.zeros((2, 5)))
