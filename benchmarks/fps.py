"""Farthest point sampling speed and agreement against fpsample, and CHGNet throughput.

Prints figures measured side by side in one run (not a test):

    .venv/bin/python benchmarks/fps.py [--points 100000 --dim 64 --picks 1000]

Both FPS implementations get the same standardized float32 data and the same start index.
Where the pick sequences differ, the first difference is checked in float64 to say which
side took the truly farthest point (a near tie that float32 rounding decides).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from mlip_autopipec.surrogate import FarthestPointSampling, standardize


def best_time(function: Callable[[], np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    times, result = [], np.empty(0)
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def first_difference(ours: np.ndarray, theirs: np.ndarray) -> int | None:
    different = np.flatnonzero(ours != theirs)
    return int(different[0]) if len(different) else None


def min_distance_to(points: np.ndarray, picked: np.ndarray, index: int) -> float:
    differences = points[picked].astype(np.float64) - points[index].astype(np.float64)
    return float(np.sqrt(np.einsum("ij,ij->i", differences, differences).min()))


def explain_difference(points: np.ndarray, ours: np.ndarray, theirs: np.ndarray, at: int) -> str:
    earlier = ours[:at]
    mine = min_distance_to(points, earlier, int(ours[at]))
    other = min_distance_to(points, earlier, int(theirs[at]))
    winner = "ours" if mine >= other else "fpsample's"
    return (
        f"first differs at pick {at}: ours {ours[at]} (min distance {mine:.7f}) vs fpsample "
        f"{theirs[at]} ({other:.7f}); relative gap {abs(mine - other) / max(mine, other):.1e}, "
        f"{winner} is the farther point in float64"
    )


def benchmark_fps(n_points: int, dim: int, n_picks: int, repeats: int, seed: int) -> None:
    import fpsample

    raw = np.random.default_rng(seed).normal(size=(n_points, dim))
    points64, _ = standardize(raw)
    points = np.ascontiguousarray(points64, dtype=np.float32)
    ours32 = FarthestPointSampling(n_picks, standardize=False, dtype=np.float32)
    ours64 = FarthestPointSampling(n_picks, standardize=False, dtype=np.float64)
    time32, picks32 = best_time(lambda: ours32.select(points, start_index=0).indices, repeats)
    time64, picks64 = best_time(lambda: ours64.select(points64, start_index=0).indices, repeats)
    reference_time, reference = best_time(
        lambda: np.asarray(fpsample.fps_sampling(points, n_picks, start_idx=0), dtype=np.int64),
        repeats,
    )
    print(f"FPS: {n_points} x {dim} standardized descriptors -> {n_picks} picks, start index 0")
    print(f"  fpsample.fps_sampling, float32: {reference_time:8.3f} s")
    for name, seconds in (("float32", time32), ("float64", time64)):
        ratio = seconds / reference_time
        print(f"  ours, {name}:{'':18}{seconds:8.3f} s   ratio ours/fpsample {ratio:.3f}")
    for name, picks in (("float32", picks32), ("float64", picks64)):
        at = first_difference(picks, reference)
        if at is None:
            print(f"  picks, ours {name} vs fpsample: identical ({len(picks)} of {len(picks)})")
        else:
            print(f"  picks, ours {name} vs fpsample: identical up to pick {at} of {len(picks)}")
            print(f"    {explain_difference(points64, picks, reference, at)}")


def benchmark_chgnet(n_structures: int, threads: int, batch_size: int) -> None:
    from ase.build import bulk

    from mlip_autopipec.config import SurrogateConfig
    from mlip_autopipec.surrogate import create_surrogate

    config = SurrogateConfig(torch_threads=threads, batch_size=batch_size)
    surrogate = create_surrogate(config, ["Si"])
    rng = np.random.default_rng(0)
    structures = []
    for _ in range(n_structures):
        atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
        atoms.positions += rng.normal(0, 0.05, size=atoms.positions.shape)
        structures.append(atoms)
    surrogate.predict(structures[:batch_size])  # warm-up
    start = time.perf_counter()
    surrogate.predict(structures)
    elapsed = time.perf_counter() - start
    print(
        f"CHGNet: {n_structures} x 64-atom Si, energy+forces+descriptor, batch {batch_size}, "
        f"{threads} torch threads: {n_structures / elapsed:.2f} structures/s "
        f"({elapsed / n_structures:.3f} s each)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--picks", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chgnet-structures", type=int, default=32)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip-chgnet", action="store_true")
    args = parser.parse_args()
    benchmark_fps(args.points, args.dim, args.picks, args.repeats, args.seed)
    if not args.skip_chgnet:
        for threads in args.threads:
            benchmark_chgnet(args.chgnet_structures, threads, args.batch_size)


if __name__ == "__main__":
    main()
