"""SurrogatePipeline: evaluate with a surrogate, pre-screen, pick by FPS. Plain data in and out."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from mlip_autopipec.config import ExplorationConfig
from mlip_autopipec.core.composition import Composition, EnergyReference
from mlip_autopipec.core.rejection import Rejection
from mlip_autopipec.surrogate.base import (
    BatchCallback,
    Surrogate,
    SurrogateFailure,
    SurrogatePrediction,
    surrogate_identity,
)
from mlip_autopipec.surrogate.fps import FarthestPointSampling, FPSResult
from mlip_autopipec.surrogate.prescreen import prescreen
from mlip_autopipec.surrogate.registry import create_surrogate, surrogate_class


class SurrogatePipeline:
    """The surrogate is loaded on first use, so a run with nothing to evaluate loads no model."""

    def __init__(
        self,
        exploration: ExplorationConfig,
        elements: Sequence[str],
        surrogate: Surrogate | None = None,
    ) -> None:
        self.exploration = exploration
        self.elements = tuple(elements)
        self._surrogate = surrogate

    @functools.cached_property
    def identity(self) -> str:
        """Names model and elements; cached descriptors with another identity are stale."""
        config = self.exploration.surrogate
        return surrogate_identity(
            surrogate_class(config.name).model_name_for(config), self.elements
        )

    @property
    def surrogate(self) -> Surrogate:
        if self._surrogate is None:
            self._surrogate = create_surrogate(self.exploration.surrogate, self.elements)
        return self._surrogate

    def evaluate(
        self, structures: Sequence[Atoms], on_batch: BatchCallback | None = None
    ) -> list[SurrogatePrediction | SurrogateFailure]:
        return self.surrogate.predict(structures, on_batch=on_batch)

    def screen(
        self,
        energies_per_atom: np.ndarray,
        max_forces: np.ndarray,
        compositions: Sequence[Composition],
        reference: EnergyReference | None = None,
    ) -> list[Rejection | None]:
        limits = self.exploration.surrogate
        return prescreen(
            energies_per_atom,
            max_forces,
            limits.max_force,
            limits.max_energy_above_min,
            compositions,
            reference,
        )

    def select(
        self, candidates: np.ndarray, labeled: np.ndarray | None, n_select: int
    ) -> FPSResult:
        """Up to `n_select` diverse candidates, far from `labeled` (descriptors, one per row)."""
        sampler = FarthestPointSampling(n_select, self.exploration.selection.min_distance)
        return sampler.select(candidates, labeled)
