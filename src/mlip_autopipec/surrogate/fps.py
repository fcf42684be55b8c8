"""Farthest point sampling on standardized descriptors, warm-started from the labeled set.

Incremental min-distance algorithm: `nearest[i]` holds the squared distance from candidate i
to the closest point chosen so far (or labeled before). Each pick costs one matrix-vector
product (||x||^2 - 2 x.y + ||y||^2 with precomputed norms) and a few in-place passes over N,
so k picks cost O(N * k * d) with no Python loop over N.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

LABELED_BLOCK_ENTRIES = 1 << 22  # candidates x labeled distances computed at once (warm start)


@dataclass(frozen=True)
class FPSResult:
    indices: np.ndarray
    """Picked candidate indices, in the order they were picked."""
    distances: np.ndarray
    """Each pick's distance to the nearest earlier pick or labeled point (inf for a cold start)."""


def standardize(
    candidates: ArrayLike, labeled: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Z-scores with the mean and spread of candidates and labeled together (one scale for all).

    A column that is constant gets spread 1, so it becomes zeros instead of NaN.
    """
    points = np.asarray(candidates, dtype=np.float64)
    known = None if labeled is None else np.asarray(labeled, dtype=np.float64)
    both = points if known is None or len(known) == 0 else np.vstack([points, known])
    mean = both.mean(axis=0)
    spread = both.std(axis=0)
    spread[spread == 0] = 1.0
    scaled_known = None if known is None else (known - mean) / spread
    return (points - mean) / spread, scaled_known


class FarthestPointSampling:
    """Pick up to `n_select` candidates, each as far as possible from all picked and labeled.

    Selection stops early when the farthest remaining candidate is closer than
    `min_distance` (or is a duplicate) to what is already chosen.
    """

    def __init__(
        self,
        n_select: int,
        min_distance: float = 0.0,
        standardize: bool = True,
        dtype: DTypeLike = np.float64,
    ) -> None:
        if n_select < 0 or min_distance < 0:
            raise ValueError("n_select and min_distance must not be negative")
        self.n_select = n_select
        self.min_distance = min_distance
        self.standardize = standardize
        self.dtype = np.dtype(dtype)

    def select(
        self,
        candidates: ArrayLike,
        labeled: ArrayLike | None = None,
        start_index: int | None = None,
    ) -> FPSResult:
        """`start_index` is the first pick of a cold start (default: farthest from the mean)."""
        points, known = self._prepare(candidates, labeled)
        if len(points) == 0 or self.n_select == 0:
            return FPSResult(np.empty(0, dtype=np.int64), np.empty(0))
        sq_norms = np.einsum("ij,ij->i", points, points)
        if known is not None and len(known):
            nearest = nearest_sq_distances(points, sq_norms, known)
            first = int(np.argmax(nearest))
        else:
            nearest = np.full(len(points), np.inf, dtype=self.dtype)
            first = _farthest_from_mean(points) if start_index is None else int(start_index)
        return self._pick(points, sq_norms, nearest, first)

    def _prepare(
        self, candidates: ArrayLike, labeled: ArrayLike | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        points = np.asarray(candidates, dtype=np.float64)
        if points.ndim != 2:
            raise ValueError(f"candidates must be a 2D array, got shape {points.shape}")
        known = None if labeled is None else np.asarray(labeled, dtype=np.float64)
        if known is not None and known.size == 0:
            known = None
        if known is not None and (known.ndim != 2 or known.shape[1] != points.shape[1]):
            raise ValueError(f"labeled has shape {known.shape}; candidates {points.shape}")
        if self.standardize and len(points):
            points, known = standardize(points, known)
        cast = np.ascontiguousarray(points, dtype=self.dtype)
        return cast, None if known is None else np.ascontiguousarray(known, dtype=self.dtype)

    def _pick(
        self, points: np.ndarray, sq_norms: np.ndarray, nearest: np.ndarray, pick: int
    ) -> FPSResult:
        limit = max(self.min_distance**2, _duplicate_tolerance(sq_norms))
        scratch = np.empty(len(points), dtype=self.dtype)
        indices: list[int] = []
        distances: list[float] = []
        with single_threaded_blas():
            for _ in range(min(self.n_select, len(points))):
                best = float(nearest[pick])
                if best < limit:
                    break
                indices.append(pick)
                distances.append(float(np.sqrt(best)))
                _update_nearest(points, sq_norms, pick, nearest, scratch)
                nearest[pick] = -np.inf  # never picked twice
                pick = int(np.argmax(nearest))
        return FPSResult(np.asarray(indices, dtype=np.int64), np.asarray(distances))


def single_threaded_blas() -> AbstractContextManager[object]:
    """One BLAS thread for the pick loop's matrix-vector products.

    They are memory-bound, so a second thread gains little on a quiet machine, while on a busy
    one every product waits for a thread that has no core: measured 3-6x slower on 2 shared
    cores. Uses threadpoolctl when it is installed (it comes with scikit-learn).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _update_nearest(
    points: np.ndarray, sq_norms: np.ndarray, pick: int, nearest: np.ndarray, scratch: np.ndarray
) -> None:
    """nearest = min(nearest, |x - y|^2) for y = points[pick], in place, without temporaries."""
    np.dot(points, points[pick] * -2.0, out=scratch)
    scratch += sq_norms
    scratch += sq_norms[pick]
    np.minimum(nearest, scratch, out=nearest)


def nearest_sq_distances(points: np.ndarray, sq_norms: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Squared distance from every point to its nearest known point, in bounded-memory blocks."""
    nearest = np.full(len(points), np.inf, dtype=points.dtype)
    block = max(1, LABELED_BLOCK_ENTRIES // max(len(points), 1))
    for start in range(0, len(known), block):
        part = known[start : start + block]
        distances = points @ (part.T * -2.0)
        distances += sq_norms[:, None]
        distances += np.einsum("ij,ij->i", part, part)[None, :]
        np.minimum(nearest, distances.min(axis=1), out=nearest)
    return nearest


def _farthest_from_mean(points: np.ndarray) -> int:
    centered = points - points.mean(axis=0)
    return int(np.argmax(np.einsum("ij,ij->i", centered, centered)))


def _duplicate_tolerance(sq_norms: np.ndarray) -> float:
    """Squared distances below this are rounding noise of the norm expansion: duplicates."""
    return float(10 * np.finfo(sq_norms.dtype).eps * (1.0 + float(sq_norms.max(initial=0.0))))
