"""DatabaseManager.annotate: per-row keys and merged data, never a status change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from mlip_autopipec.core import keys
from mlip_autopipec.core.database import DatabaseManager, StatusTransitionError


def test_annotate_sets_keys_and_merges_data(tmp_path: Path) -> None:
    database = DatabaseManager(tmp_path / "test.db", min_distance=1.0)
    (row_id,) = database.add_structures(
        [bulk("Si", "diamond", a=5.43)], keys.CANDIDATE, 0, "test", data=[{"kept": [1, 2]}]
    )
    database.annotate({row_id: {keys.SURROGATE_ENERGY: -5.3}}, {row_id: {"vector": np.ones(3)}})
    record = database.get(row_id)
    assert record.key_value_pairs[keys.SURROGATE_ENERGY] == -5.3
    assert record.data["kept"] == [1, 2]
    assert np.array_equal(record.data["vector"], np.ones(3))
    assert record.status == keys.CANDIDATE
    with pytest.raises(StatusTransitionError):
        database.annotate({row_id: {keys.STATUS: keys.LABELED}})
    assert database.get(row_id).status == keys.CANDIDATE
