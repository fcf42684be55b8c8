"""Regenerate the recorded LAMMPS outputs in tests/data/lammps (a few seconds of real LAMMPS).

    .venv/bin/python tests/data/lammps/record.py LMP POTENTIAL_DIR

LMP: a LAMMPS with ML-PACE (recorded with LAMMPS 4 Feb 2025, serial; `../shared/lammps/bin/lmp`
on the development machine). POTENTIAL_DIR: a pacemaker fit folder with
`output_potential.yaml`, `.yace` and `.asi` (recorded with the integration tests' tiny Si fit:
15 functions, 30 BFGS steps on tests/data/si_labeled.extxyz).

Each case is one run of the project's own LammpsRunner; its folder keeps what LAMMPS read and
wrote (`in.lammps`, `log.lammps`, its stderr `lammps.err`, the two dumps), without the potential
files:
- hot_npt_triclinic: 16-atom primitive-cell Si supercell (triclinic), 4000 K, NPT at 1000 bar,
  gamma every 5 steps, lower 1.5, upper 4.0: frames dumped, then a soft `fix halt`.
- cold_nvt: 16-atom cubic cell, 50 K NVT, 203 steps (not a multiple of gamma_every=5, so the
  log ends with a thermo row that is not a gamma check), nothing dumped, no halt.
- bad_conversion: `pair_style pace/extrapolation` given the .yace instead of the B-basis .yaml.
Also `lmp_help.txt`: what `lmp -h` prints.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from ase.build import bulk

from mlip_autopipec.inference.lammps import LammpsRunner
from mlip_autopipec.inference.lammps_profile import LammpsProfile
from mlip_autopipec.inference.md_types import MDRunSpec, PotentialFiles

HERE = Path(__file__).resolve().parent
KEEP = (
    "in.lammps",
    "log.lammps",
    "lammps.err",
    "extrapolative_structures.dump",
    "trusted_checks.dump",
)


def spec(run_id: str, temperature: float, pressure: float | None, steps: int) -> MDRunSpec:
    return MDRunSpec(
        run_id=run_id,
        temperature=temperature,
        pressure=pressure,
        steps=steps,
        timestep=1.0,
        seed=3,
        gamma_every=5,
        gamma_lower=1.5,
        gamma_upper=4.0,
        max_frames=50,
        timeout=120.0,
    )


def record(runner: LammpsRunner, potential: PotentialFiles, name: str, **kwargs: object) -> None:
    atoms = kwargs.pop("atoms")
    scratch = HERE / f"_{name}"
    shutil.rmtree(scratch, ignore_errors=True)
    result = runner.run(atoms, potential, spec(name, **kwargs), scratch)  # type: ignore[arg-type]
    print(name, result.steps_done, result.halted, len(result.frames), result.error)
    target = HERE / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for file in KEEP:
        if (scratch / file).is_file():
            shutil.copy(scratch / file, target / file)
    shutil.rmtree(scratch)


def main(lmp: str, folder: Path) -> None:
    profile = LammpsProfile.from_command([lmp])
    help_text = subprocess.run([lmp, "-h"], capture_output=True, text=True, check=True).stdout
    (HERE / "lmp_help.txt").write_text(help_text)
    runner = LammpsRunner(profile)
    potential = PotentialFiles(
        yaml=folder / "output_potential.yaml",
        yace=folder / "output_potential.yace",
        active_set=folder / "output_potential.asi",
    )
    triclinic = bulk("Si", "diamond", a=5.43).repeat((2, 2, 2))
    cubic = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 1, 1))
    record(runner, potential, "hot_npt_triclinic", atoms=triclinic, temperature=4000.0,
           pressure=1000.0, steps=300)  # fmt: skip
    record(runner, potential, "cold_nvt", atoms=cubic, temperature=50.0, pressure=None, steps=203)
    wrong = PotentialFiles(
        yaml=potential.yace, yace=potential.yace, active_set=potential.active_set
    )
    record(runner, wrong, "bad_conversion", atoms=cubic, temperature=300.0, pressure=None, steps=10)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
