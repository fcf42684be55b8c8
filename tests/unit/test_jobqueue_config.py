"""compute.jobqueue: typed fields for what users set most, checked before any job is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlip_autopipec.config import ConfigError, JobqueueConfig, config_from_dict
from mlip_autopipec.config.models import OPTIONS_NOTE
from mlip_autopipec.orchestration.task_queue import jobqueue_cluster

FULL = {
    "kind": "slurm",
    "jobs": 3,
    "cores": 4,
    "tasks_per_job": 2,
    "memory": "8GB",
    "walltime": "01:00:00",
    "queue": "short",
    "account": "proj42",
    "job_extra_directives": ["--qos=debug"],
    "job_script_prologue": ["module load quantum-espresso"],
    "death_timeout": 45,
}


def problems(config_dict: dict[str, Any], tmp_path: Path, **jobqueue: Any) -> str:
    config_dict["compute"] = {"jobqueue": jobqueue}
    with pytest.raises(ConfigError) as error:
        config_from_dict(config_dict, base_dir=tmp_path)
    return "\n".join(error.value.problems)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("memory", "lots", "not a memory size"),
        ("walltime", "1 hour", "not a walltime"),
        ("queue", "short\n#SBATCH --exclusive", "plain name"),
        ("account", "a b", "plain name"),
        ("job_extra_directives", ["--qos=x\n--exclusive"], "one non-empty line"),
        ("job_script_prologue", [""], "one non-empty line"),
        ("cores", 0, "greater than 0"),
        ("death_timeout", True, "boolean"),
        ("options", {"cores": 8}, "use jobqueue.cores instead"),
        ("options", {"project": "x"}, "use jobqueue.account instead"),
    ],
)
def test_bad_jobqueue_values_name_the_field(
    config_dict: dict[str, Any], tmp_path: Path, field: str, value: Any, message: str
) -> None:
    text = problems(config_dict, tmp_path, **{field: value})
    assert f"compute.jobqueue.{field}" in text and message in text, text


def test_more_tasks_than_cores_is_refused(config_dict: dict[str, Any], tmp_path: Path) -> None:
    text = problems(config_dict, tmp_path, cores=2, tasks_per_job=3)
    assert "tasks_per_job cannot exceed cores" in text


def test_options_are_accepted_with_a_note_that_they_become_script_lines() -> None:
    assert JobqueueConfig().notes == []
    jobqueue = JobqueueConfig(options={"interface": "ib0"})
    assert jobqueue.notes == [OPTIONS_NOTE] and "batch script" in OPTIONS_NOTE


def test_slurm_job_script_carries_every_typed_field() -> None:
    cluster = jobqueue_cluster(JobqueueConfig(**FULL), "mlip-abc", Path("/tmp/jobs"))
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in (
        "#SBATCH -J mlip-abc",
        "#SBATCH -p short",
        "#SBATCH -A proj42",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=",
        "#SBATCH -t 01:00:00",
        "#SBATCH --qos=debug",
        "#SBATCH -e /tmp/jobs/mlip-abc-%J.err",
        "module load quantum-espresso",
    ):
        assert line in script, line
    assert "--nthreads 2" in script and "--death-timeout 45" in script


def test_other_schedulers_get_the_thread_count_as_a_worker_argument() -> None:
    jobqueue = JobqueueConfig(kind="pbs", cores=4, tasks_per_job=1, account="proj42")
    cluster = jobqueue_cluster(jobqueue)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "ncpus=4" in script and "-A proj42" in script
    assert script.rstrip().endswith("--nthreads 1")  # the last --nthreads wins
