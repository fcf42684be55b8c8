"""MD in LAMMPS with `pair_style pace/extrapolation`: what to compute, and how to read the result.

The input follows pacemaker's recipe: per-atom gamma every N steps through `fix pair`, a dump
only when max gamma reaches the lower threshold, `fix halt` (soft, so the halting frame is
still logged and dumped) at the upper one. A second dump keeps every checked frame below the
upper threshold; its last one is the run's last trusted frame, where a restart begins.
`pace/extrapolation` needs the B-basis `.yaml` with the active set `.asi` (given the `.yace`
it stops with "bad conversion").
Every value written into the input is a number we format or a validated token, so no
configuration value can smuggle in a LAMMPS command (LAMMPS has `shell`).
How LAMMPS is launched (executable, extra arguments, the ML-PACE check) is `LammpsProfile`.
"""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.lammps.coordinatetransform import Prism
from ase.data import atomic_masses, atomic_numbers, chemical_symbols
from ase.io.lammpsrun import read_lammps_dump_text

from mlip_autopipec.core.files import fresh_folder
from mlip_autopipec.core.process import run_process
from mlip_autopipec.inference.lammps_profile import LammpsError, LammpsProfile
from mlip_autopipec.inference.md_types import MDResult, MDRunner, MDRunSpec, PotentialFiles

__all__ = ["LammpsError", "LammpsProfile", "LammpsRunner", "make_runner", "write_lammps_input"]

INPUT_NAME = "in.lammps"
DATA_NAME = "structure.data"
DUMP_NAME = "extrapolative_structures.dump"
CHECKS_NAME = "trusted_checks.dump"
LOG_NAME = "log.lammps"
OUT_NAME = "lammps.out"
ERR_NAME = "lammps.err"
POTENTIAL_NAME = "potential.yaml"
ACTIVE_SET_NAME = "potential.asi"
GRADER_NAME = "grader.yaml"
GRADER_ACTIVE_SET_NAME = "grader.asi"
GAMMA_COLUMN = "c_max_pace_gamma"
_TOKEN = re.compile(r"^[A-Za-z0-9_.+-]+$")
_HALT = re.compile(r"Fix halt condition for fix-id \S+ met on step (\d+)")
_ERROR = re.compile(r"^(ERROR.*|.*Exception:.*)$", re.MULTILINE)


def safe_token(value: str, what: str) -> str:
    if not _TOKEN.match(value) or value.lower() == "shell":
        raise LammpsError(f"{what} {value!r} is not a plain token; refusing to write it")
    return value


def _number(value: float, what: str) -> str:
    if not np.isfinite(value):
        raise LammpsError(f"{what} must be a finite number, got {value!r}")
    return f"{float(value):.10g}"


def lammps_elements(atoms: Atoms) -> list[str]:
    """The species of `atoms` in LAMMPS type order (by atomic number)."""
    return sorted(set(atoms.get_chemical_symbols()), key=lambda symbol: atomic_numbers[symbol])


def setup_commands(elements: list[str], graded_apart: bool = False) -> list[str]:
    """System, masses and the ACE potential with its active set; `elements` in type order.
    `graded_apart`: forces from the potential, gamma from the grader (`GRADER_NAME`), which
    `hybrid/scaled` weighs by 0 so that it adds nothing to energies or forces."""
    for symbol in elements:
        if symbol not in chemical_symbols[1:]:
            raise LammpsError(f"element {symbol!r} is not a chemical symbol")
    species = " ".join(safe_token(symbol, "element") for symbol in elements)
    masses = [
        f"mass {index} {_number(atomic_masses[atomic_numbers[symbol]], 'mass')}"
        for index, symbol in enumerate(elements, start=1)
    ]
    return [
        "units metal",
        "atom_style atomic",
        "boundary p p p",
        f"read_data {DATA_NAME}",
        *masses,
        *(_graded_apart(species) if graded_apart else _graded_by_itself(species)),
    ]


def _graded_by_itself(species: str) -> list[str]:
    return [
        "pair_style pace/extrapolation",
        f"pair_coeff * * {POTENTIAL_NAME} {ACTIVE_SET_NAME} {species}",
    ]


def _graded_apart(species: str) -> list[str]:
    return [
        "pair_style hybrid/scaled 1.0 pace 0.0 pace/extrapolation",
        f"pair_coeff * * pace {POTENTIAL_NAME} {species}",
        f"pair_coeff * * pace/extrapolation {GRADER_NAME} {GRADER_ACTIVE_SET_NAME} {species}",
    ]


