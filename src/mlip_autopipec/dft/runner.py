"""How to run pw.x (PwProfile), one attempt (QERunner) and one structure's recovery loop."""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ase import Atoms

from mlip_autopipec.config import DFTConfig
from mlip_autopipec.core.files import UnsafeFolderError, fresh_folder
from mlip_autopipec.core.process import ExecutableNotFoundError, resolve_executable, run_process
from mlip_autopipec.dft.inputs import OUTDIR, PREFIX, Restart, SCFParameters, write_pw_input
from mlip_autopipec.dft.parser import PwResult, parse_pw_output
from mlip_autopipec.dft.recovery import Correction, RecoveryHandler

logger = logging.getLogger(__name__)

INPUT_NAME = "pw.in"
OUTPUT_NAME = "pw.out"
ERROR_NAME = "pw.err"
CRASH_NAME = "CRASH"  # written by pw.x's errore on every MPI rank that fails
MAX_SIDE_TEXT = 200_000  # characters of CRASH / stderr kept for the parser
THREAD_VARIABLE = "OMP_NUM_THREADS"


@dataclass(frozen=True)
class PwProfile:
    """How to launch pw.x: resolved launcher and program, as an argument list, and its
    environment. OpenMP threads are pinned to 1 (repeatable results, no oversubscription of
    MPI ranks) unless the launcher sets OMP_NUM_THREADS itself (`env OMP_NUM_THREADS=4 ...`,
    `mpirun -x OMP_NUM_THREADS=4 ...`)."""

    launcher: tuple[str, ...]
    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ((THREAD_VARIABLE, "1"),)

    @classmethod
    def from_config(cls, dft: DFTConfig) -> PwProfile:
        launcher = tuple(dft.launcher)
        if launcher:
            launcher = (resolve_executable(launcher[0]), *launcher[1:])
        command = (resolve_executable(dft.command[0]), *dft.command[1:])
        threads_set = any(THREAD_VARIABLE in argument for argument in launcher)
        env = () if threads_set else ((THREAD_VARIABLE, "1"),)
        return cls(launcher=launcher, command=command, env=env)

    def argv(self) -> list[str]:
        return [*self.launcher, *self.command, "-in", INPUT_NAME]


@dataclass
class AttemptRecord:
    """One pw.x attempt as stored with the structure (row data `dft_attempts`)."""

    number: int
    run_dir: str
    parameters: dict[str, Any]
    errors: list[str]  # error codes, primary first
    message: str
    returncode: int | None
    wall_time: float
    scf_iterations: int = 0
    restart_from: str | None = None  # e.g. "attempt_0 charge_density"; None: from scratch
    correction: str | None = None  # what the next attempt changed ...
    correction_for: str | None = None  # ... and which error code it answered


@dataclass
class LabelOutcome:
    """What a worker sends back for one structure: the final result and every attempt.

    `failure_kind` is the primary error code of a failed label and `error_codes` all codes of
    its last attempt (primary first): data, so nobody has to split `reason`, the sentence.
    """

    row_id: int
    result: PwResult | None
    attempts: list[AttemptRecord] = field(default_factory=list)
    reason: str | None = None
    failure_kind: str | None = None
    error_codes: list[str] = field(default_factory=list)

    @property
    def labeled(self) -> bool:
        return self.result is not None and self.result.is_label

    @property
    def dft_wall_time(self) -> float:
        return sum(attempt.wall_time for attempt in self.attempts)


@dataclass(frozen=True)
class AttemptRun:
    result: PwResult
    returncode: int | None
    wall_time: float
    restart: Restart  # what the attempt actually started from


class QERunner:
    """One pw.x attempt: write the input, run, parse. The profile says how to launch it."""

    def __init__(self, dft: DFTConfig, profile: PwProfile | None = None) -> None:
        self.dft = dft
        self.profile = profile or PwProfile.from_config(dft)

    def run(
        self,
        atoms: Atoms,
        run_dir: Path,
        scf: SCFParameters,
        restart: Restart = Restart.SCRATCH,
        previous: Path | None = None,
    ) -> AttemptRun:
        """Run in a fresh `run_dir`; a restart moves the previous attempt's outdir in first.

        The folder is emptied first, so nothing (a CRASH file above all) survives from a run
        that was killed earlier; only the outdir moves between attempts, never a CRASH.
        """
        fresh_folder(run_dir)
        restart = _take_restart_files(previous, run_dir, restart)
        (run_dir / INPUT_NAME).write_text(write_pw_input(atoms, self.dft, scf, restart).text)
        returncode, wall = run_process(
            self.profile.argv(),
            run_dir,
            scf.timeout,
            OUTPUT_NAME,
            ERROR_NAME,
            dict(self.profile.env),
        )
        result = parse_pw_output(
            _read(run_dir / OUTPUT_NAME, None),
            returncode,
            crash=_read(run_dir / CRASH_NAME, MAX_SIDE_TEXT),
            stderr=_read(run_dir / ERROR_NAME, MAX_SIDE_TEXT),
            killed_after=scf.timeout if returncode is None else None,
        )
        return AttemptRun(result, returncode, wall, restart)


