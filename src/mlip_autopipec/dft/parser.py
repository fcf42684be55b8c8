"""QEOutputParser: pw.x output text (stdout, CRASH, stderr) in, a PwResult out. Pure.

Whether a run failed and why comes from the tables in `errors.py`. The numbers come from ASE's
reader; when it raises on an output that converged (it also needs blocks unrelated to energy
and forces), the final energy, forces and stress are read directly, and if that fails too the
message keeps ASE's reason.
"""

from __future__ import annotations

import io
import re
import signal
from dataclasses import dataclass, field

import numpy as np
from ase.io.espresso import read_espresso_out
from ase.units import create_units

from mlip_autopipec.dft.errors import (
    EXPLAINS_EARLY_END,
    ErrorCode,
    classify_fatal,
    fallback_fatal_line,
    fatal_errors,
    not_single_point,
    ordered,
    plain_text_errors,
)

_CONVERGED = re.compile(r"convergence has been achieved in\s+(\d+)\s+iterations")
_SCF_STEP = re.compile(r"iteration #\s*(\d+)")
_JOB_DONE = re.compile(r"^\s*JOB DONE\.\s*$", re.MULTILINE)
_WALL = re.compile(r"PWSCF\s*:.*?CPU\s+(?:(\d+)h\s*)?(?:(\d+)m\s*)?([\d.]+)s\s+WALL")
_FLOAT = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eEdD][-+]?\d+)?"
_ENERGY = re.compile(rf"^!\s+total energy\s*=\s*({_FLOAT})\s*Ry", re.MULTILINE)
_NAT = re.compile(r"number of atoms/cell\s*=\s*(\d+)")
_FORCE_LINE = re.compile(
    rf"atom\s+\d+\s+type\s+\d+\s+force\s*=\s*({_FLOAT})\s+({_FLOAT})\s+({_FLOAT})"
)
_STRESS_HEADER = "total   stress"
_UNITS = create_units("2006")  # what ASE's espresso reader uses
Ry, Bohr = _UNITS["Ry"], _UNITS["Bohr"]

Numbers = tuple[float | None, np.ndarray | None, np.ndarray | None]


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
    def codes(self) -> list[str]:
        """All error codes, primary first."""
        return [str(code) for code in ordered(self.errors)]

    @property
    def failure_kind(self) -> str | None:
        """The primary error code, or None for a usable label."""
        codes = self.codes
        return codes[0] if codes else (None if self.is_label else str(ErrorCode.UNPARSABLE))

    @property
    def is_label(self) -> bool:
        """A usable DFT label: converged, no error, finite energy, forces and stress."""
        return (
            self.converged
            and not self.errors
            and self.energy is not None
            and self.forces is not None
            and self.stress is not None
            and bool(np.isfinite(self.energy))
            and bool(np.all(np.isfinite(self.forces)))
            and bool(np.all(np.isfinite(self.stress)))
        )


class _Findings:
    """Codes and the first message that explains each one."""

    def __init__(self) -> None:
        self.messages: dict[ErrorCode, str] = {}

    def add(self, code: ErrorCode, message: str) -> None:
        self.messages.setdefault(code, message)

    def __contains__(self, code: ErrorCode) -> bool:
        return code in self.messages

    def codes(self) -> frozenset[ErrorCode]:
        return frozenset(self.messages)

    def message(self) -> str:
        for code in ordered(self.codes()):
            if self.messages[code]:
                return self.messages[code]
        return ""


def parse_pw_output(
    text: str,
    returncode: int | None = 0,
    *,
    crash: str = "",
    stderr: str = "",
    killed_after: float | None = None,
) -> PwResult:
    """Classify a pw.x run and extract energy (eV), forces (eV/Å) and stress (eV/Å^3, Voigt).

    `crash` is the run folder's CRASH file, `killed_after` the seconds after which the runner
    killed pw.x (None when it ended by itself).
    """
    found = _classify(text, returncode, crash, stderr, killed_after)
    match = _CONVERGED.search(text)
    converged = bool(match) and ErrorCode.SCF_NOT_CONVERGED not in found
    energy, forces, stress = None, None, None
    if converged and ErrorCode.NOT_SINGLE_POINT not in found:
        energy, forces, stress = _numbers(text, found)
    if not converged and not found.messages:
        found.add(ErrorCode.UNPARSABLE, "no converged SCF and no error message in the output")
    return PwResult(
        converged=converged,
        energy=energy,
        forces=forces,
        stress=stress,
        scf_iterations=scf_iteration_count(text),
        wall_time=parse_wall_time(text),
        errors=found.codes(),
        message=found.message(),
    )


