"""QEOutputParser: pw.x output text in, a PwResult out. Pure: no files, no subprocess.

The numbers come from ASE's reader; what is ours is deciding whether the run converged and
classifying what went wrong, from one table of pw.x messages (valid for pw.x 6.x and 7.x).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from ase.io.espresso import read_espresso_out


class ErrorCode(StrEnum):
    SCF_NOT_CONVERGED = "scf_not_converged"
    OUT_OF_WALLTIME = "out_of_walltime"
    DIAGONALIZATION = "diagonalization"
    TOO_MANY_BANDS_NOT_CONVERGED = "too_many_bands_not_converged"
    PSEUDOPOTENTIAL = "pseudopotential"
    CHARGE_WRONG = "charge_wrong"
    INTERRUPTED = "interrupted"
    NONZERO_EXIT = "nonzero_exit"
    TIMEOUT_KILLED = "timeout_killed"
    UNPARSABLE = "unparsable"
    OTHER_ERROR = "other_error"


# (regex, code). Checked in order; each code is reported once however often it matches.
ERROR_MARKERS: tuple[tuple[re.Pattern[str], ErrorCode], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), code)
    for pattern, code in (
        (r"convergence NOT achieved", ErrorCode.SCF_NOT_CONVERGED),
        (r"Maximum CPU time exceeded", ErrorCode.OUT_OF_WALLTIME),
        (r"problems computing cholesky", ErrorCode.DIAGONALIZATION),
        (r"S matrix not positive definite", ErrorCode.DIAGONALIZATION),
        (r"not positive definite", ErrorCode.DIAGONALIZATION),
        (r"eigenvectors failed to converge", ErrorCode.DIAGONALIZATION),
        (r"Error in routine [cr]diag", ErrorCode.DIAGONALIZATION),
        (r"too many bands are not converged", ErrorCode.TOO_MANY_BANDS_NOT_CONVERGED),
        (r"Error in routine readpp", ErrorCode.PSEUDOPOTENTIAL),
        (r"Error in routine read_upf|pseudopotential file .* not found", ErrorCode.PSEUDOPOTENTIAL),
        (r"charge is wrong|wrong charge", ErrorCode.CHARGE_WRONG),
    )
)
_ANY_ERROR = re.compile(r"Error in routine\s+(\S+)\s*\((\s*-?\d+)\):\s*\n\s*(.+)")
_CONVERGED = re.compile(r"convergence has been achieved in\s+(\d+)\s+iterations")
_SCF_STEP = re.compile(r"iteration #\s*(\d+)")
_JOB_DONE = re.compile(r"^\s*JOB DONE\.\s*$", re.MULTILINE)
_WALL = re.compile(r"PWSCF\s*:.*?CPU\s+(?:(\d+)h\s*)?(?:(\d+)m\s*)?([\d.]+)s\s+WALL")


@dataclass(frozen=True)
class PwResult:
    converged: bool
    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    scf_iterations: int = 0
    wall_time: float | None = None
    errors: frozenset[ErrorCode] = field(default_factory=frozenset)
    message: str = ""

    @property
    def is_label(self) -> bool:
        """A usable DFT label: converged, no error, finite energy and forces."""
        return (
            self.converged
            and not self.errors
            and self.energy is not None
            and self.forces is not None
            and bool(np.isfinite(self.energy))
            and bool(np.all(np.isfinite(self.forces)))
        )


def detect_errors(text: str, returncode: int | None = 0) -> set[ErrorCode]:
    errors = {code for pattern, code in ERROR_MARKERS if pattern.search(text)}
    if "Error in routine" in text and not errors:
        errors.add(ErrorCode.OTHER_ERROR)
    if not _JOB_DONE.search(text):
        errors.add(ErrorCode.INTERRUPTED)
    if returncode not in (0, None):
        errors.add(ErrorCode.NONZERO_EXIT)
    return errors


def first_error_message(text: str) -> str:
    match = _ANY_ERROR.search(text)
    if match:
        return f"{match.group(1)}: {match.group(3).strip()}"
    for pattern, _ in ERROR_MARKERS:
        found = pattern.search(text)
        if found:
            line_start = text.rfind("\n", 0, found.start()) + 1
            line_end = text.find("\n", found.end())
            return text[line_start : line_end if line_end >= 0 else None].strip()
    return ""


def parse_wall_time(text: str) -> float | None:
    matches = _WALL.findall(text)
    if not matches:
        return None
    hours, minutes, seconds = matches[-1]
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds)


def scf_iteration_count(text: str) -> int:
    converged = _CONVERGED.findall(text)
    if converged:
        return int(converged[-1])
    steps = _SCF_STEP.findall(text)
    return int(steps[-1]) if steps else 0


def parse_pw_output(text: str, returncode: int | None = 0) -> PwResult:
    """Classify a pw.x run and extract energy (eV), forces (eV/Å) and stress (eV/Å^3, Voigt)."""
    errors = detect_errors(text, returncode)
    converged = bool(_CONVERGED.search(text)) and ErrorCode.SCF_NOT_CONVERGED not in errors
    energy, forces, stress = _read_numbers(text) if converged else (None, None, None)
    if (converged and energy is None) or (not converged and not errors):
        errors.add(ErrorCode.UNPARSABLE)
    return PwResult(
        converged=converged,
        energy=energy,
        forces=forces,
        stress=stress,
        scf_iterations=scf_iteration_count(text),
        wall_time=parse_wall_time(text),
        errors=frozenset(errors),
        message=first_error_message(text),
    )


def _read_numbers(text: str) -> tuple[float | None, np.ndarray | None, np.ndarray | None]:
    try:
        images = list(read_espresso_out(io.StringIO(text), index=slice(None)))
    except Exception:  # ASE's reader raises many types on truncated or garbled text
        return None, None, None
    if not images or images[-1].calc is None:
        return None, None, None
    results = images[-1].calc.results
    energy = results.get("energy")
    forces = results.get("forces")
    stress = results.get("stress")
    return (
        float(energy) if energy is not None else None,
        np.asarray(forces, dtype=float) if forces is not None else None,
        np.asarray(stress, dtype=float) if stress is not None else None,
    )
