"""MD engines by name; an engine's heavy packages are imported only on the worker that runs it.

`select_engine` runs once per phase in the orchestrating process (it is the only place that
runs `lmp -h`); the `MDEngineSpec` it returns is plain data that travels to the Dask workers
with every `run_md_task`.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path

from ase import Atoms

from mlip_autopipec.config import InferenceConfig
from mlip_autopipec.errors import UserError
from mlip_autopipec.inference.exploration_md import run_with_restarts
from mlip_autopipec.inference.lammps_profile import LammpsError, LammpsProfile
from mlip_autopipec.inference.md_types import MDResult, MDRunner, MDRunSpec, PotentialFiles

logger = logging.getLogger(__name__)

ENGINES: dict[str, str] = {
    "ase": "mlip_autopipec.inference.ase_md:make_runner",
    "lammps": "mlip_autopipec.inference.lammps:make_runner",
}
DEFAULT_LAMMPS = "lmp"


class UnknownEngineError(UserError):
    """An MD engine name that is not registered."""


@dataclass(frozen=True)
class MDEngineSpec:
    """Which engine runs the MD and how it is launched (`lammps` is set for "lammps")."""

    name: str
    lammps: LammpsProfile | None = None
    reason: str = ""


def select_engine(inference: InferenceConfig) -> MDEngineSpec:
    """The engine for this phase: `inference.engine`, with "auto" preferring LAMMPS.

    "lammps" raises LammpsError when the configured LAMMPS is missing or lacks ML-PACE;
    "auto" then falls back to `lmp` on PATH, then to ASE + pyace, and says why.
    """
    if inference.engine == "ase":
        engine = MDEngineSpec("ase", reason="inference.engine is ase")
    elif inference.engine == "lammps":
        profile = LammpsProfile.from_command(inference.lammps_command)
        engine = MDEngineSpec(
            "lammps", profile, f"inference.engine is lammps: {profile.describe()}"
        )
    else:
        engine = _auto(list(inference.lammps_command))
    logger.info("MD engine: %s (%s)", engine.name, engine.reason)
    return engine


def _auto(command: list[str]) -> MDEngineSpec:
    commands = [command]
    if command[0] != DEFAULT_LAMMPS:
        commands.append([DEFAULT_LAMMPS])
    problems = []
    for candidate in commands:
        try:
            profile = LammpsProfile.from_command(candidate)
        except LammpsError as error:
            problems.append(str(error))
            continue
        return MDEngineSpec("lammps", profile, f"engine auto found {profile.describe()}")
    why = "; ".join(problems)
    return MDEngineSpec("ase", reason=f"engine auto found no LAMMPS with ML-PACE ({why})")


def engine_runner(engine: MDEngineSpec) -> MDRunner:
    """The run function of the engine named in `engine`; imports its module on first use."""
    if engine.name not in ENGINES:
        known = ", ".join(sorted(ENGINES))
        raise UnknownEngineError(f"unknown MD engine {engine.name!r}; known: {known}")
    module_name, factory_name = ENGINES[engine.name].split(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    runner: MDRunner = factory(engine.lammps)
    return runner


def run_md_task(
    atoms: Atoms,
    spec: MDRunSpec,
    engine: MDEngineSpec,
    potential: PotentialFiles,
    run_root: Path,
) -> MDResult:
    """One MD run on a Dask worker: plain data in, plain data out; never runs `lmp -h`.

    A run that halts restarts on this worker from its last trusted frame (`exploration_md`).
    """
    runner = engine_runner(engine)
    return run_with_restarts(runner, atoms, potential, spec, Path(run_root) / spec.run_id)
