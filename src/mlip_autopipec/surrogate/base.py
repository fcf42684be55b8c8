"""The common surrogate interface: energy, forces and a fixed-length descriptor per structure."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from mlip_autopipec.config import SurrogateConfig
from mlip_autopipec.errors import UserError

logger = logging.getLogger(__name__)

BatchCallback = Callable[[int, int], None]


class SurrogateError(UserError, RuntimeError):
    """The surrogate model cannot be loaded or run; the message says what to change."""


@dataclass(frozen=True)
class AtomicOutput:
    """What a model gives for one structure before pooling."""

    energy: float
    forces: np.ndarray
    atom_features: np.ndarray


@dataclass(frozen=True)
class SurrogatePrediction:
    energy: float
    forces: np.ndarray
    descriptor: np.ndarray

    @property
    def energy_per_atom(self) -> float:
        return self.energy / len(self.forces)

    @property
    def max_force(self) -> float:
        return float(np.max(np.linalg.norm(self.forces, axis=1), initial=0.0))


@dataclass(frozen=True)
class SurrogateFailure:
    """The model could not evaluate this structure (e.g. an isolated atom it cannot graph)."""

    error: str


def pool_by_element(
    numbers: np.ndarray, atom_features: np.ndarray, elements: Sequence[str]
) -> np.ndarray:
    """Mean feature vector per element, concatenated in `elements` order (zeros if absent).

    Every structure of a campaign gets the same length, and block k always describes the
    atoms of element k, so distances compare like with like.
    """
    from ase.data import atomic_numbers

    width = atom_features.shape[1]
    pooled = np.zeros((len(elements), width), dtype=np.float64)
    for k, element in enumerate(elements):
        mask = numbers == atomic_numbers[element]
        if mask.any():
            pooled[k] = atom_features[mask].mean(axis=0)
    return pooled.reshape(-1)


def plain_copy(atoms: Atoms) -> Atoms:
    """Numbers, positions, cell and pbc only: no calculator, info or extra arrays."""
    return Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)


class Surrogate(ABC):
    """A universal ML potential used to screen candidates and to describe them for FPS."""

    def __init__(self, config: SurrogateConfig, elements: Sequence[str]) -> None:
        self.config = config
        self.elements = tuple(elements)
        set_torch_threads(config.torch_threads)

    @classmethod
    @abstractmethod
    def model_name_for(cls, config: SurrogateConfig) -> str:
        """Which model and weights, e.g. 'chgnet:0.3.0', known without loading the model."""

    @property
    def identity(self) -> str:
        """Descriptors from two surrogates with the same identity are comparable."""
        return surrogate_identity(self.model_name_for(self.config), self.elements)

    @abstractmethod
    def evaluate(self, batch: Sequence[Atoms]) -> list[AtomicOutput]:
        """Energies, forces and per-atom invariant features of one batch."""

    def predict(
        self, structures: Sequence[Atoms], on_batch: BatchCallback | None = None
    ) -> list[SurrogatePrediction | SurrogateFailure]:
        """Predictions in batches of config.batch_size; a structure that fails is reported."""
        results: list[SurrogatePrediction | SurrogateFailure] = []
        size = self.config.batch_size
        for start in range(0, len(structures), size):
            batch = [plain_copy(atoms) for atoms in structures[start : start + size]]
            results += self._predict_batch(batch)
            if on_batch is not None:
                on_batch(len(results), len(structures))
        return results

    def _predict_batch(self, batch: list[Atoms]) -> list[SurrogatePrediction | SurrogateFailure]:
        try:
            return [
                self._pooled(atoms, out)
                for atoms, out in zip(batch, self.evaluate(batch), strict=True)
            ]
        except Exception as error:  # one bad structure must not sink the batch
            if len(batch) == 1:
                logger.warning("surrogate failed on a structure: %s", error)
                return [SurrogateFailure(f"{type(error).__name__}: {error}"[:300])]
            return [result for atoms in batch for result in self._predict_batch([atoms])]

    def _pooled(self, atoms: Atoms, output: AtomicOutput) -> SurrogatePrediction:
        forces = np.asarray(output.forces, dtype=np.float64).reshape(len(atoms), 3)
        features = np.asarray(output.atom_features, dtype=np.float64)
        descriptor = pool_by_element(atoms.numbers, features, self.elements)
        values = np.concatenate([[output.energy], forces.ravel(), descriptor])
        if not np.all(np.isfinite(values)):
            raise SurrogateError("the model returned non-finite values")
        return SurrogatePrediction(float(output.energy), forces, descriptor)


def surrogate_identity(model_name: str, elements: Sequence[str]) -> str:
    return f"{model_name}|{','.join(elements)}"


def set_torch_threads(threads: int) -> None:
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
