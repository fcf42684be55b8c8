"""Does active learning beat random picking? Learning curves side by side, in one run.

With the bundled example's DFT and training settings (examples/si/config.yaml), real pw.x,
pacemaker and CHGNet:

  held-out set   made here, independent of the generators: CHGNet Langevin MD snapshots of
                 bulk Si from 300 K to well above melting, vacancy cells at temperature and
                 hot surface slabs of two orientations, labeled with pw.x (>= 30 frames);
  (a) maxvol     the loop (`WorkflowManager`) with selection.method maxvol;
  (b) fps        the same loop with selection.method fps (iteration 0 is shared with (a)
                 when both start with FPS: it is run once and copied);
  (c) random     the loop's physics anchors (they are labeled whatever selection picks; their
                 labels are copied from (a)) plus random picks from the same generators
                 (filters and surrogate pre-screen included): one pool is labeled once and
                 subsampled for every seed. Budgets are the loop's DFT calls, anchors
                 included, and each is trained the way the loop trains (same split rule,
                 up-fit from the previous budget's potential).
  delivered      what the user gets: the final fit (training.final_maxiter steps from scratch
                 on every label) of each loop and of each random seed at the loop's last budget.
  iteration 0    the first potential from `initial_method` fps (the loops' iteration 0),
                 kmedoids (one extra campaign) and random (the seeds' first budget).

Prints held-out force RMSE against DFT calls and DFT CPU-seconds for each arm, also over
the frames within the campaign's MD temperatures (the domain it was asked to explore), the
ratio "DFT calls random needs to reach the loop's final error / the loop's DFT calls" and the
delivered potentials side by side.

    .venv/bin/python benchmarks/active_learning.py [--work DIR] [--batch 12] [--iterations 4]
        [--methods maxvol fps] [--no-kmedoids]

Every stage keeps its results in --work (default /tmp/mlip-autopipe-al-benchmark) and a rerun
reuses them, so an interrupted benchmark continues where it stopped. About an hour on 2 cores.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import functools
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
import yaml
from ase import Atoms, units
from ase.build import bulk
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, thermalize_momenta

from mlip_autopipec.config import MLIPConfig, load_config
from mlip_autopipec.core import keys
from mlip_autopipec.core.cells import as_computed
from mlip_autopipec.generation.anchors import is_anchor
from mlip_autopipec.generation.transforms import slab
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.exploration import run_exploration
from mlip_autopipec.orchestration.labeling import label_selected
from mlip_autopipec.orchestration.training import (
    candidates,
    finished_fits,
    train_final,
    train_iteration,
)
from mlip_autopipec.orchestration.workflow import WorkflowManager
from mlip_autopipec.surrogate.base import set_torch_threads
from mlip_autopipec.training.pacemaker import TrainingResult

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "si" / "config.yaml"
HOLDOUT_FILE = "holdout.extxyz"
POOL_FILE = "random_pool.extxyz"


# --- configs -------------------------------------------------------------------------------


def write_config(root: Path, name: str, **changes: Any) -> MLIPConfig:
    """The example config with its work_dir under `root/name` and dotted keys changed."""
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    data["workflow"]["work_dir"] = str(root / name)
    data["workflow"]["target_force_rmse"] = 1e-6  # never stop early: compare whole curves
    data["workflow"]["max_extrapolative_fraction"] = 0.0
    if "validation" in MLIPConfig.model_fields:  # the physical validation is not compared here
        data.setdefault("validation", {})["enabled"] = False
    for dotted, value in changes.items():
        section = data
        *parents, leaf = dotted.split(".")
        for parent in parents:
            section = section.setdefault(parent, {})
        section[leaf] = value
    data["dft"]["pseudo_dir"] = str((EXAMPLE.parent / data["dft"]["pseudo_dir"]).resolve())
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path)


# --- held-out set --------------------------------------------------------------------------


def md_snapshots(
    start: Atoms, temperature: float, count: int, seed: int, steps: int = 60
) -> list[Atoms]:
    """`count` CHGNet Langevin MD snapshots of `start`, `steps` 2 fs steps apart."""
    from chgnet.model.dynamics import CHGNetCalculator

    # one thread: two spin-wait for each other when a fit or pw.x holds the other core (the
    # hold-out's 2000 steps took 45 min beside the Si-Ge example's final phase)
    set_torch_threads(1)
    atoms = start.copy()
    atoms.calc = CHGNetCalculator(use_device="cpu")
    rng = np.random.default_rng(seed)
    thermalize_momenta(atoms, temperature, rng=rng)
    Stationary(atoms)
    dynamics = Langevin(atoms, 2 * units.fs, temperature_K=temperature,
                        friction=0.02 / units.fs, fixcm=False, rng=rng)  # fmt: skip
    snapshots = []
    for _ in range(count):
        dynamics.run(steps)
        snapshot = atoms.copy()
        snapshot.calc = None
        snapshots.append(snapshot)
    return snapshots


def holdout_structures() -> list[tuple[str, Atoms]]:
    """32 frames: bulk 300-3000 K (liquid above ~1700 K), vacancies, two slab orientations."""
    conventional = bulk("Si", "diamond", a=5.43, cubic=True)
    primitive = bulk("Si", "diamond", a=5.43)
    vacancy = conventional.copy()
    del vacancy[3]
    vacancy16 = conventional.repeat((2, 1, 1))
    del vacancy16[5]
    plans: list[tuple[str, Atoms, list[float], int]] = [
        ("bulk", conventional, [300, 900, 1500], 2),
        ("liquid", conventional, [2200, 3000], 2),
        ("bulk", conventional.repeat((2, 1, 1)), [600, 1200], 2),
        ("liquid", conventional.repeat((2, 1, 1)), [2500], 2),
        ("vacancy", vacancy, [600, 1200, 1800], 2),
        ("vacancy", vacancy16, [900], 2),
        ("surface", slab(primitive, (1, 0, 0), 4, 6.0), [300, 1200], 2),
        ("surface", slab(primitive, (1, 1, 0), 4, 6.0), [600, 1500], 2),
    ]
    frames = []
    for index, (kind, start, temperatures, count) in enumerate(plans):
        for number, temperature in enumerate(temperatures):
            for atoms in md_snapshots(start, temperature, count, seed=100 * index + number):
                frames.append((f"{kind}:{temperature:g}K", atoms))
    return frames


def label_into(config: MLIPConfig, structures: list[Atoms], origins: list[str]) -> list[Atoms]:
    campaign = Campaign.open(config)
    campaign.database.add_structures(structures, keys.SELECTED, 0, origins)
    label_selected(campaign)
    return labeled_atoms(campaign)


def labeled_atoms(campaign: Campaign, **filters: Any) -> list[Atoms]:
    rows = campaign.database.select(**{keys.STATUS: keys.LABELED, **filters})
    result = []
    for row in rows:
        atoms = row.atoms
        atoms.info.update(
            origin=row.origin, dft_seconds=row.key_value_pairs.get(keys.DFT_WALL_TIME, 0.0)
        )
        result.append(atoms)
    return result


def holdout(root: Path) -> list[Atoms]:
    path = root / HOLDOUT_FILE
    if path.is_file():
        return list(ase.io.read(path, index=":"))
    print("held-out set: CHGNet MD snapshots, labeled with pw.x ...", flush=True)
    frames = holdout_structures()
    config = write_config(root, "holdout")
    labeled = label_into(config, [a for _, a in frames], [f"holdout:{k}" for k, _ in frames])
    ase.io.write(path, labeled, format="extxyz")
    return labeled


# --- scoring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    dft_calls: int
    dft_seconds: float
    force_rmse: float  # meV/Å on the held-out set
    in_range_rmse: float  # meV/Å on its frames within the campaign's MD temperatures
    by_kind: dict[str, float]


def frame_kind_and_temperature(reference: Atoms) -> tuple[str, float]:
    """("bulk", 900.0) from the origin "holdout:bulk:900K"."""
    _, kind, temperature = str(reference.info["origin"]).split(":")
    return kind, float(temperature.rstrip("K"))


@functools.cache
def max_md_temperature() -> float:
    return max(load_config(EXAMPLE).inference.temperatures)


def rmse_mev(errors: list[np.ndarray]) -> float:
    return float(np.sqrt(np.mean(np.concatenate(errors) ** 2)) * 1000) if errors else float("nan")


def score(fit: TrainingResult, structures: list[Atoms], calls: int, seconds: float) -> Point:
    from mlip_autopipec.core.quiet_imports import pyace_calculator

    calculator = pyace_calculator(str(fit.potential))
    by_kind: dict[str, list[np.ndarray]] = {}
    in_range: list[np.ndarray] = []
    for reference in structures:
        atoms = as_computed(reference)
        atoms.calc = calculator
        error = (atoms.get_forces() - reference.get_forces()).ravel()
        kind, temperature = frame_kind_and_temperature(reference)
        by_kind.setdefault(kind, []).append(error)
        if temperature <= max_md_temperature():
            in_range.append(error)
    everything = [e for errors in by_kind.values() for e in errors]
    kinds = {kind: rmse_mev(errors) for kind, errors in sorted(by_kind.items())}
    return Point(calls, seconds, rmse_mev(everything), rmse_mev(in_range), kinds)


# --- (a), (b): the loop --------------------------------------------------------------------


def dft_cost(campaign: Campaign, up_to_iteration: int) -> tuple[int, float]:
    """DFT calls (labeled and failed structures) and pw.x seconds spent up to an iteration."""
    calls, seconds = 0, 0.0
    for status in (keys.LABELED, keys.FAILED):
        for row in campaign.database.select(**{keys.STATUS: status}):
            if row.iteration <= up_to_iteration:
                calls += 1
                seconds += float(row.key_value_pairs.get(keys.DFT_WALL_TIME, 0.0))
    return calls, seconds


def loop_curve(config: MLIPConfig, test: list[Atoms]) -> tuple[list[Point], Point | None]:
    """The loop's fits against DFT calls, and its final fit (the delivered potential)."""
    campaign = Campaign.open(config)
    WorkflowManager(campaign).run()
    points = []
    for iteration, fit in finished_fits(campaign):
        points.append(score(fit, test, *dft_cost(campaign, iteration)))
    final = next((c for c in reversed(candidates(campaign)) if c.is_final), None)
    if final is None:
        return points, None
    return points, score(final.fit, test, *dft_cost(campaign, final.last_iteration))


