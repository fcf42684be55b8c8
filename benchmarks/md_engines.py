"""MD engine speed: LAMMPS (pair_style pace/extrapolation) vs ASE + pyace, side by side.

Both engines run the project's own MD (`run_md_task`) on the same potential, active set, start
cell and settings: NVT at 300 K, 1 fs, gamma every N steps, thresholds set so that nothing is
dumped and nothing halts. Diamond Si cells of 8, 64 and 512 atoms. Printed per cell: wall time
and steps/s of each engine (LAMMPS's wall includes starting the program and reading the
potential; its "loop" column is LAMMPS's own timing of the MD loop), and the speed-up.

    .venv/bin/python benchmarks/md_engines.py POTENTIAL_DIR [--lmp lmp] [--every 10]

POTENTIAL_DIR: a pacemaker fit folder with output_potential.yaml/.yace/.asi, e.g. a campaign's
work/potentials/iter_001. --lmp: a LAMMPS with ML-PACE (default: `lmp` on PATH).
Not a test: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ase.build import bulk

from mlip_autopipec.config import load_config
from mlip_autopipec.inference.engines import MDEngineSpec, run_md_task
from mlip_autopipec.inference.lammps_profile import LammpsProfile
from mlip_autopipec.inference.md_types import MDResult, MDRunSpec, PotentialFiles

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "si" / "config.yaml"
SIZES = {8: (1, 1, 1), 64: (2, 2, 2), 512: (4, 4, 4)}
STEPS = {8: 2000, 64: 1000, 512: 200}
_LOOP = re.compile(r"Loop time of ([0-9.eE+-]+) on \d+ procs for (\d+) steps")


@dataclass(frozen=True)
class Timing:
    wall: float
    steps: int
    loop: float | None = None

    @property
    def rate(self) -> float:
        return self.steps / self.wall

    @property
    def loop_rate(self) -> float | None:
        return None if not self.loop else self.steps / self.loop


def spec(n_atoms: int, every: int) -> MDRunSpec:
    return MDRunSpec(
        run_id=f"si{n_atoms}",
        temperature=300.0,
        pressure=None,
        steps=STEPS[n_atoms],
        timestep=1.0,
        seed=1,
        gamma_every=every,
        gamma_lower=1e6,
        gamma_upper=1e7,
        max_frames=1,
        timeout=3600.0,
    )


def timed(
    engine: MDEngineSpec, n_atoms: int, every: int, potential: PotentialFiles, root: Path
) -> Timing:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat(SIZES[n_atoms])
    run_spec = spec(n_atoms, every)
    start = time.perf_counter()
    result: MDResult = run_md_task(atoms, run_spec, engine, potential, root / engine.name)
    wall = time.perf_counter() - start
    if result.error or result.halted or result.steps_done != run_spec.steps:
        raise SystemExit(f"{engine.name} {n_atoms} atoms did not run through: {result}")
    log = root / engine.name / run_spec.run_id / "log.lammps"
    found = _LOOP.search(log.read_text()) if log.is_file() else None
    return Timing(wall, run_spec.steps, float(found.group(1)) if found else None)


def example_phase(engine: MDEngineSpec, potential: PotentialFiles, root: Path) -> str:
    """Wall time of the example's MD runs with `engine`, and how they ended."""
    inference = load_config(EXAMPLE).inference
    start = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 1, 1))
    began = time.perf_counter()
    ends = []
    for index, temperature in enumerate(inference.temperatures):
        spec = MDRunSpec.from_config(inference, f"T{temperature:g}", temperature, None, index)
        result = run_md_task(start, spec, engine, potential, root / f"example_{engine.name}")
        end = "halted" if result.halted else "ran"
        error = f" ({result.error})" if result.error else ""
        ends.append(f"{temperature:g} K: {end} at step {result.steps_done}{error}")
    return f"{time.perf_counter() - began:6.2f} s   " + "; ".join(ends)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("potential_dir", type=Path)
    parser.add_argument("--lmp", default="lmp")
    parser.add_argument("--every", type=int, default=10, help="gamma every N steps")
    args = parser.parse_args()
    folder = args.potential_dir
    potential = PotentialFiles(
        yaml=folder / "output_potential.yaml",
        yace=folder / "output_potential.yace",
        active_set=folder / "output_potential.asi",
    )
    lammps = MDEngineSpec("lammps", LammpsProfile.from_command([args.lmp]))
    ase = MDEngineSpec("ase")
    print(f"LAMMPS: {lammps.lammps.describe() if lammps.lammps else ''}; gamma every {args.every}")
    header = (
        f"{'atoms':>5} {'steps':>5} | {'LAMMPS s':>8} {'steps/s':>8} {'loop st/s':>9} | "
        f"{'ASE s':>7} {'steps/s':>8} | {'speed-up':>8} {'(loop)':>7}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as scratch:
        for n_atoms in SIZES:
            fast = timed(lammps, n_atoms, args.every, potential, Path(scratch))
            slow = timed(ase, n_atoms, args.every, potential, Path(scratch))
            loop_rate = fast.loop_rate or float("nan")
            print(
                f"{n_atoms:>5} {fast.steps:>5} | {fast.wall:>8.2f} {fast.rate:>8.0f} "
                f"{loop_rate:>9.0f} | {slow.wall:>7.2f} {slow.rate:>8.1f} | "
                f"{fast.rate / slow.rate:>7.1f}x {loop_rate / slow.rate:>6.1f}x"
            )
        print(f"\nexample MD phase ({EXAMPLE.relative_to(EXAMPLE.parents[2])}), runs in sequence:")
        for engine in (lammps, ase):
            print(f"  {engine.name:>6}: {example_phase(engine, potential, Path(scratch))}")


if __name__ == "__main__":
    main()
