"""Surrogates by name; a model's heavy packages are imported only when it is chosen."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from mlip_autopipec.config import SurrogateConfig
from mlip_autopipec.surrogate.base import Surrogate, SurrogateError

SURROGATES: dict[str, str] = {
    "chgnet": "mlip_autopipec.surrogate.chgnet_wrapper:CHGNetWrapper",
    "mace": "mlip_autopipec.surrogate.mace_wrapper:MaceWrapper",
}


def surrogate_class(name: str) -> type[Surrogate]:
    if name not in SURROGATES:
        known = ", ".join(sorted(SURROGATES))
        raise SurrogateError(f"unknown surrogate {name!r}; known: {known}")
    module_name, class_name = SURROGATES[name].split(":")
    cls: type[Surrogate] = getattr(importlib.import_module(module_name), class_name)
    return cls


def create_surrogate(config: SurrogateConfig, elements: Sequence[str]) -> Surrogate:
    """The surrogate named by `config.name`, with its model loaded."""
    return surrogate_class(config.name)(config, elements)
