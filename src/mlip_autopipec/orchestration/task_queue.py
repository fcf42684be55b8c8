"""TaskQueue: the one place that talks to Dask. Local cluster, existing scheduler or jobqueue."""

from __future__ import annotations

import getpass
import hashlib
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlip_autopipec.config import ComputeConfig, JobqueueConfig
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.errors import WorkflowError

logger = logging.getLogger(__name__)

SLURM_COMMAND_TIMEOUT = 60.0  # s for squeue / scancel
WATCHDOG_INTERVAL = 2.0  # s between checks for lost worker jobs

# A local cluster's own bookkeeping, while its tasks wait on pw.x: Dask's defaults (a
# statistical profiler every 10 ms, a 20 ms event-loop tick, memory and system monitors at
# 100-500 ms) took 5-6 % of a core per worker and 5 % in the scheduler's process, about 15 % of
# a core in all on a 2-worker laptop cluster, taken from pw.x; these settings leave under 3 %.
# The workers (spawned by their nannies) are given the config the cluster was created with.
QUIET_LOCAL_CLUSTER = {
    "distributed.worker.profile.enabled": False,  # feeds only the dashboard's profile page
    "distributed.admin.tick.interval": "200ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
}

JOBQUEUE_CLUSTERS = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
}


@dataclass(frozen=True)
class TaskFailure:
    """A task raised, or its worker died; `item` is the input it was given."""

    item: Any
    error: str


class TaskQueue:
    """Submit plain-data tasks to Dask workers and receive results as they finish.

    Use as a context manager; the cluster (when we started it) is closed on exit, which for a
    jobqueue cluster cancels its batch jobs. With a `job_name`, batch jobs of that name left by
    an orchestrator that was killed are cancelled first (SLURM), and a job that is lost while
    tasks run (scancel, walltime, node failure) is replaced; Dask requeues its task.
    """

    def __init__(
        self,
        compute: ComputeConfig,
        job_name: str | None = None,
        log_directory: Path | None = None,
        nice: int = 0,
    ) -> None:
        self.compute = compute
        self.job_name = job_name
        self.log_directory = log_directory
        self.nice = nice  # the local workers' CPU niceness (inherited by their pw.x)
        self._cluster: Any = None
        self._client: Any = None
        self._watchdog: LostJobWatchdog | None = None

    def __enter__(self) -> TaskQueue:
        try:
            self._start()
        except (OSError, TimeoutError) as error:
            self.__exit__()
            raise WorkflowError(
                f"no Dask worker to run tasks on: {self._where()}: {error}"
            ) from None
        return self

    def _where(self) -> str:
        if self.compute.scheduler_address:
            return f"scheduler {self.compute.scheduler_address}"
        if self.compute.jobqueue is not None:
            waited = self.compute.worker_wait_timeout
            return f"{self.compute.jobqueue.kind} batch jobs (waited {waited:g} s)"
        return "local cluster"

    def _start(self) -> None:
        import dask
        from dask.distributed import Client, LocalCluster

        if self.compute.scheduler_address:
            self._client = Client(self.compute.scheduler_address)
            self._wait_for_a_worker()
        elif self.compute.jobqueue is not None:
            self._start_jobqueue(self.compute.jobqueue)
        else:
            with dask.config.set(QUIET_LOCAL_CLUSTER):
                self._cluster = LocalCluster(
                    n_workers=self.compute.n_workers,
                    threads_per_worker=self.compute.threads_per_worker,
                    processes=True,
                    dashboard_address=":0",
                )
                self._client = Client(self._cluster)
            if self.nice:
                self._client.run(os.nice, self.nice)

    def _start_jobqueue(self, jobqueue: JobqueueConfig) -> None:
        from dask.distributed import Client

        for note in jobqueue.notes:
            logger.warning(note)
        if self.job_name and jobqueue.kind == "slurm":
            cancel_stale_slurm_jobs(self.job_name)
        if self.log_directory is not None:
            self.log_directory.mkdir(parents=True, exist_ok=True)
        self._cluster = jobqueue_cluster(jobqueue, self.job_name, self.log_directory)
        self._cluster.scale(jobs=jobqueue.jobs)
        logger.info("submitted %d %s job(s) for Dask workers", jobqueue.jobs, jobqueue.kind)
        self._client = Client(self._cluster)
        self._wait_for_a_worker()
        self._watchdog = LostJobWatchdog(self._cluster, jobqueue.jobs)
        self._watchdog.start()

    def _wait_for_a_worker(self) -> None:
        """Batch jobs may queue for a long time before the first worker connects."""
        timeout = self.compute.worker_wait_timeout
        logger.info("waiting up to %g s for the first Dask worker", timeout)
        self._client.wait_for_workers(1, timeout=timeout)

    def __exit__(self, *exc: object) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    @property
    def n_slots(self) -> int:
        """How many tasks can run at the same time right now."""
        info = self._client.scheduler_info()
        return max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))

    def map_unordered(
        self, function: Callable[..., Any], items: Sequence[Any], **kwargs: Any
    ) -> Iterator[list[Any | TaskFailure]]:
        """Run function(*item, **kwargs) for every item; yield batches of finished results.

        A batch is what finished since the last one, so the caller can write it in one
        transaction. A task that raised is yielded as a TaskFailure instead of its result.
        """
        from dask.distributed import as_completed

        if not items:
            return
        scattered = {
            key: self._client.scatter(value, broadcast=True) for key, value in kwargs.items()
        }
        futures = [self._client.submit(function, *item, pure=False, **scattered) for item in items]
        item_of = {future.key: item for future, item in zip(futures, items, strict=True)}
        for batch in as_completed(futures).batches():
            yield [_result_or_failure(future, item_of[future.key]) for future in batch]


