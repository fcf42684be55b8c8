"""Names of the ase.db keys and the status life cycle, kept in one place."""

from __future__ import annotations

from typing import Final

STATUS: Final = "status"
ITERATION: Final = "iteration"
ORIGIN: Final = "origin"
REASON: Final = "reason"
FAILURE_KIND: Final = "failure_kind"  # the primary error code of a failed label, as data
DFT_ATTEMPTS: Final = "dft_attempts"
DFT_WALL_TIME: Final = "dft_wall_time"
SPLIT: Final = "split"
STRUCTURE_HASH: Final = "structure_hash"
SURROGATE_MODEL: Final = "surrogate_model"
SURROGATE_ENERGY: Final = "surrogate_energy"  # eV/atom predicted by the surrogate
SURROGATE_MAX_FORCE: Final = "surrogate_max_force"  # eV/Å predicted by the surrogate
SELECTION_RANK: Final = "selection_rank"  # order of a farthest-point pick within its iteration
SELECTION_DISTANCE: Final = "selection_distance"  # its distance to earlier picks / labeled data
DESCRIPTOR: Final = "descriptor"  # row data: the surrogate's descriptor vector

CANDIDATE: Final = "candidate"
SELECTED: Final = "selected"
LABELING: Final = "labeling"
LABELED: Final = "labeled"
FAILED: Final = "failed"
REJECTED: Final = "rejected"

STATUSES: Final = (CANDIDATE, SELECTED, LABELING, LABELED, FAILED, REJECTED)

# Which status may follow which. `labeling -> selected` requeues a run that was killed;
# `failed -> selected` is a deliberate retry by the user. Nothing leaves `labeled`.
ALLOWED_TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    CANDIDATE: frozenset({SELECTED, REJECTED}),
    SELECTED: frozenset({LABELING, REJECTED}),
    LABELING: frozenset({LABELED, FAILED, SELECTED}),
    FAILED: frozenset({SELECTED}),
    REJECTED: frozenset(),
    LABELED: frozenset(),
}
