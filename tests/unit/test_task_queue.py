from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from ase.build import bulk

from mlip_autopipec.config import ComputeConfig, JobqueueConfig, config_from_dict
from mlip_autopipec.core import keys
from mlip_autopipec.dft.runner import LabelOutcome
from mlip_autopipec.orchestration.campaign import Campaign, CampaignLayout
from mlip_autopipec.orchestration.labeling import fresh_results, label_submission
from mlip_autopipec.orchestration.task_queue import (
    QUIET_LOCAL_CLUSTER,
    LostJobWatchdog,
    TaskFailure,
    TaskQueue,
    batch_job_name,
    jobqueue_cluster,
)


def square(x: int, offset: int) -> int:
    if x == 3:
        raise ValueError("three is refused")
    return x * x + offset


def test_local_cluster_runs_tasks_and_reports_failures_as_data() -> None:
    results = []
    with TaskQueue(ComputeConfig(n_workers=2)) as queue:
        assert queue.n_slots == 2
        for batch in queue.map_unordered(square, [(i,) for i in range(5)], offset=1):
            results.extend(batch)
    values = sorted(r for r in results if not isinstance(r, TaskFailure))
    failures = [r for r in results if isinstance(r, TaskFailure)]
    assert values == [1, 2, 5, 17]
    assert len(failures) == 1 and failures[0].item == (3,)
    assert "three is refused" in failures[0].error


def dask_settings_of_a_worker(_: int) -> dict[str, object]:
    import dask

    return {key: dask.config.get(key) for key in QUIET_LOCAL_CLUSTER}


def test_local_workers_keep_their_bookkeeping_quiet_while_tasks_wait_on_programs() -> None:
    import dask

    with TaskQueue(ComputeConfig(n_workers=1)) as queue:
        (settings,) = [
            s for batch in queue.map_unordered(dask_settings_of_a_worker, [(0,)]) for s in batch
        ]
    assert settings == QUIET_LOCAL_CLUSTER
    assert dask.config.get("distributed.worker.profile.enabled") is True  # ours is untouched


def niceness_of_a_child(_: int) -> int:
    """What a program the task starts (pw.x) runs at."""
    import subprocess

    done = subprocess.run(["nice"], capture_output=True, text=True, check=True)  # noqa: S607
    return int(done.stdout)


def test_local_workers_of_work_alongside_run_at_a_lower_cpu_priority() -> None:
    def niceness(queue_nice: int) -> set[int]:
        with TaskQueue(ComputeConfig(n_workers=1), nice=queue_nice) as queue:
            batches = queue.map_unordered(niceness_of_a_child, [(0,), (1,)])
            return {value for batch in batches for value in batch}

    own = os.nice(0)
    assert niceness(0) == {own}
    assert niceness(10) == {min(own + 10, 19)}


def test_slurm_cluster_from_config_writes_the_requested_job_script() -> None:
    jobqueue = JobqueueConfig(
        kind="slurm",
        jobs=2,
        cores=4,
        memory="8GB",
        queue="short",
        walltime="01:00:00",
    )
    cluster = jobqueue_cluster(jobqueue)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p short" in script
    assert "#SBATCH -t 01:00:00" in script
    assert "#SBATCH --mem=" in script


def test_each_submission_claims_a_folder_of_its_own(tmp_path: Path) -> None:
    layout = CampaignLayout(tmp_path / "work")
    with ThreadPoolExecutor(4) as pool:
        folders = list(pool.map(lambda _: layout.claim_submission_dir(7), range(8)))
    assert len(set(folders)) == 8 and all(f.parent == layout.dft_dir(7) for f in folders)
    assert sorted(f.name for f in folders) == sorted(f"sub_{n}" for n in range(8))


def test_a_symlinked_structure_folder_is_refused_as_data(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config = config_from_dict(config_dict, base_dir=tmp_path)
    layout = CampaignLayout(tmp_path / "work")
    layout.dft_root.mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", layout.dft_dir(3))
    outcome = label_submission(3, bulk("Si"), config.dft, layout)
    assert outcome.failure_kind == "unsafe_run_folder" and not outcome.labeled
    assert not list((tmp_path / "elsewhere").iterdir())


def test_a_late_result_for_a_row_already_labeled_is_dropped_with_a_log_line(
    tmp_path: Path, config_dict: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    config = config_from_dict(config_dict, base_dir=tmp_path)
    database = Campaign.open(config).database
    done, running = database.add_structures([bulk("Si"), bulk("Si", a=5.5)], keys.LABELING, 0, "t")
    database.set_status([done], keys.LABELED)
    late = LabelOutcome(row_id=done, result=None)
    current = LabelOutcome(row_id=running, result=None)
    lost = TaskFailure(item=(done,), error="KilledWorker")
    with caplog.at_level(logging.WARNING):
        kept = fresh_results(database, [late, current, lost])
    assert kept == [current]
    assert caplog.text.count(f"dropped a late result for structure {done}") == 2


class ClusterStandIn:
    """What LostJobWatchdog reads and calls on a dask-jobqueue cluster."""

    def __init__(self) -> None:
        self.observed = {"job-0", "job-1"}
        self.worker_spec: dict[str, Any] = {"job-0": {}, "job-1": {}}
        self.scaled_to: list[int] = []

    def sync(self, function: Any, *args: Any) -> None:
        function(*args)

    def scale_down(self, names: set[str]) -> None:
        for name in names:
            del self.worker_spec[name]

    def scale(self, jobs: int) -> None:
        self.scaled_to.append(jobs)
        self.worker_spec[f"job-{len(self.worker_spec) + 1}"] = {}


def test_watchdog_replaces_a_job_whose_worker_went_away() -> None:
    cluster = ClusterStandIn()
    watchdog = LostJobWatchdog(cluster, jobs=2)
    assert watchdog.check() == set()
    cluster.observed = {"job-1"}  # job-0 was cancelled / hit its walltime
    assert watchdog.check() == {"job-0"}
    assert cluster.scaled_to == [2] and "job-0" not in cluster.worker_spec
    assert watchdog.check() == set() and watchdog.replaced == 1  # replaced once, not again


def test_batch_job_names_are_per_campaign(tmp_path: Path) -> None:
    first, second = batch_job_name(tmp_path / "a"), batch_job_name(tmp_path / "b")
    assert first != second and first == batch_job_name(tmp_path / "a" / ".." / "a")
    assert first.startswith("mlip-") and len(first) <= 16
