"""Phase B wiring: selected rows -> Dask workers running pw.x -> labels in the database."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ase import Atoms

from mlip_autopipec.config import DFTConfig
from mlip_autopipec.core import keys
from mlip_autopipec.core.database import DatabaseManager, LabelUpdate
from mlip_autopipec.core.files import write_atomically
from mlip_autopipec.core.label import Label, LabelError
from mlip_autopipec.dft.check import physical_settings
from mlip_autopipec.dft.harvest import finished_label
from mlip_autopipec.dft.inputs import relative_cost
from mlip_autopipec.dft.runner import LabelOutcome, PwProfile, label_structure
from mlip_autopipec.errors import UserError
from mlip_autopipec.orchestration.campaign import Campaign, CampaignLayout
from mlip_autopipec.orchestration.summaries import LabelSummary, PhaseProgress
from mlip_autopipec.orchestration.task_queue import (
    TaskFailure,
    campaign_task_queue,
    requeue_if_worker_leaving,
)

logger = logging.getLogger(__name__)

TASK_FAILED = "task_failed"
UNSOUND_LABEL = "unsound_label"
SUBMISSION_NOTE = "submission.json"
# Where a batch scheduler puts the id of the job a task runs in.
JOB_ID_VARIABLES = ("SLURM_JOB_ID", "PBS_JOBID", "JOB_ID", "LSB_JOBID")


@dataclass
class LabelingProgress:
    """Counts as labeling advances; also the phase's result."""

    queued: int = 0
    labeled: int = 0
    failed_by_kind: Counter[str] = field(default_factory=Counter)
    dft_wall_time: float = 0.0
    elapsed: float = 0.0
    slots: int = 0

    @property
    def failed(self) -> int:
        return sum(self.failed_by_kind.values())

    @property
    def running(self) -> int:
        return min(self.slots, self.queued - self.labeled - self.failed)


ProgressCallback = Callable[[LabelingProgress], None]


def harvest_finished(campaign: Campaign, iteration: int | None = None) -> int:
    """Store the labels that pw.x finished for rows a killed run left in `labeling`: a
    restart must not pay for them twice."""
    database, dft, layout = campaign.database, campaign.config.dft, campaign.layout
    rows = database.select(**{keys.STATUS: keys.LABELING})
    outcomes = [finished_label(row.id, row.atoms, dft, layout.dft_dir(row.id)) for row in rows]
    found = [outcome for outcome in outcomes if outcome is not None]
    if not found:
        return 0
    n_atoms = {row.id: len(row.atoms) for row in rows}
    updates = [_to_update(outcome, n_atoms, iteration) for outcome in found]
    database.store_results(updates)
    stored = sum(update.status == keys.LABELED for update in updates)
    logger.info("read back %d label(s) that pw.x finished during an interrupted run", stored)
    return stored


def requeue_interrupted(database: DatabaseManager) -> int:
    """Rows left in `labeling` by a killed run go back to `selected`."""
    stale = database.ids(**{keys.STATUS: keys.LABELING})
    if stale:
        database.set_status(stale, keys.SELECTED)
        logger.info("requeued %d structure(s) left in 'labeling' by an interrupted run", len(stale))
    return len(stale)


DFT_SETTINGS_FILE = "dft_settings.json"  # what the campaign's DFT labels were made with


class DFTSettingsChanged(UserError):
    """The labels of a work dir were made with other physical dft settings."""


def check_same_dft_settings(campaign: Campaign) -> None:
    """Labels made with other settings must never be mixed (they disagree with each other):
    the first label records what a label depends on; later labels must match it."""
    path = campaign.layout.work_dir / DFT_SETTINGS_FILE
    settings = json.loads(json.dumps(physical_settings(campaign.config.dft)))
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(settings, indent=1, sort_keys=True))
        return
    stored = json.loads(path.read_text())
    # Only what a label depends on: how pw.x is launched (timeout, launcher) may change.
    changed = sorted(key for key in settings if settings[key] != stored.get(key))
    if changed:
        raise DFTSettingsChanged(
            f"{campaign.layout.work_dir} holds DFT labels made with other dft settings "
            f"({', '.join(changed)}); labels of different settings must not be mixed: change "
            f"them back (see {path}), or move that folder away to use the new ones"
        )


