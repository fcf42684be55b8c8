"""How to run pw.x (PwProfile), one attempt (QERunner) and one structure's recovery loop."""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ase import Atoms

from mlip_autopipec.config import DFTConfig
from mlip_autopipec.core.process import ExecutableNotFoundError, resolve_executable, run_process
from mlip_autopipec.dft.inputs import SCFParameters, write_pw_input
from mlip_autopipec.dft.parser import ErrorCode, PwResult, parse_pw_output
from mlip_autopipec.dft.recovery import RecoveryHandler

logger = logging.getLogger(__name__)

INPUT_NAME = "pw.in"
OUTPUT_NAME = "pw.out"
ERROR_NAME = "pw.err"


@dataclass(frozen=True)
class PwProfile:
    """How to launch pw.x: resolved launcher and program, as an argument list."""

    launcher: tuple[str, ...]
    command: tuple[str, ...]

    @classmethod
    def from_config(cls, dft: DFTConfig) -> PwProfile:
        launcher = tuple(dft.launcher)
        if launcher:
            launcher = (resolve_executable(launcher[0]), *launcher[1:])
        command = (resolve_executable(dft.command[0]), *dft.command[1:])
        return cls(launcher=launcher, command=command)

    def argv(self) -> list[str]:
        return [*self.launcher, *self.command, "-in", INPUT_NAME]


@dataclass
class AttemptRecord:
    number: int
    run_dir: str
    parameters: dict[str, Any]
    errors: list[str]
    message: str
    returncode: int | None
    wall_time: float
    correction: str | None = None


@dataclass
class LabelOutcome:
    """What a worker sends back for one structure: the final result and every attempt."""

    row_id: int
    result: PwResult | None
    attempts: list[AttemptRecord] = field(default_factory=list)
    reason: str | None = None

    @property
    def labeled(self) -> bool:
        return self.result is not None and self.result.is_label

    @property
    def dft_wall_time(self) -> float:
        return sum(attempt.wall_time for attempt in self.attempts)


class QERunner:
    """One pw.x attempt: write the input, run, parse. The profile says how to launch it."""

    def __init__(self, dft: DFTConfig, profile: PwProfile | None = None) -> None:
        self.dft = dft
        self.profile = profile or PwProfile.from_config(dft)

    def run(
        self, atoms: Atoms, run_dir: Path, scf: SCFParameters
    ) -> tuple[PwResult, int | None, float]:
        """Returns the parsed result, the exit code (None when killed) and the wall seconds."""
        if run_dir.exists():  # left over by a run that was killed: start clean
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        (run_dir / INPUT_NAME).write_text(write_pw_input(atoms, self.dft, scf).text)
        returncode, wall = run_process(
            self.profile.argv(), run_dir, scf.timeout, OUTPUT_NAME, ERROR_NAME
        )
        shutil.rmtree(run_dir / "tmp", ignore_errors=True)  # wavefunctions: large, not needed
        text = (run_dir / OUTPUT_NAME).read_text(errors="replace")
        result = parse_pw_output(text, returncode)
        if returncode is None:
            result = _with_error(
                result, ErrorCode.TIMEOUT_KILLED, f"killed after {scf.timeout:g} s"
            )
        return result, returncode, wall


def _with_error(result: PwResult, code: ErrorCode, message: str) -> PwResult:
    return PwResult(
        converged=False,
        scf_iterations=result.scf_iterations,
        wall_time=result.wall_time,
        errors=result.errors | {code},
        message=message,
    )


def label_structure(row_id: int, atoms: Atoms, dft: DFTConfig, run_root: Path) -> LabelOutcome:
    """Run pw.x on one structure, correcting and retrying along the recovery ladder.

    Runs on a Dask worker: plain data in, plain data out, no database.
    """
    outcome = LabelOutcome(row_id=row_id, result=None)
    try:
        runner = QERunner(dft)
    except ExecutableNotFoundError as error:
        outcome.reason = str(error)
        return outcome
    recovery = RecoveryHandler(dft)
    scf = SCFParameters.from_config(dft)
    for number in range(dft.max_retries + 1):
        run_dir = Path(run_root) / f"{row_id:06d}" / f"attempt_{number}"
        result, returncode, wall = runner.run(atoms, run_dir, scf)
        record = AttemptRecord(
            number=number,
            run_dir=str(run_dir),
            parameters=asdict(scf),
            errors=sorted(str(code) for code in result.errors),
            message=result.message,
            returncode=returncode,
            wall_time=round(wall, 3),
        )
        outcome.attempts.append(record)
        outcome.result = result
        if result.is_label:
            return outcome
        correction = recovery.correct(result.errors, scf) if dft.recovery else None
        if correction is None:
            break
        record.correction = correction.description
        scf = correction.parameters
        logger.info("structure %d attempt %d: %s", row_id, number, correction.description)
    outcome.reason = _failure_reason(outcome)
    return outcome


def _failure_reason(outcome: LabelOutcome) -> str:
    last = outcome.attempts[-1]
    codes = ",".join(last.errors) or "no label"
    tried = len(outcome.attempts)
    detail = f": {last.message}" if last.message else ""
    return f"{codes} after {tried} attempt(s){detail}"
