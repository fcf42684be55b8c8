"""WorkflowManager (the state machine of the loop) and PhaseExecutor (one facade per phase).

Iteration 0: explore -> label -> train. Iteration k: infer -> extract -> select -> label ->
train. After the loop: the final fit on every label, validation and the hand-over. Each
phase is idempotent by itself (the database and atomically written files hold its results);
`workflow.json` records which phases finished, with their wall time and typed summary, so a
killed run resumes at the first unfinished phase. After each phase the summary says whether
the loop stops.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from mlip_autopipec.errors import UserError
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.dft_check import DFTCheckSummary, dft_check_summary, refusal
from mlip_autopipec.orchestration.errors import WorkflowError
from mlip_autopipec.orchestration.exploration import explore_phase, select_phase
from mlip_autopipec.orchestration.handover import hand_over_after_run
from mlip_autopipec.orchestration.inference import extract_phase, infer_phase
from mlip_autopipec.orchestration.labeling import LabelingProgress, label_phase
from mlip_autopipec.orchestration.report import write_report
from mlip_autopipec.orchestration.state import WorkflowState, phases_of
from mlip_autopipec.orchestration.summaries import (
    FinalFitSummary,
    PhaseProgress,
    PhaseSummary,
    ValidateSummary,
)
from mlip_autopipec.orchestration.training import final_fit_pending, final_fit_phase, train_phase
from mlip_autopipec.orchestration.validation_dft import DFTReferenceAlongside
from mlip_autopipec.training.inputs import check_basis_shape
from mlip_autopipec.training.pacemaker import TrainingError

logger = logging.getLogger(__name__)

__all__ = ["PHASES", "PhaseExecutor", "WorkflowError", "WorkflowManager", "WorkflowState"]

Phase = Callable[[Campaign, int, PhaseProgress | None], PhaseSummary]
DFTCheck = Callable[[Campaign, PhaseProgress | None], DFTCheckSummary]


class PhaseObserver(Protocol):
    """Who watches the loop (the CLI): a phase starts, advances, finishes."""

    def started(self, iteration: int, name: str) -> None: ...

    def advanced(self, done: int, total: int | None, detail: str) -> None: ...

    def finished(
        self, iteration: int, name: str, summary: PhaseSummary, seconds: float
    ) -> None: ...


PHASES: dict[str, Phase] = {
    "explore": explore_phase,
    "label": label_phase,
    "train": train_phase,
    "infer": infer_phase,
    "extract": extract_phase,
    "select": select_phase,
}


class PhaseExecutor:
    """Runs one phase by name on the campaign and returns its typed summary."""

    def __init__(
        self,
        campaign: Campaign,
        phases: dict[str, Phase] | None = None,
        dft_check: DFTCheck = dft_check_summary,
    ) -> None:
        self.campaign = campaign
        self.phases = phases or PHASES
        self.dft_check = dft_check

    def run(self, name: str, iteration: int, progress: PhaseProgress | None = None) -> PhaseSummary:
        return self.phases[name](self.campaign, iteration, progress)


class WorkflowManager:
    """Runs the loop from wherever it stopped until a stopping criterion holds."""

    def __init__(
        self,
        campaign: Campaign,
        executor: PhaseExecutor | None = None,
        observer: PhaseObserver | None = None,
    ) -> None:
        self.campaign = campaign
        self.executor = executor or PhaseExecutor(campaign)
        self.state = WorkflowState(campaign.layout.state_file)
        self.observer = observer

    def run(self) -> str:
        """Raises InputError when pyace has no basis of the configured shape, DFTCheckFailed
        when the dft settings fail their check: both before any label."""
        config = self.campaign.config
        check_basis_shape(config.training, config.system.elements)
        self._check_dft()
        max_iterations = self.campaign.config.workflow.max_iterations
        for iteration in range(max_iterations):
            for name in phases_of(iteration):
                reason = self._run_phase(iteration, name).stop_reason()
                if reason is not None:
                    return self._stop(reason)
            self._write_report()
        return self._stop(f"reached workflow.max_iterations = {max_iterations}")

    def _stop(self, reason: str) -> str:
        self.state.stop(reason)
        alongside = None
        if self.campaign.config.validation.enabled and final_fit_pending(self.campaign):
            alongside = DFTReferenceAlongside(self.campaign)
        self._final_fit()
        self._validate(alongside)
        self._write_report()
        return reason

    def _check_dft(self) -> None:
        """The DFT settings check, shown like a phase; its stored result is reused until the
        dft settings change."""
        if not self.campaign.config.dft_check.enabled:
            return
        observer = self.observer
        if observer is not None:
            observer.started(0, "check dft")
        start = time.perf_counter()
        advanced = observer.advanced if observer is not None else None
        summary = self.executor.dft_check(self.campaign, advanced)
        if observer is not None:
            observer.finished(0, "check dft", summary, time.perf_counter() - start)
        if not summary.passed:
            raise refusal(summary)

    def _final_fit(self) -> None:
        """The fit from scratch on every label, shown like a phase; a failure is logged and
        the hand-over chooses among the loop's fits."""
        if self.campaign.config.training.final_maxiter == 0:
            return
        iteration = max(self.state.iterations(), default=0)
        observer = self.observer
        if observer is not None:
            observer.started(iteration, "final fit")
        start = time.perf_counter()
        advanced = observer.advanced if observer is not None else None
        try:
            summary = FinalFitSummary(fit=final_fit_phase(self.campaign, advanced))
        except TrainingError as error:
            summary = FinalFitSummary(error=str(error))
            logger.error("final fit: %s", summary.describe())
        else:
            logger.info("final fit: %s", summary.describe())
        if observer is not None:
            observer.finished(iteration, "final fit", summary, time.perf_counter() - start)

    def _validate(self, alongside: DFTReferenceAlongside | None = None) -> None:
        """The fits vs DFT and the hand-over of the best, shown like a phase; a failure is
        logged, never fatal. DFT's side comes from `alongside` when the final fit had it
        computed meanwhile."""
        if not self.campaign.config.validation.enabled:
            hand_over_after_run(self.campaign)  # the newest fit, its card says so
            return
        iteration = max(self.state.iterations(), default=0)
        observer = self.observer
        if observer is not None:
            observer.started(iteration, "validate")

        def show(counts: LabelingProgress) -> None:
            if observer is not None:
                detail = f"pw.x, {counts.failed} failed, {counts.running} running"
                observer.advanced(counts.labeled + counts.failed, counts.queued, detail)

        start = time.perf_counter()
        reference = alongside.wait(show) if alongside is not None else None
        path, potential = hand_over_after_run(self.campaign, show, reference)
        if observer is not None:
            summary = ValidateSummary(
                str(path) if path is not None else None,
                str(potential) if potential is not None else None,
            )
            observer.finished(iteration, "validate", summary, time.perf_counter() - start)

    def _write_report(self) -> None:
        """work_dir/report/index.html after every iteration; a plot that fails costs no data."""
        try:
            path = write_report(self.campaign)
        except (OSError, ValueError) as error:
            logger.warning("could not write the report: %s", error)
        else:
            logger.info("report: %s", path)

    def _run_phase(self, iteration: int, name: str) -> PhaseSummary:
        summary = self.state.summary(iteration, name)
        if summary is not None:
            return summary
        logger.info("iteration %d %s: start", iteration, name)
        if self.observer is not None:
            self.observer.started(iteration, name)
        start = time.perf_counter()
        advanced = self.observer.advanced if self.observer is not None else None
        try:
            summary = self.executor.run(name, iteration, advanced)
        except UserError as error:  # written down for `status`, then `run` ends with it
            self.state.fail(iteration, name, str(error))
            logger.error("iteration %d %s failed: %s", iteration, name, error)
            raise
        seconds = time.perf_counter() - start
        self.state.finish(iteration, name, seconds, summary)
        logger.info("iteration %d %s: %s (%.0f s)", iteration, name, summary.describe(), seconds)
        if self.observer is not None:
            self.observer.finished(iteration, name, summary, seconds)
        return summary
