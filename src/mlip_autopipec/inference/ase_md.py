"""The embedded MD engine: ASE Langevin (or Berendsen NPT) with pyace and gamma monitoring."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, thermalize_momenta

from mlip_autopipec.core.quiet_imports import pyace_calculator
from mlip_autopipec.inference.md_types import (
    GammaGrader,
    MDResult,
    MDRunner,
    MDRunSpec,
    PotentialFiles,
)

logger = logging.getLogger(__name__)


class _Halt(Exception):
    """Raised inside the MD loop when gamma reaches the upper threshold."""


def ace_calculator(potential: PotentialFiles, with_active_set: bool) -> object:
    """The potential's own calculator, or (`with_active_set`) the one that grades gamma."""
    if not with_active_set:
        return pyace_calculator(str(potential.yaml))
    grading = potential.grading
    return pyace_calculator(str(grading.yaml), str(grading.active_set))


def per_atom_gamma(atoms: Atoms, gamma_calc: object) -> np.ndarray:
    probe = atoms.copy()
    probe.calc = gamma_calc
    probe.get_potential_energy()
    return np.asarray(probe.calc.results["gamma"], dtype=float)


def graded(grading: GammaGrader, structures: Sequence[Atoms]) -> list[np.ndarray]:
    """Each structure's per-atom gamma as `grading` grades it."""
    calculator = pyace_calculator(str(grading.yaml), str(grading.active_set))
    return [per_atom_gamma(atoms, calculator) for atoms in structures]


def checked_frame(atoms: Atoms, gamma: np.ndarray, step: int, run_id: str) -> Atoms:
    """A copy of the MD state at a check: positions and cell, per-atom gamma, step and max."""
    frame = atoms.copy()
    frame.calc = None
    frame.arrays["gamma"] = gamma
    frame.info.update(step=step, max_gamma=float(gamma.max()), run_id=run_id)
    return frame


def _dynamics(atoms: Atoms, spec: MDRunSpec) -> object:
    timestep = spec.timestep * units.fs
    if spec.pressure is None:
        return Langevin(
            atoms,
            timestep,
            temperature_K=spec.temperature,
            friction=0.01 / units.fs,
            fixcm=False,
            rng=np.random.default_rng(spec.seed),
        )
    from ase.md.nptberendsen import NPTBerendsen

    return NPTBerendsen(
        atoms,
        timestep,
        temperature_K=spec.temperature,
        pressure_au=spec.pressure * units.bar,
        taut=100 * units.fs,
        taup=1000 * units.fs,
        compressibility_au=1e-6 / units.bar,
    )


def run_ase_md(atoms: Atoms, potential: PotentialFiles, spec: MDRunSpec, run_dir: Path) -> MDResult:
    """MD from `atoms`; gamma every `gamma_every` steps with a second, active-set calculator."""
    atoms = atoms.copy()
    atoms.calc = ace_calculator(potential, with_active_set=False)
    gamma_calc = ace_calculator(potential, with_active_set=True)
    thermalize_momenta(atoms, spec.temperature, rng=np.random.default_rng(spec.seed))
    Stationary(atoms)
    result = MDResult(run_id=spec.run_id, temperature=spec.temperature)
    dynamics = _dynamics(atoms, spec)
    deadline = time.monotonic() + spec.timeout

    def check_gamma() -> None:
        step = dynamics.nsteps  # type: ignore[attr-defined]
        gamma = per_atom_gamma(atoms, gamma_calc)
        max_gamma = float(gamma.max())
        result.max_gamma_per_check.append(max_gamma)
        result.steps_done = step
        if max_gamma >= spec.gamma_lower and len(result.frames) < spec.max_frames:
            result.frames.append(checked_frame(atoms, gamma, step, spec.run_id))
        if max_gamma >= spec.gamma_upper:
            raise _Halt(f"max gamma {max_gamma:.2f} >= {spec.gamma_upper} at step {step}")
        result.last_trusted = checked_frame(atoms, gamma, step, spec.run_id)
        if time.monotonic() > deadline:
            raise TimeoutError(f"MD run {spec.run_id} exceeded {spec.timeout:g} s")

    dynamics.attach(check_gamma, interval=spec.gamma_every)  # type: ignore[attr-defined]
    try:
        dynamics.run(spec.steps)  # type: ignore[attr-defined]
        result.steps_done = spec.steps
    except _Halt as halt:
        result.halted = True
        logger.info("MD %s halted: %s", spec.run_id, halt)
    except TimeoutError as error:
        result.error = str(error)
    except Exception as error:  # an exploding trajectory must not take the batch down
        result.error = f"{type(error).__name__}: {error}"
        logger.warning("MD %s failed: %s", spec.run_id, result.error)
    return result


def make_runner(_lammps: object = None) -> MDRunner:
    """The ASE engine for the registry; it needs no launch settings."""
    return run_ase_md
