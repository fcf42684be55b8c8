"""pw.x layout on 2 cores: two Dask workers with one pw.x rank each, or one worker with two
MPI ranks and k-point pools (`mpirun -np 2 pw.x -nk 2`), on the same structures, in one run.

The structures are the kinds the bundled example labels (examples/si/config.yaml, its DFT
settings: k-spacing 0.3, 24/96 Ry): rattled 8-atom cells, 7-atom vacancy cells, 8-atom (111)
slabs. Prints the wall time of each layout and the throughput ratio; the faster one is what
the example should use. Needs pw.x and mpirun; run it on an otherwise idle machine:

    .venv/bin/python benchmarks/pw_layout.py [--per-kind 2] [--plane-waves]

`--plane-waves` adds one worker with two ranks and no pools (plane-wave parallelization).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from ase import Atoms
from ase.build import bulk

from mlip_autopipec.config import load_config
from mlip_autopipec.core import keys
from mlip_autopipec.generation.transforms import slab
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.labeling import LabelingProgress, label_selected

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "si" / "config.yaml"


def structures(per_kind: int) -> list[Atoms]:
    cubic = bulk("Si", "diamond", a=5.43, cubic=True)
    frames = []
    for seed in range(per_kind):
        rattled = cubic.copy()
        rattled.rattle(0.1, seed=seed)
        vacancy = cubic.copy()
        del vacancy[seed % len(vacancy)]
        vacancy.rattle(0.05, seed=100 + seed)
        surface = slab(bulk("Si", "diamond", a=5.43), (1, 1, 1), 4, 6.0)
        surface.rattle(0.05, seed=200 + seed)
        frames += [rattled, vacancy, surface]
    return frames


def mpirun(ranks: int) -> list[str]:
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    return ["mpirun", "-np", str(ranks), *root]


LAYOUTS: dict[str, dict[str, Any]] = {
    "2 workers x 1 rank": {"workers": 2, "launcher": [], "command": ["pw.x"]},
    "1 worker x 2 ranks, -nk 2": {
        "workers": 1,
        "launcher": mpirun(2),
        "command": ["pw.x", "-nk", "2"],
    },  # fmt: skip
    "1 worker x 2 ranks, plane waves": {
        "workers": 1,
        "launcher": mpirun(2),
        "command": ["pw.x"],
    },  # fmt: skip
}


def label_with(name: str, frames: list[Atoms], root: Path) -> LabelingProgress:
    layout = LAYOUTS[name]
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    data["dft"].update(launcher=layout["launcher"], command=layout["command"])
    data["dft"]["pseudo_dir"] = str((EXAMPLE.parent / data["dft"]["pseudo_dir"]).resolve())
    data["dft_check"] = {"enabled": False}
    data["compute"] = {"n_workers": layout["workers"], "threads_per_worker": 1}
    folder = root / name.replace(" ", "_").replace(",", "")
    data["workflow"]["work_dir"] = str(folder / "work")
    folder.mkdir(parents=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    campaign = Campaign.open(load_config(path))
    campaign.database.add_structures(frames, keys.SELECTED, 0, "benchmark")
    return label_selected(campaign)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-kind", type=int, default=2, help="structures of each kind")
    parser.add_argument("--plane-waves", action="store_true")
    args = parser.parse_args()
    frames = structures(args.per_kind)
    names = list(LAYOUTS)[:2] + (list(LAYOUTS)[2:] if args.plane_waves else [])
    with tempfile.TemporaryDirectory() as tmp:
        runs = {name: label_with(name, frames, Path(tmp)) for name in names}
    print(f"\n{len(frames)} pw.x SCF at the example's settings (8-atom bulk, 7-atom vacancy, slab)")
    print(f"{'layout':>32} {'labeled':>8} {'failed':>7} {'elapsed s':>10} {'struct/min':>11}")
    for name, run in runs.items():
        rate = run.labeled / run.elapsed * 60
        print(f"{name:>32} {run.labeled:>8} {run.failed:>7} {run.elapsed:>10.1f} {rate:>11.2f}")
    first, *others = names
    for name in others:
        ratio = runs[first].elapsed / runs[name].elapsed
        print(f"throughput {name} / {first}: {ratio:.2f}")


if __name__ == "__main__":
    main()
