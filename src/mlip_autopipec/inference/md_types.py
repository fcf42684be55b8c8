"""What an MD run with extrapolation-grade monitoring is asked to do, and what it reports.

Plain data shared by every MD engine (`ase`, `lammps`) and sent to Dask workers. The threshold
semantics are the same for all engines: gamma is evaluated every `gamma_every` steps, starting
at step 0; a checked frame whose max gamma is at least `gamma_lower` is kept (up to
`max_frames`); a segment stops at the first check whose max gamma is at least `gamma_upper`,
and that frame is kept too. An engine runs one segment; `exploration_md` restarts a halted run
from its last trusted frame (max gamma below `gamma_upper`) up to `max_restarts` times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ase import Atoms

from mlip_autopipec.config import InferenceConfig


@dataclass(frozen=True)
class GammaGrader:
    """A B-basis .yaml and its active set .asi that grade gamma (pace/extrapolation)."""

    yaml: Path
    active_set: Path


@dataclass(frozen=True)
class PotentialFiles:
    """A fitted ACE potential: B-basis .yaml (pyace, LAMMPS pace/extrapolation), .yace, .asi.

    `grader`: another fit on the same labels whose active set grades gamma instead of this
    one's (see `orchestration.training.Candidate.grader`); energies and forces stay this fit's.
    """

    yaml: Path
    yace: Path
    active_set: Path
    grader: GammaGrader | None = None

    @property
    def grading(self) -> GammaGrader:
        """What grades gamma: the grader, else this fit's own B-basis and active set."""
        return self.grader or GammaGrader(self.yaml, self.active_set)


@dataclass(frozen=True)
class MDRunSpec:
    """What one MD run computes; how an engine is launched travels separately (MDEngineSpec)."""

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
    max_restarts: int = 0
    start: str = "bulk"  # the kind of structure the run starts from (planning.START_KINDS)
    # The start's periodic axes. MD runs fully periodic (a slab with its vacuum), but frames
    # are stored as the start was, so a slab's frames are judged by the slab's rules.
    periodic: tuple[bool, bool, bool] = (True, True, True)

    @classmethod
    def from_config(
        cls,
        inference: InferenceConfig,
        run_id: str,
        temperature: float,
        pressure: float | None,
        seed: int,
        start: str = "bulk",
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
            max_restarts=inference.max_restarts,
            start=start,
        )


@dataclass
class MDSegment:
    """One stretch of a run with its own velocities: where it started and what it reached."""

    seed: int
    first_step: int  # steps of the run before this segment
    start: Atoms
    steps_done: int = 0
    halted: bool = False
    max_gamma_per_check: list[float] = field(default_factory=list)
    last_trusted: Atoms | None = None
    error: str | None = None


@dataclass
class MDResult:
    """Frames carry per-atom gamma in `atoms.arrays["gamma"]` and their step in `atoms.info`.

    `last_trusted` is the last checked frame whose max gamma stayed below `gamma_upper`
    (positions, cell, per-atom gamma; step and max_gamma in `info`), None before any such check.
    A run with restarts has one `MDSegment` per segment; then `steps_done` is their total,
    `halted` says that some segment halted and `halts` how many did.
    """

    run_id: str
    temperature: float
    steps_done: int = 0
    halted: bool = False
    max_gamma_per_check: list[float] = field(default_factory=list)
    frames: list[Atoms] = field(default_factory=list)
    error: str | None = None
    last_trusted: Atoms | None = None
    start: str = "bulk"
    halts: int = 0
    segments: list[MDSegment] = field(default_factory=list)

    def extrapolative_share(self, gamma_lower: float) -> float:
        """Share of checked steps whose max gamma reached the lower threshold."""
        if not self.max_gamma_per_check:
            return 1.0 if self.halted or self.error else 0.0
        above = sum(gamma >= gamma_lower for gamma in self.max_gamma_per_check)
        return above / len(self.max_gamma_per_check)


MDRunner = Callable[[Atoms, PotentialFiles, MDRunSpec, Path], MDResult]
"""One engine's MD: (start structure, potential, what to compute, run folder) -> result."""
