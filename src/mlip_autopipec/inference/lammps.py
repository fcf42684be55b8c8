"""LammpsRunner: MD with `pair_style pace/extrapolation` (needs a LAMMPS built with ML-PACE).

The input follows pacemaker's documented recipe: gamma every N steps through `fix pair`,
a dump only when max gamma reaches the lower threshold, `fix halt` above the upper one.
Every value written into the input is a number we format or a validated token, so no
configuration value can smuggle in a LAMMPS command (LAMMPS has `shell`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers, chemical_symbols

from mlip_autopipec.core.process import resolve_executable, run_process
from mlip_autopipec.inference.md import MDResult, MDRunSpec, PotentialFiles

INPUT_NAME = "in.lammps"
DATA_NAME = "structure.data"
DUMP_NAME = "extrapolative_structures.dump"
LOG_NAME = "log.lammps"
_TOKEN = re.compile(r"^[A-Za-z0-9_.+-]+$")
_HALT = re.compile(r"Fix halt condition .* met on step (\d+)")


class LammpsError(RuntimeError):
    """LAMMPS is missing, lacks ML-PACE, or a value is unsafe to write into its input."""


def safe_token(value: str, what: str) -> str:
    if not _TOKEN.match(value) or value.lower() == "shell":
        raise LammpsError(f"{what} {value!r} is not a plain token; refusing to write it")
    return value


def _number(value: float, what: str) -> str:
    if not np.isfinite(value):
        raise LammpsError(f"{what} must be a finite number, got {value!r}")
    return f"{float(value):.10g}"


def write_lammps_input(spec: MDRunSpec, elements: list[str]) -> str:
    """The LAMMPS input for one run; `elements` in LAMMPS type order."""
    for symbol in elements:
        if symbol not in chemical_symbols[1:]:
            raise LammpsError(f"element {symbol!r} is not a chemical symbol")
    species = " ".join(safe_token(symbol, "element") for symbol in elements)
    masses = "\n".join(
        f"mass {index} {_number(atomic_masses[atomic_numbers[symbol]], 'mass')}"
        for index, symbol in enumerate(elements, start=1)
    )
    temperature = _number(spec.temperature, "temperature")
    damping = _number(100 * spec.timestep / 1000, "damping")
    if spec.pressure is None:
        ensemble = f"fix md all nvt temp {temperature} {temperature} {damping}"
    else:
        pressure = _number(spec.pressure, "pressure")
        ensemble = (
            f"fix md all npt temp {temperature} {temperature} {damping} "
            f"iso {pressure} {pressure} {_number(10 * float(damping), 'damping')}"
        )
    every = int(spec.gamma_every)
    return f"""\
