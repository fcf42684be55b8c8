"""What an MD run with extrapolation-grade monitoring is asked to do, and what it reports.

Both engines (`ase`, `lammps`) share these types and the same threshold semantics:
gamma is evaluated every `gamma_every` steps; a frame whose max gamma is at least
`gamma_lower` is kept (up to `max_frames`); the run stops at the first check whose max
gamma is at least `gamma_upper`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ase import Atoms

from mlip_autopipec.config import InferenceConfig


@dataclass(frozen=True)
class PotentialFiles:
    """A fitted ACE potential: B-basis .yaml (for pyace), .yace (for LAMMPS), active set .asi."""

    yaml: Path
    yace: Path
    active_set: Path


@dataclass(frozen=True)
class MDRunSpec:
    run_id: str
    temperature: float
    pressure: float | None
    steps: int
    timestep: float
    seed: int
    gamma_every: int
    gamma_lower: float
    gamma_upper: float
    max_frames: int
    timeout: float
    lammps_command: tuple[str, ...] = ("lmp",)

    @classmethod
    def from_config(
        cls,
        inference: InferenceConfig,
        run_id: str,
        temperature: float,
        pressure: float | None,
        seed: int,
    ) -> MDRunSpec:
        return cls(
            run_id=run_id,
            temperature=temperature,
            pressure=pressure,
            steps=inference.steps,
            timestep=inference.timestep,
            seed=seed,
            gamma_every=inference.gamma_every,
            gamma_lower=inference.gamma_lower,
            gamma_upper=inference.gamma_upper,
            max_frames=inference.max_frames,
            timeout=inference.timeout,
            lammps_command=tuple(inference.lammps_command),
        )


@dataclass
class MDResult:
    """Frames carry per-atom gamma in `atoms.arrays["gamma"]` and their step in `atoms.info`."""

    run_id: str
    temperature: float
    steps_done: int = 0
    halted: bool = False
    max_gamma_per_check: list[float] = field(default_factory=list)
    frames: list[Atoms] = field(default_factory=list)
    error: str | None = None

    def extrapolative_share(self, gamma_lower: float) -> float:
        """Share of checked steps whose max gamma reached the lower threshold."""
        if not self.max_gamma_per_check:
            return 1.0 if self.halted or self.error else 0.0
        above = sum(gamma >= gamma_lower for gamma in self.max_gamma_per_check)
        return above / len(self.max_gamma_per_check)


MDEngine = Callable[[Atoms, PotentialFiles, MDRunSpec, Path], MDResult]


def get_engine(name: str) -> MDEngine:
    """The MD engine registered under `name`; heavy packages are imported on first use."""
    if name == "ase":
        from mlip_autopipec.inference.ase_md import run_ase_md

        return run_ase_md
    if name == "lammps":
        from mlip_autopipec.inference.lammps import run_lammps_md

        return run_lammps_md
    raise ValueError(f"unknown MD engine {name!r}; choose 'ase' or 'lammps'")


def run_md_task(
    atoms: Atoms, spec: MDRunSpec, engine: str, potential: PotentialFiles, run_root: Path
) -> MDResult:
    """One MD run on a Dask worker: plain data in, plain data out."""
    return get_engine(engine)(atoms, potential, spec, Path(run_root) / spec.run_id)
