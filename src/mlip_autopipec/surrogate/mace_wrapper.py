"""MACE: a model file from the config, or a named MACE-MP foundation model when downloadable."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipec.config import SurrogateConfig
from mlip_autopipec.surrogate.base import AtomicOutput, Surrogate, SurrogateError

logger = logging.getLogger(__name__)

SET_MODEL_PATH = "set exploration.surrogate.model_path to a MACE model file"


class MaceWrapper(Surrogate):
    """Energy and forces from MACE; descriptors from its invariant node features."""

    def __init__(self, config: SurrogateConfig, elements: Sequence[str]) -> None:
        super().__init__(config, elements)
        if config.model_path is not None:
            self.calculator = _calculator_from_file(config.model_path, config.device)
        elif config.foundation_model is not None:
            self.calculator = _foundation_calculator(config.foundation_model, config.device)
        else:
            raise SurrogateError(f"the mace surrogate has no model: {SET_MODEL_PATH}")

    @classmethod
    def model_name_for(cls, config: SurrogateConfig) -> str:
        if config.model_path is not None:
            return f"mace:{config.model_path.name}:{_file_digest(config.model_path)}"
        return f"mace-mp:{config.foundation_model}"

    def evaluate(self, batch: Sequence[Atoms]) -> list[AtomicOutput]:
        """One structure at a time: MACECalculator takes a single Atoms per call."""
        outputs = []
        for atoms in batch:
            atoms.calc = self.calculator
            energy = float(atoms.get_potential_energy())
            forces = np.array(atoms.get_forces())
            features = self.calculator.get_descriptors(atoms, invariants_only=True)
            atoms.calc = None
            outputs.append(AtomicOutput(energy, forces, np.asarray(features)))
        return outputs


def _calculator_from_file(path: Path, device: str) -> Any:
    from mace.calculators import MACECalculator

    try:
        return MACECalculator(model_paths=str(path), device=device, default_dtype="float64")
    except Exception as error:  # torch.load raises many kinds for a bad file
        raise SurrogateError(f"cannot load MACE model {path}: {error}") from None


def _foundation_calculator(name: str, device: str) -> Any:
    from mace.calculators import mace_mp

    try:
        return mace_mp(model=name, device=device, default_dtype="float64")
    except Exception as error:  # urllib, OSError, ValueError: all mean "not available here"
        raise SurrogateError(
            f"cannot get the MACE-MP foundation model {name!r} ({type(error).__name__}: "
            f"{error}); it is downloaded on first use, which needs network access. "
            f"Offline, {SET_MODEL_PATH}"
        ) from None


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]
