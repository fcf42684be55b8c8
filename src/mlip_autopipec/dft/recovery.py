"""RecoveryHandler: an ordered ladder of small corrections per pw.x error code.

Each handler looks at the parameters of the failed attempt and either returns a Correction
(new parameters plus a sentence saying what changed) or None when its rung is used up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlip_autopipec.config import DFTConfig
from mlip_autopipec.dft.inputs import SCFParameters
from mlip_autopipec.dft.parser import ErrorCode

MIXING_BETA_FLOOR = 0.1
ELECTRON_MAXSTEP_MIN = 50
ELECTRON_MAXSTEP_CAP = 1000
DIAGONALIZATION_ORDER = ("david", "cg", "ppcg")


@dataclass(frozen=True)
class Correction:
    parameters: SCFParameters
    description: str


Handler = Callable[[SCFParameters, DFTConfig], Correction | None]


def lower_mixing_beta(scf: SCFParameters, dft: DFTConfig) -> Correction | None:
    beta = round(scf.mixing_beta * 0.5, 4)
    if beta < MIXING_BETA_FLOOR:
        return None
    steps = min(max(2 * scf.electron_maxstep, ELECTRON_MAXSTEP_MIN), ELECTRON_MAXSTEP_CAP)
    return Correction(
        scf.changed(mixing_beta=beta, electron_maxstep=steps),
        f"mixing_beta {scf.mixing_beta} -> {beta}, electron_maxstep "
        f"{scf.electron_maxstep} -> {steps}",
    )


def local_tf_mixing(scf: SCFParameters, dft: DFTConfig) -> Correction | None:
    if scf.mixing_mode == "local-TF":
        return None
    return Correction(
        scf.changed(mixing_mode="local-TF"), f"mixing_mode {scf.mixing_mode} -> local-TF"
    )


def next_diagonalization(scf: SCFParameters, dft: DFTConfig) -> Correction | None:
    position = DIAGONALIZATION_ORDER.index(scf.diagonalization)
    if position + 1 >= len(DIAGONALIZATION_ORDER):
        return None
    new = DIAGONALIZATION_ORDER[position + 1]
    return Correction(
        scf.changed(diagonalization=new), f"diagonalization {scf.diagonalization} -> {new}"
    )


def longer_time_limit(scf: SCFParameters, dft: DFTConfig) -> Correction | None:
    if dft.max_timeout is None or scf.timeout >= dft.max_timeout:
        return None
    new = min(2 * scf.timeout, dft.max_timeout)
    return Correction(scf.changed(timeout=new), f"timeout {scf.timeout:g} s -> {new:g} s")


# Most specific first: a diagonalization failure often also leaves the SCF unconverged.
LADDERS: dict[ErrorCode, tuple[Handler, ...]] = {
    ErrorCode.DIAGONALIZATION: (next_diagonalization,),
    ErrorCode.TOO_MANY_BANDS_NOT_CONVERGED: (next_diagonalization,),
    ErrorCode.SCF_NOT_CONVERGED: (lower_mixing_beta, local_tf_mixing),
    ErrorCode.OUT_OF_WALLTIME: (longer_time_limit,),
    ErrorCode.TIMEOUT_KILLED: (longer_time_limit,),
}


class RecoveryHandler:
    """Chooses the next correction for a failed attempt, or None when nothing is left to try."""

    def __init__(self, dft: DFTConfig) -> None:
        self.dft = dft

    def correct(self, errors: frozenset[ErrorCode], scf: SCFParameters) -> Correction | None:
        for code, ladder in LADDERS.items():
            if code not in errors:
                continue
            for handler in ladder:
                correction = handler(scf, self.dft)
                if correction is not None:
                    return correction
            return None
        return None