def label_selected(
    campaign: Campaign,
    on_progress: ProgressCallback | None = None,
    retry_failed: bool = False,
    iteration: int | None = None,
) -> LabelingProgress:
    """Label every `selected` structure; finished labels are never recomputed.

    On a local cluster pw.x (and the launcher) are checked first, so a wrong command fails
    fast and leaves every row as it was; on a remote cluster they need only exist where the
    workers run. With `retry_failed`, structures that failed before are queued again. Each
    outcome records `iteration` (the loop's label phase that stored it) when given.
    """
    config, database = campaign.config, campaign.database
    if config.compute.jobqueue is None and not config.compute.scheduler_address:
        PwProfile.from_config(config.dft)  # pw.x runs here: a wrong command fails at once
    harvested = harvest_finished(campaign, iteration)
    requeue_interrupted(database)
    if retry_failed:
        database.set_status(database.ids(**{keys.STATUS: keys.FAILED}), keys.SELECTED)
    rows = database.select(**{keys.STATUS: keys.SELECTED})
    progress = LabelingProgress(queued=len(rows) + harvested, labeled=harvested)
    if not rows:
        return progress
    check_same_dft_settings(campaign)
    database.set_status([row.id for row in rows], keys.LABELING)
    start = time.perf_counter()
    layout = campaign.layout
    n_atoms = {row.id: len(row.atoms) for row in rows}
    # the longest first: a long run started last would keep the batch waiting alone
    rows = sorted(rows, key=lambda row: -relative_cost(row.atoms, config.dft.kspacing))
    items = [(row.id, row.atoms, config.dft, layout) for row in rows]
    with campaign_task_queue(campaign) as queue:
        progress.slots = queue.n_slots
        _notify(on_progress, progress)
        for batch in queue.map_unordered(label_submission, items):
            batch = fresh_results(database, batch)
            updates = [_to_update(result, n_atoms, iteration) for result in batch]
            database.store_results(updates)
            _count(progress, batch, updates)
            progress.elapsed = time.perf_counter() - start
            _notify(on_progress, progress)
    progress.elapsed = time.perf_counter() - start
    return progress


def label_submission(
    row_id: int, atoms: Atoms, dft: DFTConfig, layout: CampaignLayout
) -> LabelOutcome:
    """One submission of one structure, on a worker: a `sub_N` folder of its own, claimed where
    it runs, so a copy requeued by Dask or by a restarted orchestrator never shares a folder
    with a copy that may still be running."""
    try:
        folder = layout.claim_submission_dir(row_id)
    except OSError as error:
        reason = f"cannot create a run folder: {error}"
        kind = "unsafe_run_folder"
        return LabelOutcome(row_id, None, reason=reason, failure_kind=kind, error_codes=[kind])
    _write_submission_note(folder)
    outcome = label_structure(row_id, atoms, dft, folder)
    if not outcome.labeled:
        requeue_if_worker_leaving()  # pw.x may have died with a cancelled batch job
    return outcome


def _write_submission_note(folder: Path) -> None:
    """Who ran this submission: host, process and batch job (for people and for tests)."""
    job = next((os.environ[name] for name in JOB_ID_VARIABLES if os.environ.get(name)), None)
    note = {"host": socket.gethostname(), "pid": os.getpid(), "job_id": job, "time": time.time()}
    (folder / SUBMISSION_NOTE).write_text(json.dumps(note))


