"""Phase A, first half: candidate structures and the pre-DFT filters they must pass."""

from mlip_autopipec.generation.builder import (
    SURFACE,
    BuildError,
    GeneratedStructure,
    StructureBuilder,
)
from mlip_autopipec.generation.filters import (
    check_cell_shape,
    check_max_atoms,
    check_min_distance,
    first_rejection,
)

__all__ = [
    "SURFACE",
    "BuildError",
    "GeneratedStructure",
    "StructureBuilder",
    "check_cell_shape",
    "check_max_atoms",
    "check_min_distance",
    "first_rejection",
]
