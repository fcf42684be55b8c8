"""RecoveryHandler: an ordered ladder of small corrections per pw.x error code.

Each handler looks at the parameters of the failed attempt and either returns new parameters
plus a sentence saying what changed, or None when its rung is used up. A rung also says what
the next attempt may start from (the failed attempt's charge density, or also its
wavefunctions), as aiida-quantumespresso's PwBaseWorkChain does.

Codes are tried in priority order (errors.PRIORITY). When one code's ladder is used up, the
next code of the same run that still has a rung is tried (a diagonalization failure that also
left the SCF unconverged moves on to the mixing ladder once every solver was tried). A run with
a code in UNRECOVERABLE gets no correction at all: changing numerics cannot fix those.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlip_autopipec.config import DFTConfig
from mlip_autopipec.dft.errors import ErrorCode, ordered
from mlip_autopipec.dft.inputs import Restart, SCFParameters

MIXING_BETA_FLOOR = 0.1
ELECTRON_MAXSTEP_MIN = 50
ELECTRON_MAXSTEP_CAP = 1000
# david first (fast); cg last: slowest, most stable (aiida-quantumespresso's order)
DIAGONALIZATION_ORDER = ("david", "ppcg", "paro", "cg")


@dataclass(frozen=True)
class Change:
    parameters: SCFParameters
    description: str


@dataclass(frozen=True)
class Correction:
    parameters: SCFParameters
    description: str
    code: ErrorCode  # the error code this correction answers
    restart: Restart = Restart.SCRATCH


Handler = Callable[[SCFParameters, DFTConfig], Change | None]


@dataclass(frozen=True)
class Rung:
    handler: Handler
    restart: Restart


def lower_mixing_beta(scf: SCFParameters, dft: DFTConfig) -> Change | None:
    beta = round(scf.mixing_beta * 0.5, 4)
    if beta < MIXING_BETA_FLOOR:
        return None
    steps = min(max(2 * scf.electron_maxstep, ELECTRON_MAXSTEP_MIN), ELECTRON_MAXSTEP_CAP)
    return Change(
        scf.changed(mixing_beta=beta, electron_maxstep=steps),
        f"mixing_beta {scf.mixing_beta} -> {beta}, electron_maxstep "
        f"{scf.electron_maxstep} -> {steps}",
    )


def local_tf_mixing(scf: SCFParameters, dft: DFTConfig) -> Change | None:
    if scf.mixing_mode == "local-TF":
        return None
    return Change(scf.changed(mixing_mode="local-TF"), f"mixing_mode {scf.mixing_mode} -> local-TF")


def next_diagonalization(scf: SCFParameters, dft: DFTConfig) -> Change | None:
    current = scf.diagonalization
    position = DIAGONALIZATION_ORDER.index(current) if current in DIAGONALIZATION_ORDER else -1
    if position + 1 >= len(DIAGONALIZATION_ORDER):
        return None
    new = DIAGONALIZATION_ORDER[position + 1]
    return Change(scf.changed(diagonalization=new), f"diagonalization {current} -> {new}")


def longer_time_limit(scf: SCFParameters, dft: DFTConfig) -> Change | None:
    if dft.max_timeout is None or scf.timeout >= dft.max_timeout:
        return None
    new = min(2 * scf.timeout, dft.max_timeout)
    return Change(scf.changed(timeout=new), f"timeout {scf.timeout:g} s -> {new:g} s")


# A new solver starts from scratch: the failed run's wavefunctions may be what broke it.
# A broken mixer's density is not trusted either. An SCF that ran out of steps continues from
# its density; one that stopped itself at max_seconds wrote density and wavefunctions cleanly;
# one we killed may have been killed while writing them.
LADDERS: dict[ErrorCode, tuple[Rung, ...]] = {
    ErrorCode.DIAGONALIZATION: (Rung(next_diagonalization, Restart.SCRATCH),),
    ErrorCode.TOO_MANY_BANDS_NOT_CONVERGED: (Rung(next_diagonalization, Restart.SCRATCH),),
    ErrorCode.CHARGE_MIXING: (
        Rung(lower_mixing_beta, Restart.SCRATCH),
        Rung(local_tf_mixing, Restart.SCRATCH),
    ),
    ErrorCode.OUT_OF_WALLTIME: (Rung(longer_time_limit, Restart.FULL),),
    ErrorCode.TIMEOUT_KILLED: (Rung(longer_time_limit, Restart.SCRATCH),),
    ErrorCode.SCF_NOT_CONVERGED: (
        Rung(lower_mixing_beta, Restart.CHARGE_DENSITY),
        Rung(local_tf_mixing, Restart.CHARGE_DENSITY),
    ),
}

UNRECOVERABLE = frozenset(
    {
        ErrorCode.NOT_SINGLE_POINT,
        ErrorCode.PSEUDOPOTENTIAL,
        ErrorCode.CHARGE_WRONG,
        ErrorCode.OUT_OF_MEMORY,
        ErrorCode.STOPPED_BY_USER,
    }
)


class RecoveryHandler:
    """Chooses the next correction for a failed attempt, or None when nothing is left to try."""

    def __init__(self, dft: DFTConfig) -> None:
        self.dft = dft

    def correct(self, errors: frozenset[ErrorCode], scf: SCFParameters) -> Correction | None:
        if errors & UNRECOVERABLE:
            return None
        for code in ordered(errors):
            for rung in LADDERS.get(code, ()):
                change = rung.handler(scf, self.dft)
                if change is not None:
                    return Correction(change.parameters, change.description, code, rung.restart)
        return None