def fresh_results(database: DatabaseManager, batch: list[Any]) -> list[Any]:
    """Drop results for rows that are no longer `labeling` (another copy stored them first)."""
    labeling = set(database.ids(**{keys.STATUS: keys.LABELING}))
    fresh = []
    for result in batch:
        row_id = int(result.item[0]) if isinstance(result, TaskFailure) else result.row_id
        if row_id in labeling:
            fresh.append(result)
        else:
            logger.warning(
                "dropped a late result for structure %d: it is no longer labeling", row_id
            )
    return fresh


def label_phase(
    campaign: Campaign, iteration: int, report: PhaseProgress | None = None
) -> LabelSummary:
    def show(counts: LabelingProgress) -> None:
        if report is not None:
            detail = f"{counts.failed} failed, {counts.running} running"
            report(counts.labeled + counts.failed, counts.queued, detail)

    label_selected(campaign, on_progress=show, iteration=iteration)
    return stored_label_summary(campaign.database, iteration)


def stored_label_summary(database: DatabaseManager, iteration: int) -> LabelSummary:
    """What the label phase of `iteration` stored, over every attempt at it (a killed one
    included), read from the database."""
    rows = database.select(**{keys.LABEL_ITERATION: iteration})
    labeled = [row for row in rows if row.status == keys.LABELED]
    failed = Counter(
        str(row.key_value_pairs.get(keys.FAILURE_KIND, "unknown"))
        for row in rows
        if row.status == keys.FAILED
    )
    wall = sum(float(row.key_value_pairs.get(keys.DFT_WALL_TIME, 0.0)) for row in rows)
    return LabelSummary(
        labeled=len(labeled),
        failed=sum(failed.values()),
        dft_wall_time=round(wall, 2),
        failed_by_kind=dict(failed),
    )


def _notify(on_progress: ProgressCallback | None, progress: LabelingProgress) -> None:
    if on_progress is not None:
        on_progress(progress)


def _to_update(
    result: LabelOutcome | TaskFailure, n_atoms: dict[int, int], iteration: int | None
) -> LabelUpdate:
    stored_in = {} if iteration is None else {keys.LABEL_ITERATION: iteration}
    if isinstance(result, TaskFailure):
        return LabelUpdate(
            id=int(result.item[0]),
            status=keys.FAILED,
            extra_keys={
                keys.REASON: f"task failed: {result.error}"[:500],
                keys.FAILURE_KIND: TASK_FAILED,
                keys.DFT_ATTEMPTS: 0,
                **stored_in,
            },
        )
    attempts: list[dict[str, Any]] = [asdict(attempt) for attempt in result.attempts]
    common = {
        keys.DFT_ATTEMPTS: len(attempts),
        keys.DFT_WALL_TIME: round(result.dft_wall_time, 3),
        **stored_in,
    }
    data = {keys.DFT_ATTEMPTS: attempts}
    reason, kind = result.reason or "no label", result.failure_kind or "unknown"
    if result.labeled and result.result is not None:
        label = {"energy": result.result.energy, "forces": result.result.forces}
        try:  # one unsound label must not roll back the batch it arrived in
            Label.from_results(label, n_atoms[result.row_id], f"row {result.row_id}")
        except LabelError as error:
            reason, kind = f"unsound label: {error}", UNSOUND_LABEL
        else:
            return LabelUpdate(
                id=result.row_id,
                status=keys.LABELED,
                energy=result.result.energy,
                forces=result.result.forces,
                stress=result.result.stress,
                extra_keys=common,
                data=data,
            )
    failure = {keys.REASON: reason[:500], keys.FAILURE_KIND: kind}
    return LabelUpdate(
        id=result.row_id, status=keys.FAILED, extra_keys={**common, **failure}, data=data
    )


def _count(progress: LabelingProgress, batch: list[Any], updates: list[LabelUpdate]) -> None:
    for result, update in zip(batch, updates, strict=True):
        if update.status == keys.LABELED:
            progress.labeled += 1
        else:
            progress.failed_by_kind[str(update.extra_keys[keys.FAILURE_KIND])] += 1
        if isinstance(result, LabelOutcome):
            progress.dft_wall_time += result.dft_wall_time