def loop_training(args: argparse.Namespace) -> dict[str, Any]:
    """Settings of the loop's fits, which the random arm's per-budget fits share."""
    if args.loop_functions is None:
        return {}
    return {"training.loop_functions_per_element": args.loop_functions}


def run_loops(
    root: Path, args: argparse.Namespace, test: list[Atoms]
) -> dict[str, tuple[list[Point], Point | None]]:
    common: dict[str, Any] = {
        "exploration.selection.n_select": args.batch,
        "exploration.selection.initial_method": "fps",
    }
    common.update(loop_training(args))
    first = write_config(
        root, "maxvol", **common, **{"workflow.max_iterations": 1, "training.final_maxiter": 0}
    )
    print(
        "(a)+(b) iteration 0, shared by both loops (FPS in CHGNet descriptor space) ...", flush=True
    )
    WorkflowManager(Campaign.open(first)).run()
    if not (root / "fps").exists():  # iteration 0 only: before the maxvol loop goes on
        shutil.copytree(root / "maxvol", root / "fps")
    curves = {}
    for method in args.methods:
        config = write_config(
            root, method, **common,
            **{"exploration.selection.method": method, "workflow.max_iterations": args.iterations},
        )  # fmt: skip
        print(f"({method}) the loop, {args.iterations} iterations ...", flush=True)
        curves[method] = loop_curve(config, test)
    return curves


