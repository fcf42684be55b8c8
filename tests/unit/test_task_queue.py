from __future__ import annotations

from mlip_autopipec.config import ComputeConfig, JobqueueConfig
from mlip_autopipec.orchestration.task_queue import TaskFailure, TaskQueue, jobqueue_cluster


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


def test_slurm_cluster_from_config_writes_the_requested_job_script() -> None:
    jobqueue = JobqueueConfig(
        kind="slurm",
        jobs=2,
        options={"cores": 4, "memory": "8GB", "queue": "short", "walltime": "01:00:00"},
    )
    cluster = jobqueue_cluster(jobqueue)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p short" in script
    assert "#SBATCH -t 01:00:00" in script
    assert "#SBATCH --mem=" in script
