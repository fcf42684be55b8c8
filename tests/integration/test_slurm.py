"""Labeling through dask-jobqueue on a real one-node SLURM (scripts/local-slurm.sh): Dask
workers are batch jobs, pw.x runs under srun inside them. Also what a cluster brings: a worker
job cancelled mid-task, and an orchestrator killed while its jobs run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import yaml
from ase import Atoms
from ase.build import bulk

from mlip_autopipec.config import MLIPConfig, config_from_dict
from mlip_autopipec.core import keys
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.labeling import SUBMISSION_NOTE, label_selected
from mlip_autopipec.orchestration.task_queue import batch_job_name
from tests.integration.slurm_fixtures import LocalSlurm, slurm_config_dict

T = TypeVar("T")
STATE_TIMEOUT = 300  # s to reach a state (a worker busy, a label stored) on a busy machine


def si2(seed: int) -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.05, seed=seed)
    return atoms


def slurm_campaign(root: Path, count: int, jobs: int = 2) -> tuple[MLIPConfig, Path, list[int]]:
    data = slurm_config_dict(Path("work"), jobs=jobs)
    config_path = root / "config.yaml"
    config_path.write_text(yaml.safe_dump(data))
    config = config_from_dict(data, base_dir=root)
    structures = [si2(seed) for seed in range(count)]
    ids = Campaign.open(config).database.add_structures(structures, keys.SELECTED, 0, "test")
    return config, config_path, ids


def submissions(config: MLIPConfig, row_id: int) -> list[Path]:
    return sorted(Campaign.open(config).layout.dft_dir(row_id).glob("sub_*"))


def pw_starts(config: MLIPConfig) -> int:
    return len(list((config.workflow.work_dir / "dft").glob("*/sub_*/attempt_*")))


def busy_submission(config: MLIPConfig) -> tuple[int, str] | None:
    """(row id, job id) of a submission whose pw.x runs now: input written, no JOB DONE yet."""
    for folder in (config.workflow.work_dir / "dft").glob("*/sub_*"):
        output, note = folder / "attempt_0" / "pw.out", folder / SUBMISSION_NOTE
        if not (output.is_file() and note.is_file()) or "JOB DONE" in output.read_text():
            continue
        job_id = json.loads(note.read_text())["job_id"]
        if job_id:
            return int(folder.parent.name), str(job_id)
    return None


def wait_for(condition: Callable[[], T], what: str) -> T:
    deadline = time.monotonic() + STATE_TIMEOUT
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def test_labels_arrive_from_batch_jobs_running_pw_under_srun(
    local_slurm: LocalSlurm, tmp_path: Path
) -> None:
    config, _, ids = slurm_campaign(tmp_path, count=3)
    campaign = Campaign.open(config)
    progress = label_selected(campaign)
    assert (progress.labeled, progress.failed) == (3, 0)
    job_ids = set()
    for row_id in ids:
        record = campaign.database.get(row_id)
        assert record.status == keys.LABELED
        assert -110 * 2 < record.atoms.get_potential_energy() < -100 * 2
        [folder] = submissions(config, row_id)
        note = json.loads((folder / SUBMISSION_NOTE).read_text())
        assert note["job_id"], "pw.x ran outside a batch job"
        job_ids.add(note["job_id"])
        assert "running on     1 processors" in (folder / "attempt_0" / "pw.out").read_text()
    name = batch_job_name(config.workflow.work_dir)
    for job_id in job_ids:  # the campaign's jobs, their logs in the work dir
        assert (campaign.layout.jobs_dir / f"{name}-{job_id}.err").is_file()
    assert local_slurm.wait_for_no_jobs(name) == {}


def test_a_cancelled_worker_job_costs_only_its_task(
    local_slurm: LocalSlurm, tmp_path: Path
) -> None:
    config, _, ids = slurm_campaign(tmp_path, count=4)
    cancelled: list[tuple[int, str]] = []
    errors: list[BaseException] = []

    def cancel_a_busy_job() -> None:
        try:
            busy = wait_for(lambda: busy_submission(config), "a busy worker job")
            assert busy is not None
            row_id, job_id = busy
            local_slurm.run("scancel", job_id)
            cancelled.append((row_id, job_id))
        except BaseException as error:  # reported by the test's main thread
            errors.append(error)

    watcher = threading.Thread(target=cancel_a_busy_job)
    watcher.start()
    progress = label_selected(Campaign.open(config))
    watcher.join()
    assert not errors, errors
    [(row_id, job_id)] = cancelled
    assert (progress.labeled, progress.failed) == (4, 0)
    database = Campaign.open(config).database
    assert all(database.get(i).status == keys.LABELED for i in ids)
    runs = {i: len(submissions(config, i)) for i in ids}
    assert runs[row_id] <= 2, runs  # the cancelled task ran again, in a folder of its own
    assert all(runs[i] == 1 for i in ids if i != row_id), runs  # nothing else was repeated
    assert local_slurm.wait_for_no_jobs(batch_job_name(config.workflow.work_dir)) == {}


def test_sigkill_of_the_orchestrator_then_resume_labels_each_structure_once(
    local_slurm: LocalSlurm, tmp_path: Path
) -> None:
    config, config_path, ids = slurm_campaign(tmp_path, count=5)
    name = batch_job_name(config.workflow.work_dir)
    database = Campaign.open(config).database
    cli = [sys.executable, "-m", "mlip_autopipec", "label", str(config_path)]
    process = subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def labeled_and_busy() -> bool:
        return database.count(status=keys.LABELED) >= 1 and busy_submission(config) is not None

    try:
        wait_for(labeled_and_busy, "one label stored while another pw.x runs")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    before = {r.id: r for r in database.select(status=keys.LABELED)}
    assert len(before) < len(ids), "killed too late to test resuming"
    stale_jobs = local_slurm.jobs(name)
    assert stale_jobs, "the killed orchestrator's worker jobs should still be there"

    def finished_unstored() -> set[int]:
        """Rows still `labeling` whose pw.x, in a job that outlived the kill, ran to its end."""
        labeling = set(database.ids(status=keys.LABELING))
        outputs = (config.workflow.work_dir / "dft").glob("*/sub_*/attempt_*/pw.out")
        done = {int(out.parents[2].name) for out in outputs if "JOB DONE" in out.read_text()}
        return done & labeling

    harvestable = wait_for(finished_unstored, "a pw.x of the killed run ending in its job")
    starts_before = pw_starts(config)

    resumed = subprocess.run(cli, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    after = {r.id: r for r in database.select()}
    assert len(after) == len(ids) and all(r.status == keys.LABELED for r in after.values())
    for row_id, record in before.items():  # finished labels untouched, not recomputed
        assert after[row_id].data == record.data
        assert len(submissions(config, row_id)) == 1
    for row_id in harvestable:  # finished after the kill: read back, not run again
        assert len(submissions(config, row_id)) == 1, row_id
    for row_id in set(ids) - set(before):  # the rest ran at most once per orchestrator
        assert 1 <= len(submissions(config, row_id)) <= 2
    assert local_slurm.wait_for_no_jobs(name) == {}, "a stale worker job outlived the phase"
    log = (config.workflow.work_dir / "mlip-autopipe.log").read_text()
    assert "stale worker job" in log
    print(
        f"kill/resume: {len(ids)} structures, {len(before)} labeled before the kill, "
        f"pw.x starts {starts_before} before + {pw_starts(config) - starts_before} after, "
        f"{len(stale_jobs)} stale job(s) cancelled on restart"
    )


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # sbatch's working folder: nothing lands in the repository