# --- (c): random picks from the same generators ----------------------------------------------


def random_pool(root: Path, args: argparse.Namespace) -> list[Atoms]:
    """Random draws from the generators of iterations 0, 1, ... after filters and pre-screen."""
    path = root / POOL_FILE
    if path.is_file():
        return list(ase.io.read(path, index=":"))
    per_iteration = args.pool // args.pool_iterations
    config = write_config(root, "pool", **{
        "exploration.selection.method": "random", "exploration.selection.n_select": per_iteration,
    })  # fmt: skip
    campaign = Campaign.open(config)
    for iteration in range(args.pool_iterations):
        print(f"(c) random pool: generators of iteration {iteration} ...", flush=True)
        run_exploration(campaign, iteration)
        label_selected(campaign)
    pool = labeled_atoms(campaign)
    ase.io.write(path, pool, format="extxyz")
    return pool


def loop_anchors(root: Path, method: str) -> list[Atoms]:
    """The physics anchors a loop labeled in iteration 0 (the same for every arm)."""
    campaign = Campaign.open(load_config(root / f"{method}.yaml"))
    return [a for a in labeled_atoms(campaign, iteration=0) if is_anchor(str(a.info["origin"]))]


def random_curve(
    root: Path,
    args: argparse.Namespace,
    pool: list[Atoms],
    anchors: list[Atoms],
    seed: int,
    budgets: list[int],
    test: list[Atoms],
) -> tuple[list[Point], Point]:
    """Anchors plus random picks at each budget (anchors counted), then the final fit."""
    config = write_config(root, f"random_{seed}", **loop_training(args))
    campaign = Campaign.open(config)
    order = np.random.default_rng(seed).permutation(len(pool))
    if not campaign.database.count(**{keys.STATUS: keys.LABELED}):
        origins = [str(a.info["origin"]) for a in anchors]
        campaign.database.add_structures(anchors, keys.LABELED, 0, origins)
    anchor_seconds = sum(float(a.info["dft_seconds"]) for a in anchors)
    points = []
    usable = [b for b in budgets if len(anchors) <= b <= len(anchors) + len(pool)]
    for index, budget in enumerate(usable):
        have = campaign.database.count(**{keys.STATUS: keys.LABELED}) - len(anchors)
        picks = [pool[i] for i in order[have : budget - len(anchors)]]
        if picks:
            campaign.database.add_structures(
                picks, keys.LABELED, index, [str(a.info["origin"]) for a in picks]
            )
        fit = train_iteration(campaign, index)
        used = [pool[i] for i in order[: budget - len(anchors)]]
        seconds = anchor_seconds + sum(float(a.info["dft_seconds"]) for a in used)
        points.append(score(fit, test, budget, seconds))
    final = train_final(campaign)
    assert final is not None, "the example config has a final fit"
    last = points[-1]
    return points, score(final, test, last.dft_calls, last.dft_seconds)


