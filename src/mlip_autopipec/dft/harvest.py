"""Labels that pw.x finished but nobody stored: the orchestrator was killed after pw.x ended
(or, on a batch cluster, pw.x went on to the end after the kill). A restart reads them back
from the structure's run folders instead of running pw.x again."""

from __future__ import annotations

import re
from pathlib import Path

from ase import Atoms

from mlip_autopipec.config import DFTConfig
from mlip_autopipec.dft.inputs import SCFParameters, write_pw_input
from mlip_autopipec.dft.parser import parse_pw_output, parse_wall_time
from mlip_autopipec.dft.runner import (
    CRASH_NAME,
    ERROR_NAME,
    INPUT_NAME,
    MAX_SIDE_TEXT,
    OUTPUT_NAME,
    AttemptRecord,
    LabelOutcome,
)

HARVESTED = "read back from a run that finished while its result was not stored"
# pw.in lines the recovery ladder (or the timeout) may change: they do not change a label.
_NUMERICAL_KEYS = re.compile(
    r"^\s*(mixing_beta|mixing_mode|electron_maxstep|diagonalization|startingpot|startingwfc"
    r"|max_seconds)\s*=",
    re.IGNORECASE,
)
_SUBMISSION = re.compile(r"^sub_(\d+)$")
_ATTEMPT = re.compile(r"^attempt_(\d+)$")


def label_defining_lines(pw_input: str) -> list[str]:
    """The lines of a pw.x input that a label depends on: structure, k-points, settings."""
    return [line.strip() for line in pw_input.splitlines() if not _NUMERICAL_KEYS.match(line)]


def finished_label(
    row_id: int, atoms: Atoms, dft: DFTConfig, structure_dir: Path
) -> LabelOutcome | None:
    """The newest complete label among a structure's earlier attempts, or None.

    An attempt counts only when its input is this structure at these dft settings (the
    folder may predate the database) and its output is a sound, finished SCF.
    """
    expected = label_defining_lines(write_pw_input(atoms, dft, SCFParameters.from_config(dft)).text)
    for attempt_dir in _attempts_newest_first(structure_dir):
        pw_input = attempt_dir / INPUT_NAME
        if not pw_input.is_file() or attempt_dir.is_symlink():
            continue
        if label_defining_lines(pw_input.read_text(errors="replace")) != expected:
            continue
        text = _read(attempt_dir / OUTPUT_NAME)
        result = parse_pw_output(
            text,
            None,  # the exit status died with the run that started it
            crash=_read(attempt_dir / CRASH_NAME)[-MAX_SIDE_TEXT:],
            stderr=_read(attempt_dir / ERROR_NAME)[-MAX_SIDE_TEXT:],
        )
        if result.is_label:
            record = AttemptRecord(
                number=_number(attempt_dir),
                run_dir=str(attempt_dir),
                parameters={},
                errors=[],
                message=HARVESTED,
                returncode=None,
                wall_time=round(parse_wall_time(text) or 0.0, 3),
                scf_iterations=result.scf_iterations,
            )
            return LabelOutcome(row_id=row_id, result=result, attempts=[record])
    return None


def _attempts_newest_first(structure_dir: Path) -> list[Path]:
    if not structure_dir.is_dir() or structure_dir.is_symlink():
        return []
    found = [
        attempt
        for submission in structure_dir.iterdir()
        if _SUBMISSION.match(submission.name) and submission.is_dir()
        for attempt in submission.iterdir()
        if _ATTEMPT.match(attempt.name) and attempt.is_dir()
    ]
    return sorted(found, key=lambda path: (_number(path.parent), _number(path)), reverse=True)


def _number(folder: Path) -> int:
    match = _SUBMISSION.match(folder.name) or _ATTEMPT.match(folder.name)
    return int(match.group(1)) if match else -1


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""
