"""What went wrong in a pw.x run: one table of messages -> error codes (pw.x 6.x and 7.x).

Pure functions over text. Fatal errors come in three shapes, all read here:
- stdout of the first MPI rank: `Error in routine X (N):` + message (QE passes some routine
  names with spaces, so 7.x prints `Error in routine  cdiaghg (207):`);
- the CRASH file, where every rank that failed writes `task # N / from X : error # N / message`
  (errors raised only on other ranks appear nowhere else);
- `Fatal error in routine `X': message` from QE's error_mem.
Plain-text fatal lines (no routine) and program-level crashes come from a second table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class ErrorCode(StrEnum):
    """Declaration order is priority: the first code present is a run's primary failure."""

    NOT_SINGLE_POINT = "not_single_point"  # relaxation / MD / several SCF cycles: not a label
    PSEUDOPOTENTIAL = "pseudopotential"  # missing or unreadable pseudopotential file
    CHARGE_WRONG = "charge_wrong"  # e.g. fixed occupations for a metal: needs other physics
    OUT_OF_MEMORY = "out_of_memory"
    DIAGONALIZATION = "diagonalization"  # any eigensolver / LAPACK failure
    TOO_MANY_BANDS_NOT_CONVERGED = "too_many_bands_not_converged"
    CHARGE_MIXING = "charge_mixing"  # the density mixer (broyden) broke down
    OUT_OF_WALLTIME = "out_of_walltime"  # pw.x stopped itself at max_seconds
    TIMEOUT_KILLED = "timeout_killed"  # we killed it at the hard time limit
    SCF_NOT_CONVERGED = "scf_not_converged"
    STOPPED_BY_USER = "stopped_by_user"  # an EXIT file asked pw.x to stop
    CRASHED = "crashed"  # killed by a signal it did not get from us (SIGSEGV, ...)
    FATAL_ERROR = "fatal_error"  # any other `Error in routine` / CRASH entry / fatal line
    MISSING_FORCES_OR_STRESS = "missing_forces_or_stress"  # converged, but no forces or stress
    INTERRUPTED = "interrupted"  # output ends early with no fatal message anywhere
    NONZERO_EXIT = "nonzero_exit"
    UNPARSABLE = "unparsable"  # converged, but energy/forces/stress could not be read


PRIORITY: tuple[ErrorCode, ...] = tuple(ErrorCode)

# Codes that explain why a run ended early; with one of them the run is not `interrupted`.
EXPLAINS_EARLY_END = frozenset(PRIORITY[: PRIORITY.index(ErrorCode.FATAL_ERROR) + 1])


@dataclass(frozen=True)
class FatalError:
    routine: str
    number: int
    message: str
    source: str  # "stdout", "CRASH" or "stderr"

    def describe(self) -> str:
        return f"{self.routine} ({self.number}): {self.message}" if self.routine else self.message


_STDOUT_ERROR = re.compile(
    r"Error in routine\s+(\S+)\s*\(\s*(-?\d+)\s*\):[ \t]*\n[ \t]*(.*)", re.IGNORECASE
)
_CRASH_ERROR = re.compile(
    r"from\s+(\S+)\s*:\s*error\s*#\s*(-?\d+)[ \t]*\n[ \t]*(.*)", re.IGNORECASE
)
_ERROR_MEM = re.compile(r"Fatal error in routine `([^']+)':\s*(.*)")


def fatal_errors(stdout: str, crash: str = "") -> list[FatalError]:
    """Every `errore` report in stdout and CRASH, de-duplicated, stdout first."""
    found: list[FatalError] = []
    for source, text, pattern in (
        ("stdout", stdout, _STDOUT_ERROR),
        ("CRASH", crash, _CRASH_ERROR),
    ):
        for match in pattern.finditer(text):
            found.append(
                FatalError(match.group(1), int(match.group(2)), match.group(3).strip(), source)
            )
    for match in _ERROR_MEM.finditer(stdout):
        found.append(FatalError(match.group(1).strip(), 1, match.group(2).strip(), "stdout"))
    unique: dict[tuple[str, str], FatalError] = {}
    for error in found:
        unique.setdefault((error.routine.lower(), error.message), error)
    return list(unique.values())


def _table(*rows: tuple[str, ErrorCode]) -> tuple[tuple[re.Pattern[str], ErrorCode], ...]:
    return tuple((re.compile(pattern, re.IGNORECASE), code) for pattern, code in rows)


# What a fatal error's message says, checked before its routine (first match wins).
MESSAGE_CODES = _table(
    (r"cannot allocate|out of memory|not enough memory|allocation fail", ErrorCode.OUT_OF_MEMORY),
    (r"too many bands are not converged", ErrorCode.TOO_MANY_BANDS_NOT_CONVERGED),
    (
        r"cholesky|not positive definite|eigenvectors failed to converge|"
        r"(?:zhegv|zheev|dsyev|dsygv|zhpev)\w*\s+failed|qr\(X, 0\) failed",
        ErrorCode.DIAGONALIZATION,
    ),
    (r"charge is wrong|wrong charge", ErrorCode.CHARGE_WRONG),
    (r"pseudo\S*\s+file|\.upf\b.*not found|not found.*\.upf\b", ErrorCode.PSEUDOPOTENTIAL),
)