units metal
atom_style atomic
boundary p p p
read_data {DATA_NAME}
{masses}
pair_style pace/extrapolation
pair_coeff * * potential.yace potential.asi {species}
timestep {_number(spec.timestep / 1000, "timestep")}
velocity all create {temperature} {int(spec.seed) % 900000 + 1} mom yes rot yes dist gaussian
{ensemble}
fix pace_gamma all pair {every} pace/extrapolation gamma 1
compute max_pace_gamma all reduce max f_pace_gamma
variable dump_skip equal "c_max_pace_gamma < {_number(spec.gamma_lower, "gamma_lower")}"
dump pace_dump all custom {every} {DUMP_NAME} id type x y z f_pace_gamma
dump_modify pace_dump skip v_dump_skip
variable max_pace_gamma equal c_max_pace_gamma
fix extreme_extrapolation all halt {every} v_max_pace_gamma > \
{_number(spec.gamma_upper, "gamma_upper")}
thermo_style custom step temp pe etotal press c_max_pace_gamma
thermo {every}
run {int(spec.steps)}
"""


def lammps_has_ml_pace(lmp: str) -> bool:
    """`lmp -h` lists installed packages; ML-PACE must be among them."""
    try:
        help_text = subprocess.run(  # noqa: S603 - resolved path, argument list
            [lmp, "-h"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "ML-PACE" in help_text


def parse_log(text: str) -> tuple[int, bool, list[float]]:
    """(last step, halted by fix halt, max gamma per thermo line) from a LAMMPS log."""
    steps: list[int] = []
    gammas: list[float] = []
    in_thermo = False
    for line in text.splitlines():
        fields = line.split()
        if fields[:1] == ["Step"] and "c_max_pace_gamma" in fields:
            column = fields.index("c_max_pace_gamma")
            in_thermo = True
            continue
        if in_thermo:
            if fields and fields[0].isdigit() and len(fields) > column:
                steps.append(int(fields[0]))
                gammas.append(float(fields[column]))
            else:
                in_thermo = False
    halted = _HALT.search(text)
    last = int(halted.group(1)) if halted else (steps[-1] if steps else 0)
    return last, bool(halted), gammas


def parse_dump(path: Path, elements: list[str], run_id: str) -> list[Atoms]:
    """Frames of the gamma-triggered dump, with per-atom gamma in arrays['gamma']."""
    if not path.exists() or path.stat().st_size == 0:
        return []
    frames = ase.io.read(path, format="lammps-dump-text", index=":", specorder=elements)
    text_steps = [int(s) for s in re.findall(r"ITEM: TIMESTEP\s+(\d+)", path.read_text())]
    result = []
    for frame, step in zip(frames, text_steps, strict=True):
        gamma = _gamma_column(frame)
        frame.calc = None
        frame.arrays["gamma"] = gamma
        frame.info.update(step=step, max_gamma=float(gamma.max()), run_id=run_id)
        result.append(frame)
    return result


def _gamma_column(frame: Atoms) -> np.ndarray:
    for key in ("f_pace_gamma", "f_pace_gamma[1]"):
        if key in frame.arrays:
            return np.asarray(frame.arrays.pop(key), dtype=float).reshape(-1)
    raise LammpsError("the dump has no f_pace_gamma column")


class LammpsRunner:
    """MD with LAMMPS `pair_style pace/extrapolation`: writes inputs, runs `lmp`, parses output."""

    def __init__(self, command: tuple[str, ...]) -> None:
        self.lmp = resolve_executable(command[0])
        self.extra_args = list(command[1:])
        if not lammps_has_ml_pace(self.lmp):
            raise LammpsError(
                f"{self.lmp} has no ML-PACE package, so pair_style pace/extrapolation is "
                "unavailable; use a LAMMPS built with ML-PACE (e.g. conda-forge lammps) or "
                "inference.engine: ase"
            )

    def run(
        self, atoms: Atoms, potential: PotentialFiles, spec: MDRunSpec, run_dir: Path
    ) -> MDResult:
        elements = sorted(set(atoms.get_chemical_symbols()), key=lambda s: atomic_numbers[s])
        self._prepare(atoms, potential, spec, run_dir, elements)
        argv = [self.lmp, *self.extra_args, "-in", INPUT_NAME, "-log", LOG_NAME]
        returncode, _ = run_process(argv, run_dir, spec.timeout, "lammps.out", "lammps.err")
        result = MDResult(run_id=spec.run_id, temperature=spec.temperature)
        log = run_dir / LOG_NAME
        result.steps_done, result.halted, result.max_gamma_per_check = parse_log(
            log.read_text() if log.exists() else ""
        )
        result.frames = parse_dump(run_dir / DUMP_NAME, elements, spec.run_id)[: spec.max_frames]
        if returncode != 0 and not result.halted:
            result.error = f"lmp exited with {returncode}; see {run_dir / 'lammps.err'}"
        return result

    @staticmethod
    def _prepare(
        atoms: Atoms, potential: PotentialFiles, spec: MDRunSpec, run_dir: Path, elements: list[str]
    ) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(potential.yace, run_dir / "potential.yace")
        shutil.copy(potential.active_set, run_dir / "potential.asi")
        ase.io.write(run_dir / DATA_NAME, atoms, format="lammps-data", specorder=elements)
        (run_dir / INPUT_NAME).write_text(write_lammps_input(spec, elements))


def run_lammps_md(
    atoms: Atoms, potential: PotentialFiles, spec: MDRunSpec, run_dir: Path
) -> MDResult:
    return LammpsRunner(spec.lammps_command).run(atoms, potential, spec, run_dir)
