"""Data efficiency of the active-learning loop vs random picks from the same generators.

One run, side by side, with real pw.x, pacemaker and gamma:
  1. a held-out set of Si MD snapshots (CHGNet Langevin MD at 300-1500 K on 8- and 16-atom
     cells), labeled with the same DFT settings as the campaign;
  2. (a) the active-learning loop (`WorkflowManager`) on the bundled example settings;
  3. (b) for the same cumulative DFT budgets, structures drawn at random from the same
     generators, labeled and fitted with the same training settings;
then prints both learning curves (held-out force RMSE vs DFT calculations) and how many DFT
calculations random picking needs to reach the loop's final RMSE (linear interpolation).

    .venv/bin/python benchmarks/active_learning.py [--iterations 3] [--holdout 12]

Takes about 20-40 minutes on 2 cores. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from ase import Atoms, units
from ase.build import bulk
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta

from mlip_autopipec.config import MLIPConfig, load_config
from mlip_autopipec.core import keys
from mlip_autopipec.generation import StructureBuilder
from mlip_autopipec.orchestration.database import open_database
from mlip_autopipec.orchestration.labeling import label_selected
from mlip_autopipec.orchestration.training import finished_fits, train_iteration
from mlip_autopipec.orchestration.workflow import WorkflowManager

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "si" / "config.yaml"


def campaign(root: Path, name: str, iterations: int) -> MLIPConfig:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    data["workflow"]["work_dir"] = str(root / name)
    data["workflow"]["max_iterations"] = iterations
    data["workflow"]["target_force_rmse"] = 1e-6  # never stop early: compare full curves
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def md_snapshots(count: int, seed: int = 7) -> list[Atoms]:
    """Snapshots of CHGNet MD at 300, 900 and 1500 K: a held-out set unlike the training picks."""
    from chgnet.model.dynamics import CHGNetCalculator

    calculator = CHGNetCalculator(use_device="cpu")
    snapshots = []
    cells = [(1, 1, 1), (2, 1, 1)]
    temperatures = [300.0, 900.0, 1500.0]
    rng = np.random.default_rng(seed)
    for index in range(count):
        atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(cells[index % 2])
        atoms.calc = calculator
        temperature = temperatures[index % 3]
        thermalize_momenta(atoms, temperature, rng=rng)
        Langevin(atoms, 2 * units.fs, temperature_K=temperature, friction=0.02 / units.fs,
                 fixcm=False, rng=rng).run(40 + 10 * index)  # fmt: skip
        snapshot = atoms.copy()
        snapshot.calc = None
        snapshots.append(snapshot)
    return snapshots


def label_structures(config: MLIPConfig, structures: list[Atoms], origin: str) -> list[Atoms]:
    database = open_database(config)
    database.add_structures(structures, keys.SELECTED, 0, origin)
    label_selected(config)
    return [r.atoms for r in database.select(**{keys.STATUS: keys.LABELED, keys.ORIGIN: origin})]


def force_rmse(potential: Path, structures: list[Atoms]) -> float:
    """Force RMSE per Cartesian component in meV/Å, as pacemaker reports it."""
    from pyace import PyACECalculator

    calculator = PyACECalculator(str(potential))
    errors = []
    for reference in structures:
        atoms = reference.copy()
        atoms.calc = calculator
        errors.append((atoms.get_forces() - reference.get_forces()).ravel())
    return float(np.sqrt(np.mean(np.concatenate(errors) ** 2)) * 1000)


def active_learning_curve(config: MLIPConfig, holdout: list[Atoms]) -> list[tuple[int, float]]:
    print(f"(a) active learning, {config.workflow.max_iterations} iterations ...", flush=True)
    WorkflowManager(config).run()
    database = open_database(config)
    curve = []
    for iteration, fit in finished_fits(config):
        budget = sum(
            database.count(**{keys.STATUS: keys.LABELED, keys.ITERATION: i})
            for i in range(iteration + 1)
        )
        curve.append((budget, force_rmse(fit.potential, holdout)))
    return curve


def random_pool(config: MLIPConfig, iterations: int) -> list[Atoms]:
    pool = []
    for iteration in range(iterations + 2):
        builder = StructureBuilder(config.system, config.exploration.generation, iteration)
        pool.extend(item.atoms for item in builder.build())
    return pool


def random_curve(
    config: MLIPConfig, budgets: list[int], holdout: list[Atoms], iterations: int
) -> list[tuple[int, float]]:
    print("(b) random picks from the same generators ...", flush=True)
    pool = random_pool(config, iterations)
    order = np.random.default_rng(0).permutation(len(pool))
    database = open_database(config)
    curve = []
    for iteration, budget in enumerate(budgets):
        have = database.count(**{keys.STATUS: keys.LABELED})
        new = [pool[i] for i in order[have:budget]]
        database.add_structures(new, keys.SELECTED, iteration, "random")
        label_selected(config)
        fit = train_iteration(config, iteration)
        curve.append(
            (database.count(**{keys.STATUS: keys.LABELED}), force_rmse(fit.potential, holdout))
        )  # noqa: E501
    return curve


def dft_needed(curve: list[tuple[int, float]], target: float) -> float | None:
    """DFT calculations at which the curve first reaches `target` (linear interpolation)."""
    for (n0, r0), (n1, r1) in zip(curve, curve[1:], strict=False):
        if r1 <= target < r0:
            return n0 + (n1 - n0) * (r0 - target) / (r0 - r1)
    if curve and curve[0][1] <= target:
        return float(curve[0][0])
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--holdout", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        active = campaign(root, "active", args.iterations)
        random = campaign(root, "random", args.iterations)
        holdout_config = campaign(root, "holdout", 1)
        print(
            f"held-out set: {args.holdout} CHGNet-MD snapshots, labeled with pw.x ...", flush=True
        )
        holdout = label_structures(holdout_config, md_snapshots(args.holdout), "holdout")
        al = active_learning_curve(active, holdout)
        rnd = random_curve(random, [n for n, _ in al], holdout, args.iterations)
    print(f"\nheld-out: {len(holdout)} labeled MD snapshots (300-1500 K)")
    print(f"{'DFT calcs':>10} {'AL F RMSE':>11} {'random F RMSE':>14}   (meV/Å, held-out)")
    for (n, a), (m, r) in zip(al, rnd, strict=True):
        print(f"{n:>10} {a:>11.1f} {r:>14.1f}" + ("" if n == m else f"  (random had {m})"))
    target = al[-1][1]
    needed = dft_needed(rnd, target)
    if needed is None:
        print(f"random picks did not reach the loop's final {target:.1f} meV/Å within "
              f"{rnd[-1][0]} DFT calculations: ratio > {rnd[-1][0] / al[-1][0]:.2f}")  # fmt: skip
    else:
        print(f"DFT calculations to reach {target:.1f} meV/Å: AL {al[-1][0]}, random {needed:.1f}; "
              f"ratio random/AL = {needed / al[-1][0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
