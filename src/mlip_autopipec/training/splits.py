"""Which labeled structure is trained on and which is held out, decided once for good."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlip_autopipec.training.dataset import TEST, TRAIN, Split, assign_split


@dataclass(frozen=True)
class SplitEntry:
    """A labeled row as the split sees it: its id, content hash and any split stored before."""

    row_id: int
    structure_hash: str | None = None
    stored: str | None = None

    @property
    def key(self) -> str:
        """What the split is decided from: the content hash, else the row id."""
        return f"hash:{self.structure_hash}" if self.structure_hash else f"id:{self.row_id}"


def decide_splits(
    entries: Sequence[SplitEntry], test_fraction: float
) -> tuple[dict[int, Split], dict[int, Split]]:
    """(split of every row, the rows whose split is new): a stored split is never changed."""
    splits: dict[int, Split] = {}
    new: dict[int, Split] = {}
    for entry in entries:
        if entry.stored in (TRAIN, TEST):
            splits[entry.row_id] = TRAIN if entry.stored == TRAIN else TEST
        else:
            splits[entry.row_id] = new[entry.row_id] = assign_split(entry.key, test_fraction)
    return splits, new
