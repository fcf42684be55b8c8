"""Overhead per task of labeling through dask-jobqueue (SLURM batch jobs, pw.x under srun) vs a
LocalCluster, on the same pw.x runs, side by side in one run.

Both paths get 2 task slots (2 local workers / 2 one-CPU batch jobs). Overhead per task is
(elapsed x slots - sum of pw.x wall times) / tasks: what the path adds around pw.x (cluster
start, job queueing and worker start, srun, task transfer). Needs pw.x and a running SLURM:
    scripts/local-slurm.sh start && export SLURM_CONF=/tmp/mlip-local-slurm/slurm.conf
    .venv/bin/python benchmarks/jobqueue.py [N_STRUCTURES] [REPEATS]
Run it on an otherwise idle machine: other load distorts the figures.
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.build import bulk

from mlip_autopipec.config import config_from_dict
from mlip_autopipec.core import keys
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.labeling import LabelingProgress, label_selected

SLOTS = 2
BASE: dict[str, Any] = {
    "system": {"elements": ["Si"]},
    "dft": {
        "pseudo_dir": "/usr/share/espresso/pseudo",
        "pseudopotentials": {"Si": "Si.pbe-rrkj.UPF"},
        "ecutwfc": 20.0,
        "kspacing": 0.5,
        "timeout": 600,
    },
}
PATHS: dict[str, dict[str, Any]] = {
    "local": {"compute": {"n_workers": SLOTS, "threads_per_worker": 1}},
    "slurm": {
        "dft": {"launcher": ["srun", "--ntasks=1"]},
        "compute": {
            "worker_wait_timeout": 300,
            "jobqueue": {"kind": "slurm", "jobs": SLOTS, "cores": 1, "memory": "1GB"},
        },
    },
}


def structures(count: int) -> list[Atoms]:
    frames = []
    for seed in range(count):
        atoms = bulk("Si", "diamond", a=5.43)
        atoms.rattle(0.05, seed=seed)
        frames.append(atoms)
    return frames


def config_for(path: str, work_dir: Path) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["dft"].update(PATHS[path].get("dft", {}))
    data["compute"] = PATHS[path]["compute"]
    data["workflow"] = {"work_dir": str(work_dir)}
    return data


def label_with(path: str, frames: list[Atoms], work_dir: Path) -> LabelingProgress:
    campaign = Campaign.open(config_from_dict(config_for(path, work_dir)))
    campaign.database.add_structures(frames, keys.SELECTED, 0, "benchmark")
    progress = label_selected(campaign)
    assert progress.labeled == len(frames), f"{path}: {progress.failed} failed"
    return progress


def main() -> None:
    if "SLURM_CONF" not in os.environ:
        sys.exit("start SLURM first: scripts/local-slurm.sh start; export SLURM_CONF=...")
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    frames = structures(count)
    runs: list[tuple[str, LabelingProgress]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats):  # alternate the order so drifting load hits both
            order = ("local", "slurm") if repeat % 2 == 0 else ("slurm", "local")
            for path in order:
                runs.append((path, label_with(path, frames, Path(tmp) / f"{path}_{repeat}")))
    print(f"{count} x 2-atom Si SCF, {SLOTS} slots, {repeats} repeat(s)")
    print(f"{'path':>6} {'elapsed s':>10} {'pw.x sum s':>11} {'overhead/task s':>16}")
    per_task: dict[str, list[float]] = {"local": [], "slurm": []}
    for path, progress in runs:
        overhead = (progress.elapsed * SLOTS - progress.dft_wall_time) / count
        per_task[path].append(overhead)
        print(
            f"{path:>6} {progress.elapsed:>10.1f} {progress.dft_wall_time:>11.1f} {overhead:>16.2f}"
        )
    local, slurm = (sum(v) / len(v) for v in per_task.values())
    print(f"overhead around pw.x per task: local {local:.2f} s, slurm {slurm:.2f} s")
    elapsed = {p: sum(r.elapsed for q, r in runs if q == p) / repeats for p in per_task}
    extra = (elapsed["slurm"] - elapsed["local"]) * SLOTS / count
    print(f"extra slot time per task on the jobqueue path (srun included): {extra:.2f} s")


if __name__ == "__main__":
    main()