def _ensemble(spec: MDRunSpec) -> str:
    """Nose-Hoover NVT, or NPT with isotropic coupling when a pressure (bar) is given."""
    temperature = _number(spec.temperature, "temperature")
    damping = spec.timestep / 1000  # ps per step
    thermostat = f"temp {temperature} {temperature} {_number(100 * damping, 'damping')}"
    if spec.pressure is None:
        return f"fix md all nvt {thermostat}"
    pressure = _number(spec.pressure, "pressure")
    barostat = f"iso {pressure} {pressure} {_number(1000 * damping, 'damping')}"
    return f"fix md all npt {thermostat} {barostat}"


def md_commands(spec: MDRunSpec) -> list[str]:
    every = int(spec.gamma_every)
    temperature = _number(spec.temperature, "temperature")
    lower = _number(spec.gamma_lower, "gamma_lower")
    upper = _number(spec.gamma_upper, "gamma_upper")
    return [
        f"timestep {_number(spec.timestep / 1000, 'timestep')}",
        f"velocity all create {temperature} {int(spec.seed) % 900000 + 1} "
        "mom yes rot no dist gaussian",
        _ensemble(spec),
        f"fix pace_gamma all pair {every} pace/extrapolation gamma 1",
        "compute max_pace_gamma all reduce max f_pace_gamma",
        f'variable dump_skip equal "c_max_pace_gamma < {lower}"',
        f"dump pace_dump all custom {every} {DUMP_NAME} id type x y z f_pace_gamma",
        "dump_modify pace_dump skip v_dump_skip format float %20.15g",
        f'variable checks_skip equal "c_max_pace_gamma >= {upper}"',
        f"dump pace_checks all custom {every} {CHECKS_NAME} id type x y z f_pace_gamma",
        "dump_modify pace_checks skip v_checks_skip format float %20.15g",
        "variable max_pace_gamma equal c_max_pace_gamma",
        f"fix extreme_extrapolation all halt {every} v_max_pace_gamma >= {upper} error soft",
        f"thermo_style custom step temp pe etotal press vol {GAMMA_COLUMN}",
        "thermo_modify format float %.12g flush yes",
        f"thermo {every}",
        f"run {int(spec.steps)}",
    ]


def write_lammps_input(spec: MDRunSpec, elements: list[str], graded_apart: bool = False) -> str:
    """The LAMMPS input for one run; `elements` in LAMMPS type order."""
    return "\n".join([*setup_commands(elements, graded_apart), *md_commands(spec)]) + "\n"


def parse_log(text: str, every: int) -> tuple[int, bool, list[float]]:
    """(last step, halted by fix halt, max gamma at each check) from a LAMMPS log.

    Checks are the thermo rows at multiples of `every`; the row LAMMPS adds for a last step
    that is not a multiple repeats a stale gamma and is not a check.
    """
    steps: list[int] = []
    gammas: list[float] = []
    column: int | None = None
    for line in text.splitlines():
        fields = line.split()
        if fields[:1] == ["Step"]:
            column = fields.index(GAMMA_COLUMN) if GAMMA_COLUMN in fields else None
        elif fields[:2] == ["Loop", "time"]:
            column = None
        elif column is not None and len(fields) > column and fields[0].isdigit():
            steps.append(int(fields[0]))
            if steps[-1] % every == 0:
                gammas.append(float(fields[column]))
    halted = _HALT.search(text)
    last = int(halted.group(1)) if halted else (steps[-1] if steps else 0)
    return last, bool(halted), gammas


def dump_blocks(text: str) -> list[str]:
    """Complete snapshots of a dump; a last one cut off by a kill is dropped."""
    blocks = ["ITEM: TIMESTEP" + part for part in text.split("ITEM: TIMESTEP")[1:]]
    complete = []
    for block in blocks:
        lines = block.strip().splitlines()
        if "ITEM: NUMBER OF ATOMS" not in lines or not any(
            line.startswith("ITEM: ATOMS") for line in lines
        ):
            continue
        count = int(lines[lines.index("ITEM: NUMBER OF ATOMS") + 1])
        atoms_at = next(i for i, line in enumerate(lines) if line.startswith("ITEM: ATOMS"))
        if len(lines) - atoms_at - 1 == count:
            complete.append(block)
    return complete


def parse_dump(
    text: str, elements: list[str], run_id: str, start_cell: np.ndarray | None = None
) -> list[Atoms]:
    """Frames of the gamma-triggered dump, with per-atom gamma in arrays['gamma'].

    With `start_cell` (the cell the run started from) positions and cell are rotated back
    from LAMMPS's lower-triangular frame into the orientation of the start structure.
    """
    frames = []
    for block in dump_blocks(text):
        prism = None if start_cell is None else lammps_prism(start_cell)
        frame: Atoms = read_lammps_dump_text(
            io.StringIO(block), index=-1, specorder=elements, prismobj=prism
        )
        gamma = _gamma_column(frame)
        frame.pbc = True
        frame.calc = None
        frame.arrays.pop("type", None)
        frame.arrays["gamma"] = gamma
        step = int(block.split()[2])
        frame.info.update(step=step, max_gamma=float(gamma.max()), run_id=run_id)
        frames.append(frame)
    return frames


