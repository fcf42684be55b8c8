"""Phase B wiring: selected rows -> Dask workers running pw.x -> labels in the database."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from mlip_autopipec.config import MLIPConfig
from mlip_autopipec.core import keys
from mlip_autopipec.core.database import DatabaseManager, LabelUpdate
from mlip_autopipec.dft.runner import LabelOutcome, PwProfile, label_structure
from mlip_autopipec.orchestration.database import open_database
from mlip_autopipec.orchestration.task_queue import TaskFailure, TaskQueue

logger = logging.getLogger(__name__)


@dataclass
class LabelingSummary:
    queued: int = 0
    labeled: int = 0
    failed_by_reason: Counter[str] = field(default_factory=Counter)
    dft_wall_time: float = 0.0
    elapsed: float = 0.0
    slots: int = 0

    @property
    def failed(self) -> int:
        return sum(self.failed_by_reason.values())

    @property
    def running(self) -> int:
        return min(self.slots, self.queued - self.labeled - self.failed)


ProgressCallback = Callable[[LabelingSummary], None]


def requeue_interrupted(database: DatabaseManager) -> int:
    """Rows left in `labeling` by a killed run go back to `selected`."""
    stale = database.ids(**{keys.STATUS: keys.LABELING})
    if stale:
        database.set_status(stale, keys.SELECTED)
        logger.info("requeued %d structure(s) left in 'labeling' by an interrupted run", len(stale))
    return len(stale)


def label_selected(
    config: MLIPConfig,
    on_progress: ProgressCallback | None = None,
    retry_failed: bool = False,
) -> LabelingSummary:
    """Label every `selected` structure; finished labels are never recomputed.

    pw.x (and the launcher) are checked first, so a wrong command fails fast and leaves every
    row as it was. With `retry_failed`, structures that failed before are queued again.
    """
    PwProfile.from_config(config.dft)
    database = open_database(config)
    requeue_interrupted(database)
    if retry_failed:
        failed = database.ids(**{keys.STATUS: keys.FAILED})
        database.set_status(failed, keys.SELECTED)
    rows = database.select(**{keys.STATUS: keys.SELECTED})
    summary = LabelingSummary(queued=len(rows))
    if not rows:
        return summary
    database.set_status([row.id for row in rows], keys.LABELING)
    run_root = config.workflow.work_dir / "dft"
    start = time.perf_counter()
    items = [(row.id, row.atoms) for row in rows]
    with TaskQueue(config.compute) as queue:
        summary.slots = queue.n_slots
        if on_progress is not None:
            on_progress(summary)
        for batch in queue.map_unordered(label_structure, items, dft=config.dft, run_root=run_root):
            updates = [_to_update(result) for result in batch]
            database.store_results(updates)
            _count(summary, batch, updates)
            summary.elapsed = time.perf_counter() - start
            if on_progress is not None:
                on_progress(summary)
    summary.elapsed = time.perf_counter() - start
    return summary


def _to_update(result: LabelOutcome | TaskFailure) -> LabelUpdate:
    if isinstance(result, TaskFailure):
        row_id = int(result.item[0])
        return LabelUpdate(
            id=row_id,
            status=keys.FAILED,
            extra_keys={keys.REASON: f"task failed: {result.error}"[:500], keys.DFT_ATTEMPTS: 0},
        )
    attempts: list[dict[str, Any]] = [asdict(attempt) for attempt in result.attempts]
    common = {keys.DFT_ATTEMPTS: len(attempts), keys.DFT_WALL_TIME: round(result.dft_wall_time, 3)}
    data = {keys.DFT_ATTEMPTS: attempts}
    if result.labeled and result.result is not None:
        return LabelUpdate(
            id=result.row_id,
            status=keys.LABELED,
            energy=result.result.energy,
            forces=result.result.forces,
            stress=result.result.stress,
            extra_keys=common,
            data=data,
        )
    reason = (result.reason or "no label")[:500]
    return LabelUpdate(
        id=result.row_id,
        status=keys.FAILED,
        extra_keys={**common, keys.REASON: reason},
        data=data,
    )


def _count(summary: LabelingSummary, batch: list[Any], updates: list[LabelUpdate]) -> None:
    for result, update in zip(batch, updates, strict=True):
        if update.status == keys.LABELED:
            summary.labeled += 1
        else:
            summary.failed_by_reason[_reason_class(update.extra_keys.get(keys.REASON, ""))] += 1
        if isinstance(result, LabelOutcome):
            summary.dft_wall_time += result.dft_wall_time


def _reason_class(reason: str) -> str:
    """The error codes part of a failure reason, for counting failures by kind."""
    return reason.split(" after ")[0].split(":")[0] or "unknown"