def _read(path: Path, limit: int | None) -> str:
    if not path.is_file():
        return ""
    text = path.read_text(errors="replace")
    return text if limit is None else text[-limit:]


def restart_files_present(outdir: Path, restart: Restart) -> Restart:
    """The restart that the files in `outdir` allow: FULL needs wavefunctions too."""
    save = outdir / f"{PREFIX}.save"
    density = any(save.glob("charge-density.*"))
    if restart is Restart.SCRATCH or not density:
        return Restart.SCRATCH
    wavefunctions = any(outdir.glob(f"{PREFIX}.wfc*")) or any(save.glob("wfc*"))
    if restart is Restart.FULL and not wavefunctions:
        return Restart.CHARGE_DENSITY
    return restart


def _take_restart_files(previous: Path | None, run_dir: Path, restart: Restart) -> Restart:
    if previous is None:
        return Restart.SCRATCH
    outdir = previous / OUTDIR
    possible = restart_files_present(outdir, restart)
    if possible is not Restart.SCRATCH:
        shutil.move(str(outdir), str(run_dir / OUTDIR))
    return possible


def label_structure(
    row_id: int, atoms: Atoms, dft: DFTConfig, structure_dir: Path, restart: bool = True
) -> LabelOutcome:
    """Run pw.x on one structure, correcting and retrying along the recovery ladder.

    Attempt K runs in `structure_dir/attempt_K`. A corrected attempt starts from the previous
    attempt's charge density (and wavefunctions) where the correction allows it, unless
    `restart` is False. Runs on a Dask worker: plain data in, plain data out, no database.
    """
    outcome = LabelOutcome(row_id=row_id, result=None)
    try:
        runner = QERunner(dft)
    except ExecutableNotFoundError as error:
        return _failed(outcome, str(error), "executable_not_found")
    recovery = RecoveryHandler(dft)
    scf = SCFParameters.from_config(dft)
    correction: Correction | None = None
    previous: Path | None = None
    try:
        for number in range(dft.max_retries + 1):
            run_dir = Path(structure_dir) / f"attempt_{number}"
            wanted = correction.restart if correction and restart else Restart.SCRATCH
            try:
                run = runner.run(atoms, run_dir, scf, wanted, previous)
            except UnsafeFolderError as error:
                return _failed(outcome, str(error), "unsafe_run_folder")
            _remove_outdir(previous)
            outcome.attempts.append(_record(number, run_dir, scf, run, previous))
            outcome.result = run.result
            if run.result.is_label:
                return outcome
            correction = recovery.correct(run.result.errors, scf) if dft.recovery else None
            if correction is None:
                break
            outcome.attempts[-1].correction = correction.description
            outcome.attempts[-1].correction_for = str(correction.code)
            scf, previous = correction.parameters, run_dir
            logger.info("structure %d attempt %d: %s", row_id, number, correction.description)
    finally:
        for attempt in outcome.attempts:
            _remove_outdir(Path(attempt.run_dir))  # wavefunctions: large, no longer needed
    last = outcome.result
    kind = last.failure_kind if last is not None else None
    outcome.error_codes = last.codes if last is not None else []
    return _failed(outcome, _failure_reason(outcome), kind or "no_label")


def _record(
    number: int, run_dir: Path, scf: SCFParameters, run: AttemptRun, previous: Path | None
) -> AttemptRecord:
    restart_from = None
    if previous is not None and run.restart is not Restart.SCRATCH:
        restart_from = f"{previous.name} {run.restart}"
    return AttemptRecord(
        number=number,
        run_dir=str(run_dir),
        parameters=asdict(scf),
        errors=run.result.codes,
        message=run.result.message,
        returncode=run.returncode,
        wall_time=round(run.wall_time, 3),
        scf_iterations=run.result.scf_iterations,
        restart_from=restart_from,
    )


def _remove_outdir(run_dir: Path | None) -> None:
    if run_dir is not None:
        shutil.rmtree(run_dir / OUTDIR, ignore_errors=True)


def _failed(outcome: LabelOutcome, reason: str, kind: str) -> LabelOutcome:
    outcome.reason = reason
    outcome.failure_kind = kind
    if not outcome.error_codes:
        outcome.error_codes = [kind]
    return outcome


def _failure_reason(outcome: LabelOutcome) -> str:
    last = outcome.attempts[-1]
    codes = ",".join(last.errors) or "no label"
    tried = len(outcome.attempts)
    detail = f": {last.message}" if last.message else ""
    return f"{codes} after {tried} attempt(s){detail}"