def _gamma_column(frame: Atoms) -> np.ndarray:
    for key in ("f_pace_gamma", "f_pace_gamma[1]"):
        if key in frame.arrays:
            return np.asarray(frame.arrays.pop(key), dtype=float).reshape(-1)
    raise LammpsError("the dump has no f_pace_gamma column")


def lammps_prism(cell: np.ndarray) -> Prism:
    """The rotation (and reduction) between a cell and LAMMPS's lower-triangular box."""
    return Prism(np.asarray(cell, dtype=float), pbc=True, reduce_cell=True)


def first_error(*texts: str) -> str | None:
    """The first LAMMPS error line (ERROR..., or a library's Exception: ...) in the texts."""
    for text in texts:
        found = _ERROR.search(text)
        if found:
            return found.group(1).strip()
    return None


class LammpsRunner:
    """Writes the inputs, runs `lmp` through the profile, parses log and dump into an MDResult."""

    def __init__(self, profile: LammpsProfile) -> None:
        self.profile = profile

    def run(
        self, atoms: Atoms, potential: PotentialFiles, spec: MDRunSpec, run_dir: Path
    ) -> MDResult:
        elements = lammps_elements(atoms)
        prepare_run(atoms, potential, spec, run_dir, elements)
        argv = self.profile.argv(INPUT_NAME, LOG_NAME)
        returncode, _ = run_process(argv, run_dir, spec.timeout, OUT_NAME, ERR_NAME)
        result = read_result(run_dir, spec, elements, np.asarray(atoms.cell))
        if returncode is None:
            result.error = f"MD run {spec.run_id} exceeded {spec.timeout:g} s"
        elif returncode != 0:
            texts = (_read(run_dir / name) for name in (LOG_NAME, ERR_NAME, OUT_NAME))
            why = first_error(*texts) or f"see {run_dir / ERR_NAME}"
            result.error = f"lmp exited with {returncode}: {why}"
        return result


def prepare_run(
    atoms: Atoms, potential: PotentialFiles, spec: MDRunSpec, run_dir: Path, elements: list[str]
) -> None:
    """The run folder: potential and active set (or grader), the structure as LAMMPS data, the
    input."""
    fresh_folder(run_dir)  # never read a killed run's log or dump as this run's
    shutil.copy(potential.yaml, run_dir / POTENTIAL_NAME)
    if potential.grader is None:
        shutil.copy(potential.active_set, run_dir / ACTIVE_SET_NAME)
    else:
        shutil.copy(potential.grader.yaml, run_dir / GRADER_NAME)
        shutil.copy(potential.grader.active_set, run_dir / GRADER_ACTIVE_SET_NAME)
    write_structure(run_dir / DATA_NAME, atoms, elements)
    graded_apart = potential.grader is not None
    (run_dir / INPUT_NAME).write_text(write_lammps_input(spec, elements, graded_apart))


def write_structure(path: Path, atoms: Atoms, elements: list[str]) -> None:
    """`atoms` as a LAMMPS data file in the (reduced, rotated) frame that `parse_dump` undoes."""
    ase.io.write(
        path,
        atoms,
        format="lammps-data",
        specorder=elements,
        prismobj=lammps_prism(np.asarray(atoms.cell)),
        reduce_cell=True,
    )


def read_result(
    run_dir: Path, spec: MDRunSpec, elements: list[str], start_cell: np.ndarray
) -> MDResult:
    result = MDResult(run_id=spec.run_id, temperature=spec.temperature)
    log = _read(run_dir / LOG_NAME)
    result.steps_done, result.halted, result.max_gamma_per_check = parse_log(log, spec.gamma_every)
    frames = parse_dump(_read(run_dir / DUMP_NAME), elements, spec.run_id, start_cell)
    result.frames = frames[: spec.max_frames]
    result.last_trusted = last_frame(
        _read(run_dir / CHECKS_NAME), elements, spec.run_id, start_cell
    )
    return result


def last_frame(text: str, elements: list[str], run_id: str, start_cell: np.ndarray) -> Atoms | None:
    """The last complete snapshot of a dump (the last trusted check), None when there is none."""
    blocks = dump_blocks(text)
    return parse_dump(blocks[-1], elements, run_id, start_cell)[0] if blocks else None


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def make_runner(profile: LammpsProfile | None) -> MDRunner:
    """The LAMMPS engine for the registry; the profile was checked for ML-PACE when it was made."""
    if profile is None:
        raise LammpsError("the lammps MD engine needs a LammpsProfile (see select_engine)")
    return LammpsRunner(profile).run