# --- iteration 0 ---------------------------------------------------------------------------


def initial_point(root: Path, args: argparse.Namespace, method: str, test: list[Atoms]) -> Point:
    config = write_config(root, f"initial_{method}", **{
        "exploration.selection.initial_method": method,
        "exploration.selection.n_select": args.batch,
        "workflow.max_iterations": 1,
        "training.final_maxiter": 0,
    })  # fmt: skip
    campaign = Campaign.open(config)
    WorkflowManager(campaign).run()
    (_, fit), *_ = finished_fits(campaign)
    return score(fit, test, *dft_cost(campaign, 0))


# --- report --------------------------------------------------------------------------------


def calls_to_reach(curve: list[Point], target: float) -> float | None:
    """DFT calls at which a curve first reaches `target` (linear interpolation)."""
    if curve and curve[0].force_rmse <= target:
        return float(curve[0].dft_calls)
    for a, b in zip(curve, curve[1:], strict=False):
        if b.force_rmse <= target < a.force_rmse:
            return a.dft_calls + (b.dft_calls - a.dft_calls) * (a.force_rmse - target) / (
                a.force_rmse - b.force_rmse
            )
    return None


def print_curve(name: str, curve: list[Point]) -> None:
    kinds = sorted({k for p in curve for k in p.by_kind})
    in_range = f"<={max_md_temperature():g}K"
    print(f"\n{name}")
    print(
        f"{'DFT calls':>10} {'DFT cpu-s':>10} {'F RMSE':>8} {in_range:>8}  "
        + " ".join(f"{k:>8}" for k in kinds)
    )
    for p in curve:
        cells = " ".join(f"{p.by_kind.get(k, float('nan')):>8.1f}" for k in kinds)
        print(
            f"{p.dft_calls:>10} {p.dft_seconds:>10.0f} {p.force_rmse:>8.1f} "
            f"{p.in_range_rmse:>8.1f}  {cells}"
        )


def print_delivered(loops: dict[str, Point | None], randoms: list[Point]) -> None:
    """The final fits side by side: the potential each arm would hand over."""
    rows = [(f"loop {name}", point) for name, point in loops.items() if point is not None]
    rows += [(f"random seed {seed}", point) for seed, point in enumerate(randoms)]
    print_curve("delivered potentials (final fit on every label)", [p for _, p in rows])
    print("  rows: " + ", ".join(name for name, _ in rows))
    for name, point in loops.items():
        if point is None:
            continue
        for label, value, others in (
            ("all frames", point.force_rmse, [r.force_rmse for r in randoms]),
            (f"<= {max_md_temperature():g} K", point.in_range_rmse,
             [r.in_range_rmse for r in randoms]),
        ):  # fmt: skip
            verdict = "ahead of" if value < min(others) else "NOT ahead of"
            listed = ", ".join(f"{o:.1f}" for o in others)
            print(f"{name} delivered, {label}: {value:.1f} meV/Å, {verdict} random "
                  f"({listed}) at {point.dft_calls} calls")  # fmt: skip


