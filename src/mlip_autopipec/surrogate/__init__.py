"""Phase A, second half: universal potentials screen candidates; FPS picks a diverse subset.

Nothing here imports torch, CHGNet or MACE until a surrogate is created by name.
"""

from mlip_autopipec.surrogate.base import (
    Surrogate,
    SurrogateError,
    SurrogateFailure,
    SurrogatePrediction,
    pool_by_element,
)
from mlip_autopipec.surrogate.fps import FarthestPointSampling, FPSResult, standardize
from mlip_autopipec.surrogate.pipeline import SurrogatePipeline
from mlip_autopipec.surrogate.prescreen import energy_reference, prescreen
from mlip_autopipec.surrogate.registry import SURROGATES, create_surrogate

__all__ = [
    "SURROGATES",
    "FPSResult",
    "FarthestPointSampling",
    "Surrogate",
    "SurrogateError",
    "SurrogateFailure",
    "SurrogatePipeline",
    "SurrogatePrediction",
    "create_surrogate",
    "pool_by_element",
    "prescreen",
    "energy_reference",
    "standardize",
]
