"""A real one-node SLURM for the tests, through scripts/local-slurm.sh.

`local_slurm` (session scope) uses a cluster that already runs (CI's `.ci/run` starts one), or
starts it and stops it at the end. Without one (not root, no packages, daemons that do not come
up) a test that needs it fails under CI=true and is skipped with the reason elsewhere.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MINIMAL_CONFIG
from tests.integration.lammps_fixtures import in_ci

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "local-slurm.sh"
STATE_DIR = Path(os.environ.get("LOCAL_SLURM_DIR", "/tmp/mlip-local-slurm"))
START_TIMEOUT = 900  # s: the first start may install slurm-wlm and munge with apt-get
COMMAND_TIMEOUT = 60


@dataclass(frozen=True)
class LocalSlurm:
    conf: Path

    def run(self, *argv: str) -> str:
        executable = shutil.which(argv[0])
        assert executable is not None, f"{argv[0]} not found"
        done = subprocess.run(
            [executable, *argv[1:]],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=True,
            env={**os.environ, "SLURM_CONF": str(self.conf)},
        )
        return done.stdout

    def jobs(self, name: str) -> dict[str, str]:
        """job id -> state of the jobs called `name` (pending, running or completing)."""
        lines = self.run("squeue", "-h", "-n", name, "-o", "%i %T").split()
        return dict(zip(lines[::2], lines[1::2], strict=True))

    def wait_for_no_jobs(self, name: str, timeout: float = 60) -> dict[str, str]:
        """Poll until no job called `name` is left (completing jobs take a moment)."""
        deadline = time.monotonic() + timeout
        while (left := self.jobs(name)) and time.monotonic() < deadline:
            time.sleep(0.5)
        return left


def slurm_config_dict(work_dir: Path, jobs: int = 2) -> dict[str, Any]:
    """The config of the SLURM tests (the README's cluster example): real pw.x under srun in
    batch jobs of one CPU each."""
    data = copy.deepcopy(MINIMAL_CONFIG)
    data["dft"].update({"timeout": 600, "launcher": ["srun", "--ntasks=1"]})
    data["workflow"] = {"work_dir": str(work_dir)}
    data["compute"] = {
        "worker_wait_timeout": 300,
        "jobqueue": {
            "kind": "slurm",
            "jobs": jobs,
            "cores": 1,
            "memory": "1GB",
            "walltime": "00:30:00",
            "death_timeout": 60,
        },
    }
    return data


def _script(command: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI needs a local SLURM: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def local_slurm() -> Iterator[LocalSlurm]:
    if os.geteuid() != 0:
        _unavailable("the local SLURM needs root (slurmctld and slurmd run as root)")
    if shutil.which("pw.x") is None:
        _unavailable("pw.x not installed")
    started_here = _script("status", COMMAND_TIMEOUT).returncode != 0
    if started_here:
        start = _script("start", START_TIMEOUT)
        if start.returncode != 0:
            _unavailable(f"scripts/local-slurm.sh start failed: {start.stderr.strip()[-500:]}")
    conf = STATE_DIR / "slurm.conf"
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)  # sbatch, squeue, scancel and srun in jobs find it
    try:
        yield LocalSlurm(conf)
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        if started_here:
            _script("stop", COMMAND_TIMEOUT)