def print_ratio(name: str, loop: list[Point], randoms: list[list[Point]]) -> None:
    final = loop[-1]
    needed = [calls_to_reach(curve, final.force_rmse) for curve in randoms]
    reached = [n for n in needed if n is not None]
    biggest = max(curve[-1].dft_calls for curve in randoms)
    text = ", ".join("not reached" if n is None else f"{n:.0f}" for n in needed)
    print(f"{name}: final {final.force_rmse:.1f} meV/Å after {final.dft_calls} DFT calls; "
          f"random needs {text} (per seed)")  # fmt: skip
    if len(reached) == len(needed):
        print(f"  ratio random/{name} = {np.mean(reached) / final.dft_calls:.2f} "
              f"(seeds {', '.join(f'{n / final.dft_calls:.2f}' for n in reached)})")  # fmt: skip
    else:
        print(f"  ratio random/{name} > {biggest / final.dft_calls:.2f} for the seeds that never "
              f"reached it within {biggest} calls")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/mlip-autopipe-al-benchmark"))
    parser.add_argument("--batch", type=int, default=12, help="DFT calls per loop iteration")
    parser.add_argument("--iterations", type=int, default=4, help="loop iterations (0..n-1)")
    parser.add_argument("--pool", type=int, default=72, help="random pool size")
    parser.add_argument("--pool-iterations", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--stage", choices=["holdout", "pool", "all"], default="all")
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=["maxvol", "fps"],
        default=["maxvol", "fps"],
        help="selection methods of the loop arms",
    )
    parser.add_argument("--loop-functions", type=int, default=None,
                        help="training.loop_functions_per_element of the loop arms")  # fmt: skip
    parser.add_argument("--no-kmedoids", action="store_true",
                        help="skip the extra iteration-0 campaign with kmedoids")  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    root = args.work.resolve()
    root.mkdir(parents=True, exist_ok=True)
    test = holdout(root)
    if args.stage == "holdout":
        return
    pool = random_pool(root, args)
    if args.stage == "pool":
        return
    loops = run_loops(root, args, test)
    anchors = loop_anchors(root, args.methods[0])
    loop_calls = {p.dft_calls for curve, _ in loops.values() for p in curve}
    budgets = sorted(loop_calls | {len(anchors) + len(pool)})
    last_calls = max(curve[-1].dft_calls for curve, _ in loops.values())
    randoms = [
        random_curve(root, args, pool, anchors, seed, [b for b in budgets if b <= last_calls], test)
        for seed in range(args.seeds)
    ]
    kmedoids = None if args.no_kmedoids else initial_point(root, args, "kmedoids", test)

    kinds = {str(a.info["origin"]).split(":")[1] for a in test}
    print(f"\nheld-out: {len(test)} pw.x-labeled frames ({', '.join(sorted(kinds))}); "
          "force RMSE per component in meV/Å")  # fmt: skip
    for name, (curve, _) in loops.items():
        print_curve(f"({'a' if name == 'maxvol' else 'b'}) loop, selection {name}", curve)
    for seed, (curve, _) in enumerate(randoms):
        print_curve(f"(c) anchors + random picks, seed {seed}", curve)
    first = next(iter(loops.values()))[0][0]
    print(f"\niteration 0, first potential from {len(anchors)} anchors + {args.batch} picks:")
    firsts = ", ".join(f"{curve[0].force_rmse:.1f}" for curve, _ in randoms)
    print(f"  fps {first.force_rmse:.1f}"
          + (f", kmedoids {kmedoids.force_rmse:.1f}" if kmedoids else "")
          + f", random {firsts} meV/Å")  # fmt: skip
    print()
    for name, (curve, _) in loops.items():
        print_ratio(name, curve, [c for c, _ in randoms])
    print_delivered({name: final for name, (_, final) in loops.items()}, [f for _, f in randoms])


if __name__ == "__main__":
    main()
