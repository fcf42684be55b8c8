"""Representative and random picks among candidates, for when there is no potential to ask yet.

`representatives` is k-medoids in spirit: k-means (scikit-learn) on standardized descriptors,
then from each cluster the member nearest its centre, so every kind of structure in the pool
is labeled once rather than its outliers first (as farthest point sampling would).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from mlip_autopipec.surrogate.fps import standardize


def representatives(descriptors: ArrayLike, count: int, seed: int = 0) -> np.ndarray:
    """Indices of up to `count` candidates, one per k-means cluster, the largest cluster first."""
    raw = np.asarray(descriptors, dtype=np.float64)
    if count <= 0 or len(raw) == 0:
        return np.empty(0, dtype=np.int64)
    points, _ = standardize(raw)
    clusters = min(count, len(np.unique(points, axis=0)))
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit(points)
    labels = np.asarray(model.labels_)
    order = np.argsort(-np.bincount(labels, minlength=clusters), kind="stable")
    picks = []
    for cluster in order:
        members = np.flatnonzero(labels == cluster)
        offsets = np.linalg.norm(points[members] - model.cluster_centers_[cluster], axis=1)
        picks.append(members[int(np.argmin(offsets))])
    return np.asarray(picks, dtype=np.int64)


def random_draw(candidates: int, count: int, seed: int, iteration: int) -> np.ndarray:
    """`count` distinct indices out of `candidates`, reproducible and different per iteration."""
    rng = np.random.default_rng([seed, iteration])
    return rng.choice(candidates, size=min(count, candidates), replace=False).astype(np.int64)
