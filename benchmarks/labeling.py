"""Labeling throughput: 1 vs 2 Dask workers on the same Si structures, in one run.

Prints the throughput ratio (goal >= 1.8 on 2 cores) and the pipeline overhead
1 - sum(pw.x wall times) / (elapsed x workers) (goal <= 5%). Needs pw.x; run with
    .venv/bin/python benchmarks/labeling.py [N]
Run it on an otherwise idle machine: other load distorts both figures.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from ase import Atoms
from ase.build import bulk

from mlip_autopipec.config import config_from_dict
from mlip_autopipec.core import keys
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.labeling import LabelingProgress, label_selected


def structures(count: int) -> list[Atoms]:
    frames = []
    for seed in range(count):
        atoms = bulk("Si", "diamond", a=5.43, cubic=True)
        atoms.rattle(0.05, seed=seed)
        frames.append(atoms)
    return frames


def label_with(workers: int, frames: list[Atoms], root: Path) -> LabelingProgress:
    config = config_from_dict(
        {
            "system": {"elements": ["Si"]},
            "dft": {
                "pseudopotentials": {"Si": "Si.pbe-rrkj.UPF"},
                "ecutwfc": 20.0,
                "kspacing": 0.5,
                "timeout": 600,
            },
            "workflow": {"work_dir": str(root / f"workers_{workers}")},
            "compute": {"n_workers": workers, "threads_per_worker": 1},
        }
    )
    campaign = Campaign.open(config)
    campaign.database.add_structures(frames, keys.SELECTED, 0, "benchmark")
    return label_selected(campaign)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    frames = structures(count)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {workers: label_with(workers, frames, Path(tmp)) for workers in (1, 2)}
    print(f"{count} x 8-atom Si SCF (pw.x 1 process per worker)")
    print(f"{'workers':>8} {'elapsed s':>10} {'pw.x sum s':>11} {'struct/min':>11} {'overhead':>9}")
    for workers, summary in runs.items():
        rate = summary.labeled / summary.elapsed * 60
        overhead = 1 - summary.dft_wall_time / (summary.elapsed * workers)
        print(
            f"{workers:>8} {summary.elapsed:>10.1f} {summary.dft_wall_time:>11.1f} "
            f"{rate:>11.2f} {overhead:>9.1%}"
        )
    ratio = (runs[2].labeled / runs[2].elapsed) / (runs[1].labeled / runs[1].elapsed)
    print(f"throughput ratio 2 workers / 1 worker: {ratio:.2f} (goal >= 1.8)")


if __name__ == "__main__":
    main()