# Which routine raised it: eigensolvers of every family, the mixer, pseudopotential readers.
ROUTINE_CODES = _table(
    (
        r"^(?:laxlib_)?p?[cr]diag\w*$|^p?[cr]egterg\w*$|^[cr]cgdiagg\w*$|^[cr]rmmdiagg\w*$|"
        r"^[cr]diisg\w*$|^ppcg\w*$|^paro\w*$|^rotate_wfc\w*$|^rotate_xpsi\w*$|^diag_bands\w*$|"
        r"^(?:zhegv|zheev|dsyev|dsygv|zhpev)\w*$|^qr\w*$|^cholesky\w*$|^[cr]_bands\w*$",
        ErrorCode.DIAGONALIZATION,
    ),
    (r"^broyden$|^mix_rho$|^approx_screening\w*$", ErrorCode.CHARGE_MIXING),
    (r"^readpp$|^read_upf\w*$|^read_ps\w*$|^upflib\w*$|^import_upf$", ErrorCode.PSEUDOPOTENTIAL),
)


def classify_fatal(error: FatalError) -> ErrorCode:
    for pattern, code in MESSAGE_CODES:
        if pattern.search(error.message):
            return code
    routine = error.routine.strip().lower()
    for pattern, code in ROUTINE_CODES:
        if pattern.search(routine):
            return code
    return ErrorCode.FATAL_ERROR


# Fatal lines without a routine: pw.x's own plain-text stops, and the runtime's last words.
PLAIN_TEXT_CODES = _table(
    (r"convergence NOT achieved", ErrorCode.SCF_NOT_CONVERGED),
    (r"Maximum CPU time exceeded", ErrorCode.OUT_OF_WALLTIME),
    (r"Program stopped by user request", ErrorCode.STOPPED_BY_USER),
    (
        r"cannot allocate memory|out of memory|std::bad_alloc|"
        r"allocation would exceed memory limit|insufficient virtual memory",
        ErrorCode.OUT_OF_MEMORY,
    ),
    (
        r"Program received signal SIG\w+|Segmentation fault|Bus error|"
        r"killed by signal|BAD TERMINATION",
        ErrorCode.CRASHED,
    ),
    (
        r"Fortran runtime error|forrtl: severe|history already reset at previous step: stopping",
        ErrorCode.FATAL_ERROR,
    ),
)

# A relaxation, MD or several SCF cycles: whatever it converged to, it is not a label of
# the input structure.
NOT_SINGLE_POINT_MARKERS = re.compile(
    r"BFGS Geometry Optimization|Begin final coordinates|Molecular Dynamics Calculation|"
    r"Entering Dynamics|Damped Dynamics|The maximum number of steps has been reached|"
    r"bfgs converged in|Final (?:energy|enthalpy)\s*=",
    re.IGNORECASE,
)
_FINAL_ENERGY_LINE = re.compile(r"^!\s+total energy\s*=", re.MULTILINE)
_MPI_ABORT = re.compile(r"MPI_ABORT was invoked", re.IGNORECASE)
_STOPPING_LINE = re.compile(
    r"^[ \t]*(\S[^\n]*?):?[ \t]+stopping[ \t]*(?:\.\.\.)?[ \t]*$", re.MULTILINE
)


def not_single_point(stdout: str) -> str | None:
    """Why this output is not one SCF of the input structure, or None when it is."""
    marker = NOT_SINGLE_POINT_MARKERS.search(stdout)
    if marker:
        return f"not a single-point SCF: output shows '{marker.group(0).strip()}'"
    count = len(_FINAL_ENERGY_LINE.findall(stdout))
    if count > 1:
        return f"not a single-point SCF: {count} final ('!') total energies"
    return None


def plain_text_errors(text: str) -> list[tuple[ErrorCode, str]]:
    """Codes from fatal lines that name no routine, each with the line that showed it."""
    found = []
    for pattern, code in PLAIN_TEXT_CODES:
        match = pattern.search(text)
        if match:
            found.append((code, _line_around(text, match.start(), match.end())))
    return found


def fallback_fatal_line(text: str) -> str | None:
    """A fatal line not in any table: `... stopping` or an MPI abort without a message."""
    stopping = [m for m in _STOPPING_LINE.finditer(text) if m.group(1).strip() != ""]
    if stopping:
        return _line_around(text, stopping[-1].start(), stopping[-1].end())
    abort = _MPI_ABORT.search(text)
    return _line_around(text, abort.start(), abort.end()) if abort else None


def _line_around(text: str, start: int, end: int) -> str:
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    return text[line_start : line_end if line_end >= 0 else None].strip()


def ordered(codes: set[ErrorCode] | frozenset[ErrorCode]) -> list[ErrorCode]:
    """Codes by priority: the first is the primary failure."""
    return [code for code in PRIORITY if code in codes]
