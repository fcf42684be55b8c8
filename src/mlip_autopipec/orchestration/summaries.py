"""What each phase returns: a frozen summary that writes itself to workflow.json, reads itself
back, and knows whether the loop should stop after it (jobflow's `Response(stop_jobflow=...)`).

The JSON keys are the ones `workflow.json` has always held, so a campaign started by an
earlier version resumes and reports as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol, Self

PhaseProgress = Callable[[int, int | None, str], None]
"""Called by a phase as it advances: (done, total or None when unknown, a short detail)."""


class PhaseSummary(Protocol):
    def to_json(self) -> dict[str, Any]: ...

    def stop_reason(self) -> str | None: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class _Summary:
    """JSON round trip for flat dataclasses; unknown keys (e.g. wall_time) are ignored."""

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def stop_reason(self) -> str | None:
        return None

    def describe(self) -> str:
        """The phase's figures in one line, for people watching `run`."""
        return ", ".join(f"{key} {value}" for key, value in self.to_json().items())


@dataclass(frozen=True)
class ExploreSummary(_Summary):
    generated: int = 0
    filtered: int = 0
    prescreened_out: int = 0
    selected: int = 0
    method: str | None = None  # how the picks were chosen: maxvol, fps, random or kmedoids
    anchors: int = 0  # near-equilibrium anchors sent to DFT besides the picks (iteration 0)
    by_composition: dict[str, int] = field(default_factory=dict)  # sent to DFT, per formula

    def describe(self) -> str:
        return (
            f"generated {self.generated}, filtered {self.filtered}, "
            f"pre-screened out {self.prescreened_out}, selected {self.selected}"
            + (f" by {self.method}" if self.method else "")
            + (f", plus {self.anchors} anchors" if self.anchors else "")
            + per_composition(self.by_composition)
        )


def per_composition(counts: dict[str, int]) -> str:
    """ "; to DFT per composition: Ge 3, Si 2, Si0.5Ge0.5 3" when there are several."""
    if len(counts) < 2:
        return ""
    return "; to DFT per composition: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))


@dataclass(frozen=True)
class LabelSummary(_Summary):
    labeled: int = 0
    failed: int = 0
    dft_wall_time: float = 0.0
    failed_by_kind: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.failed_by_kind.items()))
        failed = f"{self.failed} failed" + (f" ({kinds})" if kinds else "")
        return f"labeled {self.labeled}, {failed}; pw.x time {self.dft_wall_time:.0f} s in total"


@dataclass(frozen=True)
class TrainSummary(_Summary):
    potential: str = ""
    train_rmse_energy: float | None = None
    train_rmse_forces: float | None = None
    n_train: int = 0
    test_rmse_energy: float | None = None  # the random test split (meV/atom)
    test_rmse_forces: float | None = None  # the random test split (meV/Å)
    n_test: int | None = None
    # The previous fit on the structures labeled since it was trained, measured before this fit.
    new_data_rmse_energy: float | None = None
    new_data_rmse_forces: float | None = None
    n_new_data: int | None = None
    # This fit on workflow.validation_set.
    validation_rmse_energy: float | None = None
    validation_rmse_forces: float | None = None
    n_validation: int | None = None
    # This fit on the near-equilibrium anchors it was trained on (a group of its own).
    anchor_rmse_energy: float | None = None
    anchor_rmse_forces: float | None = None
    n_anchors: int | None = None

    def describe(self) -> str:
        parts = [f"train F RMSE {self.train_rmse_forces or 0:.1f} meV/Å on {self.n_train}"]
        if self.anchor_rmse_energy is not None:
            parts.append(
                f"anchors E {self.anchor_rmse_energy:.1f} meV/atom, "
                f"F {self.anchor_rmse_forces or 0:.1f} meV/Å on {self.n_anchors}"
            )
        if self.test_rmse_forces is None:
            parts.append("no test-split structure yet")
        else:
            parts.append(f"test split {self.test_rmse_forces:.1f} on {self.n_test}")
        if self.new_data_rmse_forces is not None:
            parts.append(f"new data {self.new_data_rmse_forces:.1f} on {self.n_new_data}")
        if self.validation_rmse_forces is not None:
            parts.append(f"validation {self.validation_rmse_forces:.1f} on {self.n_validation}")
        return "; ".join(parts)


