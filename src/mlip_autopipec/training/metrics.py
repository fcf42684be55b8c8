"""Fit quality from pacemaker's outputs: RMSEs from its predictions, loss history from metrics.txt.

Units follow pacemaker's own summary: energy RMSE in meV/atom on energy_corrected, force RMSE in
meV/Å per Cartesian component (pacemaker's `rmse_f_comp`, the "Force, meV/A" of its log).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlip_autopipec.errors import UserError

TRAIN_PREDICTIONS = "train_pred.pckl.gzip"
TEST_PREDICTIONS = "test_pred.pckl.gzip"
LOSS_HISTORY = "metrics.txt"


class MetricsError(UserError, ValueError):
    """pacemaker's outputs are missing or do not hold what we need."""


@dataclass(frozen=True)
class ErrorSummary:
    """RMSEs of one data set: energy per atom (meV/atom), force components (meV/Å)."""

    n_structures: int
    n_atoms: int
    rmse_energy: float
    rmse_forces: float


@dataclass(frozen=True)
class FitMetrics:
    """What one training iteration achieved; written to metrics.json next to the potential."""

    train: ErrorSummary
    test: ErrorSummary | None
    initial_loss: float
    final_loss: float
    n_iterations: int
    fit_seconds: float
    start_mode: str
    previous_potential: str | None
    reference_energies: dict[str, float]
    potential_section: dict[str, Any]
    start_reason: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FitMetrics:
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in raw.items() if key in known}
        values["train"] = ErrorSummary(**raw["train"])
        values["test"] = ErrorSummary(**raw["test"]) if raw.get("test") else None
        return cls(**values)


def read_predictions(path: Path) -> pd.DataFrame:
    """pacemaker's *_pred.pckl.gzip: reference and predicted energy_corrected and forces."""
    if not path.is_file():
        raise MetricsError(f"{path}: pacemaker wrote no predictions")
    frame = pd.read_pickle(path, compression="gzip")
    needed = {"energy_corrected", "energy_pred", "forces", "forces_pred", "NUMBER_OF_ATOMS"}
    missing = needed - set(frame.columns)
    if missing:
        raise MetricsError(f"{path}: columns {', '.join(sorted(missing))} missing")
    return frame


def energy_errors_per_atom(frame: pd.DataFrame) -> np.ndarray:
    """Predicted minus reference energy per atom (eV/atom), one value per structure."""
    difference = frame["energy_pred"].to_numpy(float) - frame["energy_corrected"].to_numpy(float)
    return np.asarray(difference / frame["NUMBER_OF_ATOMS"].to_numpy(float))


def force_errors(frame: pd.DataFrame) -> np.ndarray:
    """Predicted minus reference force components (eV/Å), flattened over all atoms."""
    predicted = np.vstack([np.asarray(f, float) for f in frame["forces_pred"]])
    reference = np.vstack([np.asarray(f, float) for f in frame["forces"]])
    return np.asarray((predicted - reference).ravel())


def summarize(frame: pd.DataFrame) -> ErrorSummary:
    energy, forces = energy_errors_per_atom(frame), force_errors(frame)
    summary = ErrorSummary(
        n_structures=len(frame),
        n_atoms=int(frame["NUMBER_OF_ATOMS"].sum()),
        rmse_energy=1e3 * float(np.sqrt(np.mean(energy**2))),
        rmse_forces=1e3 * float(np.sqrt(np.mean(forces**2))),
    )
    if not (math.isfinite(summary.rmse_energy) and math.isfinite(summary.rmse_forces)):
        raise MetricsError("the fitted potential predicts non-finite energies or forces")
    return summary


def read_loss_history(path: Path) -> list[tuple[int, float]]:
    """(iteration, total loss) per line of pacemaker's metrics.txt, in the order written."""
    if not path.is_file():
        raise MetricsError(f"{path}: pacemaker wrote no loss history")
    lines = path.read_text().splitlines()
    if len(lines) < 2:
        raise MetricsError(f"{path}: no iterations recorded")
    header = lines[0].split()
    try:
        iteration_column, loss_column = header.index("iter_num"), header.index("loss")
    except ValueError:
        raise MetricsError(f"{path}: no iter_num/loss columns in {header}") from None
    history = []
    for line in lines[1:]:
        values = line.split()
        if len(values) > max(iteration_column, loss_column):
            history.append((int(values[iteration_column]), float(values[loss_column])))
    return history


def write_metrics(metrics: FitMetrics, path: Path) -> None:
    path.write_text(metrics.to_json())


def read_metrics(path: Path) -> FitMetrics:
    try:
        return FitMetrics.from_json(path.read_text())
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise MetricsError(f"{path}: unreadable metrics ({error})") from None