def _classify(
    text: str, returncode: int | None, crash: str, stderr: str, killed_after: float | None
) -> _Findings:
    found = _Findings()
    reason = not_single_point(text)
    if reason:
        found.add(ErrorCode.NOT_SINGLE_POINT, reason)
    for error in fatal_errors(text, crash):
        where = "" if error.source == "stdout" else f" [{error.source}]"
        found.add(classify_fatal(error), error.describe() + where)
    for code, line in plain_text_errors(f"{text}\n{stderr}"):
        found.add(code, line)
    if killed_after is not None:
        found.add(ErrorCode.TIMEOUT_KILLED, f"killed after {killed_after:g} s")
    elif returncode is not None and returncode < 0:
        found.add(ErrorCode.CRASHED, f"pw.x was killed by signal {_signal_name(-returncode)}")
    if returncode not in (0, None):
        found.add(ErrorCode.NONZERO_EXIT, f"pw.x exited with status {returncode}")
    if not _JOB_DONE.search(text) and not (found.codes() & EXPLAINS_EARLY_END):
        fatal_line = fallback_fatal_line(f"{text}\n{stderr}")
        if fatal_line:
            found.add(ErrorCode.FATAL_ERROR, fatal_line)
        else:
            found.add(ErrorCode.INTERRUPTED, _interrupted_message(text))
    return found


def _numbers(text: str, found: _Findings) -> Numbers:
    """Energy, forces and stress of a converged SCF; records what is missing in `found`."""
    energy, forces, stress, ase_error = _read_with_ase(text)
    if ase_error is not None:
        energy, forces, stress = read_numbers_directly(text)
    if energy is None:
        why = f"ASE could not read the output ({ase_error})" if ase_error else "ASE found none"
        found.add(ErrorCode.UNPARSABLE, f"converged, but no final total energy: {why}")
    elif forces is None or stress is None:
        missing = " and ".join(
            name for name, value in (("forces", forces), ("stress", stress)) if value is None
        )
        found.add(
            ErrorCode.MISSING_FORCES_OR_STRESS,
            f"converged SCF without {missing} (the input must set tprnfor and tstress)",
        )
    return energy, forces, stress


def _read_with_ase(
    text: str,
) -> tuple[float | None, np.ndarray | None, np.ndarray | None, str | None]:
    try:
        images = list(read_espresso_out(io.StringIO(text), index=slice(None)))
    except Exception as error:  # ASE's reader raises many types on outputs it does not expect
        return None, None, None, f"{type(error).__name__}: {error}"
    if not images or images[-1].calc is None:
        return None, None, None, "no configuration with results"
    results = images[-1].calc.results
    energy, forces, stress = (results.get(key) for key in ("energy", "forces", "stress"))
    return (
        float(energy) if energy is not None else None,
        np.asarray(forces, dtype=float) if forces is not None else None,
        np.asarray(stress, dtype=float) if stress is not None else None,
        None,
    )


def read_numbers_directly(text: str) -> Numbers:
    """The last `!` total energy, its forces and stress, in ASE's units and sign convention."""
    energies = _ENERGY.findall(text)
    energy = _to_float(energies[-1]) * Ry if energies else None
    nat_match = _NAT.search(text)
    nat = int(nat_match.group(1)) if nat_match else None
    return energy, _read_forces(text, nat), _read_stress(text)


def _read_forces(text: str, nat: int | None) -> np.ndarray | None:
    start = text.rfind("Forces acting on atoms")
    if start < 0:
        return None
    rows = []
    for line in text[start:].splitlines()[1:]:
        match = _FORCE_LINE.search(line)
        if match:
            rows.append([_to_float(value) for value in match.groups()])
        elif rows:
            break  # contiguous block only: per-term forces (high verbosity) come later
    if not rows or (nat is not None and len(rows) != nat):
        return None
    return np.array(rows) * Ry / Bohr


def _read_stress(text: str) -> np.ndarray | None:
    start = text.rfind(_STRESS_HEADER)
    if start < 0:
        return None
    lines = text[start:].splitlines()[1:4]
    try:
        matrix = np.array([[_to_float(v) for v in line.split()[:3]] for line in lines])
    except ValueError:
        return None
    if matrix.shape != (3, 3):
        return None
    voigt = matrix[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    return -voigt * Ry / Bohr**3  # pw.x's sign convention is opposite to ASE's


def _to_float(value: str) -> float:
    return float(value.replace("d", "e").replace("D", "e"))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _interrupted_message(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "no output at all"
    return f"output ends without JOB DONE after: {lines[-1][:200]}"


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
