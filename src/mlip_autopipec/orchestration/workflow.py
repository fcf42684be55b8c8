"""WorkflowManager (the state machine of the loop) and PhaseExecutor (one facade per phase).

Iteration 0: explore -> label -> train. Iteration k: infer -> extract -> select -> label ->
train. Each phase is idempotent by itself (the database and atomically written files hold
its results); `workflow.json` records which phases finished, with their wall time and figures,
so a killed run resumes at the first unfinished phase.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlip_autopipec.config import MLIPConfig
from mlip_autopipec.orchestration.errors import WorkflowError
from mlip_autopipec.orchestration.exploration import run_exploration, select_candidates
from mlip_autopipec.orchestration.inference import (
    extract_candidates,
    run_inference,
)
from mlip_autopipec.orchestration.labeling import label_selected
from mlip_autopipec.orchestration.training import latest_fit, train_iteration
from mlip_autopipec.training.pacemaker import TrainingResult

logger = logging.getLogger(__name__)

__all__ = ["PhaseExecutor", "WorkflowError", "WorkflowManager", "WorkflowState"]

STATE_FILE = "workflow.json"
FIRST_ITERATION_PHASES = ("explore", "label", "train")
LATER_ITERATION_PHASES = ("infer", "extract", "select", "label", "train")


def phases_of(iteration: int) -> tuple[str, ...]:
    return FIRST_ITERATION_PHASES if iteration == 0 else LATER_ITERATION_PHASES


class WorkflowState:
    """Finished phases per iteration, in work_dir/workflow.json (replaced atomically)."""

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / STATE_FILE
        self.data: dict[str, Any] = {"iterations": {}, "stop_reason": None}
        if self.path.is_file():
            self.data = json.loads(self.path.read_text())

    def phase(self, iteration: int, name: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.data["iterations"].get(str(iteration), {}).get(name)
        return result

    def finish(self, iteration: int, name: str, wall_time: float, figures: dict[str, Any]) -> None:
        entry = {"wall_time": round(wall_time, 2), **figures}
        self.data["iterations"].setdefault(str(iteration), {})[name] = entry
        self.save()

    def stop(self, reason: str) -> None:
        self.data["stop_reason"] = reason
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(temporary, self.path)


class PhaseExecutor:
    """One method per phase; each returns the figures worth keeping about it."""

    def __init__(self, config: MLIPConfig) -> None:
        self.config = config

    def run(self, name: str, iteration: int) -> dict[str, Any]:
        method: Callable[[int], dict[str, Any]] = getattr(self, name)
        return method(iteration)

    def explore(self, iteration: int) -> dict[str, Any]:
        summary = run_exploration(self.config, iteration)
        selection = summary.selection
        return {
            "generated": summary.generated,
            "filtered": summary.filtered,
            "prescreened_out": selection.prescreened if selection else 0,
            "selected": selection.selected if selection else 0,
        }

    def label(self, iteration: int) -> dict[str, Any]:
        summary = label_selected(self.config)
        return {
            "labeled": summary.labeled,
            "failed": summary.failed,
            "dft_wall_time": round(summary.dft_wall_time, 2),
        }

    def train(self, iteration: int) -> dict[str, Any]:
        fit = train_iteration(self.config, iteration)
        metrics = fit.metrics
        figures: dict[str, Any] = {
            "potential": str(fit.folder),
            "train_rmse_energy": metrics.train.rmse_energy,
            "train_rmse_forces": metrics.train.rmse_forces,
            "n_train": metrics.train.n_structures,
        }
        if metrics.test is not None:
            figures.update(
                test_rmse_energy=metrics.test.rmse_energy,
                test_rmse_forces=metrics.test.rmse_forces,
                n_test=metrics.test.n_structures,
            )
        return figures

    def infer(self, iteration: int) -> dict[str, Any]:
        summary = run_inference(self.config, iteration, self._previous_fit(iteration))
        return {
            "runs": len(summary.runs),
            "halted": summary.halted,
            "errors": sum(run.error is not None for run in summary.runs),
            "extrapolative_share": {
                f"{t:g}": round(share, 4) for t, share in summary.share_by_temperature().items()
            },
        }

    def extract(self, iteration: int) -> dict[str, Any]:
        return {
            "candidates": extract_candidates(self.config, iteration, self._previous_fit(iteration))
        }

    def select(self, iteration: int) -> dict[str, Any]:
        summary = select_candidates(self.config, iteration)
        return {"prescreened_out": summary.prescreened, "selected": summary.selected}

    def _previous_fit(self, iteration: int) -> TrainingResult:
        fit = latest_fit(self.config, before=iteration)
        if fit is None:
            raise WorkflowError(f"iteration {iteration} needs a trained potential; none found")
        return fit


@dataclass(frozen=True)
class StopDecision:
    stop: bool
    reason: str = ""


class WorkflowManager:
    """Runs the loop from wherever it stopped until a stopping criterion holds."""

    def __init__(
        self,
        config: MLIPConfig,
        executor: PhaseExecutor | None = None,
        on_phase: Callable[[int, str, str], None] | None = None,
    ) -> None:
        self.config = config
        self.executor = executor or PhaseExecutor(config)
        self.state = WorkflowState(config.workflow.work_dir)
        self.on_phase = on_phase

    def run(self) -> str:
        for iteration in range(self.config.workflow.max_iterations):
            for name in phases_of(iteration):
                decision = self._run_phase(iteration, name)
                if decision.stop:
                    self.state.stop(decision.reason)
                    return decision.reason
        reason = f"reached workflow.max_iterations = {self.config.workflow.max_iterations}"
        self.state.stop(reason)
        return reason

    def _run_phase(self, iteration: int, name: str) -> StopDecision:
        figures = self.state.phase(iteration, name)
        if figures is None:
            self._notify(iteration, name, "start")
            start = time.perf_counter()
            figures = self.executor.run(name, iteration)
            self.state.finish(iteration, name, time.perf_counter() - start, figures)
            self._notify(iteration, name, "done")
        return self.decide(iteration, name, figures)

    def decide(self, iteration: int, name: str, figures: dict[str, Any]) -> StopDecision:
        """The stopping criteria, checked after the phases that can trigger them."""
        if name == "infer" and self._converged(iteration, figures):
            return StopDecision(
                True,
                f"converged at iteration {iteration}: extrapolative share below "
                f"{self.config.workflow.max_extrapolative_fraction} at every temperature and "
                f"test force RMSE below {self.config.workflow.target_force_rmse} eV/Å",
            )
        if name == "select" and figures.get("selected", 0) == 0:
            return StopDecision(
                True,
                f"iteration {iteration}: no extracted environment survived the filters and "
                "pre-screening, so there is nothing new to label",
            )
        if name == "extract" and figures.get("candidates", 0) == 0:
            return StopDecision(
                True,
                f"iteration {iteration} produced no new candidates: MD found no environment "
                "the potential does not know (raise temperatures or steps to explore further)",
            )
        return StopDecision(False)

    def _converged(self, iteration: int, figures: dict[str, Any]) -> bool:
        shares = figures.get("extrapolative_share", {})
        limit = self.config.workflow.max_extrapolative_fraction
        if not shares or figures.get("halted", 0) or any(s >= limit for s in shares.values()):
            return False
        fit = latest_fit(self.config, before=iteration)
        if fit is None or fit.metrics.test is None:
            return False
        return fit.metrics.test.rmse_forces / 1000 < self.config.workflow.target_force_rmse

    def _notify(self, iteration: int, name: str, event: str) -> None:
        logger.info("iteration %d %s: %s", iteration, name, event)
        if self.on_phase is not None:
            self.on_phase(iteration, name, event)
