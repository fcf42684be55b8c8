"""CHGNet: pretrained weights ship inside the `chgnet` wheel, so it works offline."""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipec.config import SurrogateConfig
from mlip_autopipec.surrogate.base import AtomicOutput, Surrogate, SurrogateError

logger = logging.getLogger(__name__)

CHGNET_VERSION = "0.3.0"


@functools.lru_cache(maxsize=2)
def load_chgnet(version: str, device: str) -> Any:
    """The pretrained model, loaded once per process (loading takes seconds)."""
    try:
        from chgnet.model import CHGNet
    except ImportError as error:
        raise SurrogateError(f"the chgnet surrogate needs the chgnet package ({error})") from None
    with contextlib.redirect_stdout(io.StringIO()) as banner:  # CHGNet prints on load
        model = CHGNet.load(model_name=version, use_device=device, verbose=False)
    logger.info("loaded CHGNet %s on %s: %s", version, device, banner.getvalue().strip())
    return model


class CHGNetWrapper(Surrogate):
    """Energy and forces from CHGNet; descriptors from its atom features (64 per element)."""

    def __init__(self, config: SurrogateConfig, elements: Sequence[str]) -> None:
        super().__init__(config, elements)
        self.model = load_chgnet(CHGNET_VERSION, config.device)

    @classmethod
    def model_name_for(cls, config: SurrogateConfig) -> str:
        return f"chgnet:{CHGNET_VERSION}"

    def evaluate(self, batch: Sequence[Atoms]) -> list[AtomicOutput]:
        from pymatgen.io.ase import AseAtomsAdaptor

        structures = [AseAtomsAdaptor.get_structure(_fully_periodic(atoms)) for atoms in batch]
        with warnings.catch_warnings():  # chgnet converts a grad tensor to a scalar, harmlessly
            warnings.filterwarnings("ignore", "Converting a tensor with requires_grad", UserWarning)
            predictions = self.model.predict_structure(
                structures, task="ef", return_atom_feas=True, batch_size=len(structures)
            )
        if isinstance(predictions, dict):
            predictions = [predictions]
        return [
            AtomicOutput(
                energy=float(prediction["e"]) * len(atoms),  # CHGNet predicts eV/atom
                forces=np.asarray(prediction["f"]),
                atom_features=np.asarray(prediction["atom_fea"]),
            )
            for atoms, prediction in zip(batch, predictions, strict=True)
        ]


def _fully_periodic(atoms: Atoms) -> Atoms:
    """CHGNet treats every cell as periodic; a slab's vacuum keeps its images apart."""
    result = atoms.copy()
    result.pbc = True
    return result
