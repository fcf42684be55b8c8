"""TaskQueue: the one place that talks to Dask. Local cluster, existing scheduler or jobqueue."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mlip_autopipec.config import ComputeConfig, JobqueueConfig

logger = logging.getLogger(__name__)

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

    Use as a context manager; the cluster (when we started it) is closed on exit.
    """

    def __init__(self, compute: ComputeConfig) -> None:
        self.compute = compute
        self._cluster: Any = None
        self._client: Any = None

    def __enter__(self) -> TaskQueue:
        from dask.distributed import Client, LocalCluster

        if self.compute.scheduler_address:
            self._client = Client(self.compute.scheduler_address)
            self._wait_for_a_worker()
        elif self.compute.jobqueue is not None:
            assert self.compute.jobqueue is not None
            self._cluster = jobqueue_cluster(self.compute.jobqueue)
            self._cluster.scale(jobs=self.compute.jobqueue.jobs)
            logger.info("submitting %d dask-jobqueue job(s)", self.compute.jobqueue.jobs)
            self._client = Client(self._cluster)
            self._wait_for_a_worker()
        else:
            self._cluster = LocalCluster(
                n_workers=self.compute.n_workers,
                threads_per_worker=self.compute.threads_per_worker,
                processes=True,
                dashboard_address=":0",
            )
            self._client = Client(self._cluster)
        return self

    def _wait_for_a_worker(self) -> None:
        """Batch jobs may queue for a long time before the first worker connects."""
        timeout = self.compute.worker_wait_timeout
        logger.info("waiting up to %g s for the first Dask worker", timeout)
        self._client.wait_for_workers(1, timeout=timeout)

    def __exit__(self, *exc: object) -> None:
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


def jobqueue_cluster(jobqueue: JobqueueConfig) -> Any:
    """The dask-jobqueue cluster the config describes (no job submitted yet)."""
    import dask_jobqueue

    cluster_class = getattr(dask_jobqueue, JOBQUEUE_CLUSTERS[jobqueue.kind])
    return cluster_class(**jobqueue.options)