def _result_or_failure(future: Any, item: Any) -> Any:
    if future.status == "finished":
        return future.result()
    try:
        error = future.exception()
    except Exception as exc:  # the future itself may be lost with its worker
        error = exc
    logger.error("task for %r failed: %s", item[0] if item else item, error)
    return TaskFailure(item=item, error=f"{type(error).__name__}: {error}")


def campaign_task_queue(campaign: Campaign) -> TaskQueue:
    """The campaign's task queue: batch jobs named after it, their logs in its jobs folder."""
    layout = campaign.layout
    return TaskQueue(
        campaign.config.compute,
        job_name=batch_job_name(layout.work_dir),
        log_directory=layout.jobs_dir,
        nice=campaign.nice,
    )


def requeue_if_worker_leaving() -> None:
    """Inside a task: give the task back to the scheduler when this worker is shutting down.

    A cancelled batch job (scancel, walltime) signals its worker and its pw.x at once; pw.x's
    death must not come back as the structure's result. Outside a worker this does nothing.
    """
    from distributed import Reschedule, get_worker

    try:
        worker = get_worker()
    except ValueError:
        return
    if worker.status.name not in {"running", "paused"}:
        logger.warning("worker %s is shutting down: its task goes back to the queue", worker.name)
        raise Reschedule()


def batch_job_name(work_dir: Path) -> str:
    """The batch-job name of one campaign's workers (SLURM shows it in squeue)."""
    digest = hashlib.sha1(str(Path(work_dir).resolve()).encode()).hexdigest()[:8]
    return f"mlip-{digest}"


def jobqueue_cluster(
    jobqueue: JobqueueConfig, job_name: str | None = None, log_directory: Path | None = None
) -> Any:
    """The dask-jobqueue cluster the config describes (no job submitted yet)."""
    import dask_jobqueue

    cluster_class = getattr(dask_jobqueue, JOBQUEUE_CLUSTERS[jobqueue.kind])
    return cluster_class(**jobqueue_arguments(jobqueue, job_name, log_directory))


def jobqueue_arguments(
    jobqueue: JobqueueConfig, job_name: str | None, log_directory: Path | None
) -> dict[str, Any]:
    """dask-jobqueue keyword arguments: one worker process per job, `worker_threads` tasks."""
    arguments: dict[str, Any] = {
        "cores": jobqueue.cores,
        "processes": 1,
        "memory": jobqueue.memory,
        "walltime": jobqueue.walltime,
        "queue": jobqueue.queue,
        "job_extra_directives": list(jobqueue.job_extra_directives),
        "job_script_prologue": list(jobqueue.job_script_prologue),
        "death_timeout": jobqueue.death_timeout,
        **jobqueue.options,
    }
    scheduler = {"dashboard_address": ":0", **(jobqueue.options.get("scheduler_options") or {})}
    arguments["scheduler_options"] = scheduler
    if jobqueue.account is not None:
        arguments["account" if jobqueue.kind in {"slurm", "pbs"} else "project"] = jobqueue.account
    if jobqueue.kind == "slurm":  # --cpus-per-task=cores; Dask threads = tasks per job
        arguments.update(cores=jobqueue.worker_threads, job_cpu=jobqueue.cores)
    elif jobqueue.worker_threads != jobqueue.cores:
        extra = list(arguments.get("worker_extra_args") or [])
        arguments["worker_extra_args"] = [*extra, "--nthreads", str(jobqueue.worker_threads)]
    if job_name is not None:
        arguments["job_name"] = job_name
    if log_directory is not None:
        arguments["log_directory"] = str(log_directory)
    return {key: value for key, value in arguments.items() if value is not None}


def cancel_stale_slurm_jobs(job_name: str) -> list[str]:
    """Cancel this user's SLURM jobs called `job_name`: workers of an orchestrator that died.

    The campaign lock guarantees no live orchestrator owns them. Their running tasks are lost;
    the rows they held were requeued and run again in folders of their own.
    """
    squeue, scancel = shutil.which("squeue"), shutil.which("scancel")
    if squeue is None or scancel is None:
        return []
    user = getpass.getuser()
    listed = subprocess.run(
        [squeue, "-h", "-u", user, "-n", job_name, "-o", "%i"],
        capture_output=True,
        text=True,
        timeout=SLURM_COMMAND_TIMEOUT,
        check=False,
    )
    stale = listed.stdout.split()
    if stale:
        logger.warning("cancelling %d stale worker job(s) %s: %s", len(stale), job_name, stale)
        subprocess.run(
            [scancel, *stale], capture_output=True, timeout=SLURM_COMMAND_TIMEOUT, check=False
        )
    return stale


class LostJobWatchdog:
    """Replaces batch jobs whose worker connected and then went away while the queue runs.

    dask-jobqueue keeps a lost job in its plan, so `scale` alone never replaces it.
    """

    def __init__(self, cluster: Any, jobs: int, interval: float = WATCHDOG_INTERVAL) -> None:
        self.cluster = cluster
        self.jobs = jobs
        self.interval = interval
        self.replaced = 0
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lost-job-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10 * self.interval)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # the cluster may be closing under us; try again next round
                logger.debug("lost-job check failed", exc_info=True)

    def check(self) -> set[str]:
        connected = {str(name) for name in self.cluster.observed}
        self._seen |= connected
        lost = {name for name in self._seen - connected if name in self.cluster.worker_spec}
        if lost and not self._stop.is_set():
            logger.warning("worker job(s) lost: %s; submitting replacements", sorted(lost))
            self.cluster.sync(self.cluster.scale_down, lost)
            self.cluster.scale(jobs=self.jobs)
            self.replaced += len(lost)
        return lost