@dataclass(frozen=True)
class InferSummary(_Summary):
    """MD of one iteration, with what convergence is judged against (so it reads back alone)."""

    iteration: int = 0
    runs: int = 0
    halted: int = 0
    errors: int = 0
    extrapolative_share: dict[str, float] = field(default_factory=dict)
    engine: str | None = None
    fit_test_rmse_forces: float | None = None  # meV/Å, test split: shown, not judged on
    max_extrapolative_fraction: float | None = None
    target_force_rmse: float | None = None  # eV/Å
    # meV/Å: the validation-set force RMSE of the potential the MD ran with, else the newest
    # error on new data; what convergence is judged on (None: not converged).
    judged_rmse_forces: float | None = None
    judged_by: str | None = None
    runs_by_start: dict[str, int] = field(default_factory=dict)  # bulk / vacancy / surface
    restarts: int = 0  # segments started again from a last trusted frame after a halt
    # per start kind: "volume Å³/atom, pressure GPa" of the start structure (the potential's)
    start_conditions: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        shares = " ".join(f"{t} K {s:.2f}" for t, s in self.extrapolative_share.items())
        starts = ", ".join(
            f"{kind} {n}"
            + (f" at {self.start_conditions[kind]}" if kind in self.start_conditions else "")
            for kind, n in self.runs_by_start.items()
        )
        return (
            f"{self.runs} MD runs ({self.engine or 'ase'}{'; ' + starts if starts else ''}), "
            f"{self.halted} halted at gamma_upper, {self.restarts} restarts, "
            f"{self.errors} failed; extrapolative share {shares or '-'}"
        )

    def stop_reason(self) -> str | None:
        if not self._converged():
            return None
        return (
            f"converged at iteration {self.iteration}: extrapolative share below "
            f"{self.max_extrapolative_fraction} at every temperature and "
            f"{self.judged_by or 'honest'} force RMSE below {self.target_force_rmse} eV/Å"
        )

    def _converged(self) -> bool:
        limit, target, judged = (
            self.max_extrapolative_fraction,
            self.target_force_rmse,
            self._judged_force_rmse(),
        )
        if limit is None or target is None or judged is None:
            return False
        shares = self.extrapolative_share.values()
        if not shares or self.halted or any(share >= limit for share in shares):
            return False
        return judged / 1000 < target

    def _judged_force_rmse(self) -> float | None:
        """The honest figure; an entry written before there was one keeps its old verdict
        (the test split), so a campaign that converged then is not reopened on resume."""
        if self.judged_by is None and self.judged_rmse_forces is None:
            return self.fit_test_rmse_forces
        return self.judged_rmse_forces


@dataclass(frozen=True)
class ExtractSummary(_Summary):
    iteration: int = 0
    candidates: int = 0

    def describe(self) -> str:
        return f"{self.candidates} new candidate environments"

    def stop_reason(self) -> str | None:
        if self.candidates:
            return None
        return (
            f"iteration {self.iteration} produced no new candidates: MD found no environment "
            "the potential does not know (raise temperatures or steps to explore further)"
        )


@dataclass(frozen=True)
class SelectSummary(_Summary):
    iteration: int = 0
    prescreened_out: int = 0
    selected: int = 0
    method: str | None = None
    by_composition: dict[str, int] = field(default_factory=dict)  # picks per formula
    topped_up: int = 0  # of `selected`, picked among earlier iterations' unpicked candidates

    def describe(self) -> str:
        by = f" by {self.method}" if self.method else ""
        picks = per_composition(self.by_composition)
        earlier = f" ({self.topped_up} from earlier candidates)" if self.topped_up else ""
        return (
            f"pre-screened out {self.prescreened_out}, selected {self.selected}{by}{earlier}{picks}"
        )

    def stop_reason(self) -> str | None:
        if self.selected:
            return None
        maxvol = " and grew the potential's active set" if self.method == "maxvol" else ""
        return (
            f"iteration {self.iteration}: no extracted environment, nor any candidate left by "
            f"earlier iterations, survived the filters and pre-screening{maxvol}, so there is "
            "nothing new to label"
        )


@dataclass(frozen=True)
class ValidateSummary(_Summary):
    """The final potential vs DFT after the loop stopped (shown like a phase, never stored)."""

    result: str | None = None  # the iter_NNN.json written, None when it failed
    potential: str | None = None  # the hand-over folder (work_dir/potential)

    def describe(self) -> str:
        handed = f"; the potential to use: {self.potential}" if self.potential else ""
        if self.result is None:
            return "failed (the campaign's results are kept; see the log)" + handed
        return f"potential vs DFT in {self.result}{handed}"


@dataclass(frozen=True)
class FinalFitSummary(_Summary):
    """The fit from scratch on every label after the loop (shown like a phase, never stored)."""

    fit: TrainSummary | None = None
    error: str | None = None  # why it failed

    def describe(self) -> str:
        if self.fit is None:
            return f"failed ({self.error}); the hand-over chooses among the loop's fits"
        return f"{self.fit.potential}: {self.fit.describe()}"


SUMMARY_TYPES: dict[str, type[_Summary]] = {
    "explore": ExploreSummary,
    "label": LabelSummary,
    "train": TrainSummary,
    "infer": InferSummary,
    "extract": ExtractSummary,
    "select": SelectSummary,
}


def read_summary(name: str, iteration: int, data: dict[str, Any]) -> _Summary:
    """A summary as stored in workflow.json; the iteration comes from where it was stored."""
    summary_type = SUMMARY_TYPES[name]
    if "iteration" in {f.name for f in fields(summary_type)}:
        data = {**data, "iteration": iteration}
    return summary_type.from_json(data)
