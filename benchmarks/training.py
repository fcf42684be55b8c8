"""Training cost: fitting from scratch vs up-fitting the previous potential, on a growing dataset.

The recorded QE Si data (tests/data/si_labeled.extxyz) are split once into train/test with the
project's stable split; the training set grows in stages (2/3 of it, then about +4 structures
per stage) while the test set stays fixed. At every stage after the first:
- scratch: pacemaker from a fresh basis, MAXITER BFGS steps;
- up-fit, probe: continue from the previous stage's up-fitted potential, MAXITER steps, to find
  the first step whose train loss reaches the scratch fit's final loss (same data, same loss);
- up-fit: continue again for just that many steps (rounded up to 5), or MAXITER when the probe
  never got there, with the default safety net (a fit from scratch as well when the up-fit
  ends above 3x the previous final loss; the better one is kept): its wall time and test RMSE
  are what up-fitting costs to reach the scratch quality.
Goal: scratch time / up-fit time >= 2 at the same test RMSE. About 5 minutes on 2 cores:
    .venv/bin/python benchmarks/training.py [MAXITER] [FUNCTIONS]
"""

from __future__ import annotations

import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ase.io

from mlip_autopipec.config import TrainingConfig
from mlip_autopipec.core.database import structure_hash
from mlip_autopipec.training.dataset import (
    TEST,
    TRAIN,
    DatasetBuilder,
    LabeledStructure,
    assign_split,
    fit_reference_energies,
)
from mlip_autopipec.training.metrics import read_loss_history
from mlip_autopipec.training.pacemaker import PacemakerWrapper, TrainingResult

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "si_labeled.extxyz"
# Two thirds of the training set first, then about +4 structures per stage, like an
# active-learning iteration adding a few labeled structures to a growing set.
STAGES = (2 / 3, 5 / 6, 1.0)


@dataclass(frozen=True)
class Row:
    stage: int
    n_train: int
    scratch: TrainingResult
    probe_steps: int | None
    upfit: TrainingResult


def load_structures() -> list[LabeledStructure]:
    frames = ase.io.read(DATA, index=":")
    return [
        LabeledStructure(int(a.info["db_id"]), a, assign_split(f"hash:{structure_hash(a)}", 0.2))
        for a in frames
    ]


def fit(
    structures: list[LabeledStructure],
    builder: DatasetBuilder,
    folder: Path,
    maxiter: int,
    functions: int,
    previous: TrainingResult | None = None,
    fallback_ratio: float = 3.0,
) -> TrainingResult:
    training = TrainingConfig(
        number_of_functions_per_element=functions,
        maxiter=maxiter,
        upfit_fallback_ratio=fallback_ratio,
    )
    return PacemakerWrapper(training, ["Si"]).fit(structures, builder, folder, previous)


def steps_to_reach(result: TrainingResult, target_loss: float) -> int | None:
    for step, loss in read_loss_history(result.folder / "metrics.txt"):
        if loss <= target_loss:
            return step
    return None


def fixed_cost(structures: list[LabeledStructure], builder: DatasetBuilder, root: Path) -> float:
    """Seconds of a pacemaker run that does a single BFGS step: TensorFlow start-up, graph
    building, neighbour lists, predictions and pacemaker's own report."""
    return fit(structures, builder, root / "fixed_cost", 1, 20).metrics.fit_seconds


def run(root: Path, maxiter: int, functions: int) -> tuple[list[Row], float]:
    structures = load_structures()
    train = [s for s in structures if s.split == TRAIN]
    test = [s for s in structures if s.split == TEST]
    builder = DatasetBuilder(fit_reference_energies(train, ["Si"]))
    rows: list[Row] = []
    chain: TrainingResult | None = None
    for stage, fraction in enumerate(STAGES):
        data = train[: math.ceil(fraction * len(train))] + test
        scratch = fit(data, builder, root / f"scratch_{stage}", maxiter, functions)
        if chain is None:
            chain = scratch
            continue
        probe = fit(data, builder, root / f"probe_{stage}", maxiter, functions, chain, 1e9)
        steps = steps_to_reach(probe, scratch.metrics.final_loss)
        budget = maxiter if steps is None else max(5, 5 * math.ceil(steps / 5))
        upfit = fit(data, builder, root / f"upfit_{stage}", budget, functions, chain)
        rows.append(Row(stage, len(data) - len(test), scratch, steps, upfit))
        chain = upfit
    return rows, fixed_cost(train + test, builder, root)


def report(rows: list[Row], maxiter: int, functions: int, overhead: float) -> None:
    print(f"ACE {functions} functions, Si, scratch fits of {maxiter} BFGS steps")
    print(f"fixed cost of one pacemaker run (1 BFGS step): {overhead:.1f} s")
    print(
        f"{'stage':>5} {'n_train':>7} | {'scratch s':>9} {'E test':>7} {'F test':>7} | "
        f"{'steps':>5} {'kept':>8} {'upfit s':>8} {'E test':>7} {'F test':>7} | {'speed-up':>8}"
    )
    for row in rows:
        s, u = row.scratch.metrics, row.upfit.metrics
        assert s.test is not None and u.test is not None
        print(
            f"{row.stage:>5} {row.n_train:>7} | {s.fit_seconds:>9.1f} {s.test.rmse_energy:>7.1f} "
            f"{s.test.rmse_forces:>7.1f} | {str(row.probe_steps):>5} {u.start_mode:>8} "
            f"{u.fit_seconds:>8.1f} "
            f"{u.test.rmse_energy:>7.1f} {u.test.rmse_forces:>7.1f} | "
            f"{s.fit_seconds / u.fit_seconds:>7.2f}x"
        )
    print("RMSE: energy meV/atom, force meV/Å per component; times: pacemaker wall seconds")
    print("(steps: up-fit BFGS steps needed to reach the scratch fit's final train loss;")
    print(" kept: the fit the safety net kept; up-fit s includes the scratch refit if one ran)")


def main() -> None:
    maxiter = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    functions = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        rows, overhead = run(Path(tmp), maxiter, functions)
        report(rows, maxiter, functions, overhead)


if __name__ == "__main__":
    main()
