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
LABEL_ITERATION: Final = "label_iteration"  # the loop iteration whose label phase stored it
SPLIT: Final = "split"
STRUCTURE_HASH: Final = "structure_hash"
SURROGATE_MODEL: Final = "surrogate_model"
SURROGATE_ENERGY: Final = "surrogate_energy"  # eV/atom predicted by the surrogate
SURROGATE_MAX_FORCE: Final = "surrogate_max_force"  # eV/Å predicted by the surrogate
SELECTION_RANK: Final = "selection_rank"  # order of a pick within its iteration
# The iteration that picked it; differs from ITERATION (where it was made) for a pick topped up
# from an earlier iteration's candidates. Picks stored before it existed: their ITERATION.
SELECTION_ITERATION: Final = "selection_iteration"
SELECTION_DISTANCE: Final = "selection_distance"  # its distance to earlier picks / labeled data
DESCRIPTOR: Final = "descriptor"  # row data: the surrogate's descriptor vector
SELECTION_METHOD: Final = "selection_method"  # maxvol, fps, random or kmedoids
SELECTION_GAMMA: Final = "selection_gamma"  # a MaxVol pick's max gamma w.r.t. the old active set

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

# Row data of a cut-out environment: per-atom force weights for training (0 for atoms whose
# neighbourhood the cut broke, 1 otherwise); rows without it are weighted 1 throughout.
FORCE_WEIGHTS: Final = "force_weights"

# Row data and Atoms.info: the cell whose Monkhorst-Pack mesh pw.x uses for this structure (the
# unstrained parent of a strained, rattled or defective cell), so one cell keeps one mesh
# under strain. Structures without it get the mesh of their own cell.
KPOINT_CELL: Final = "kpoint_cell"
