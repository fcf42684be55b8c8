"""Parity plots and error histograms of one fit, as PNG files (headless: Agg canvas, no pyplot)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mlip_autopipec.training.metrics import energy_errors_per_atom, force_errors

ENERGY_PARITY = "energy_parity.png"
FORCE_PARITY = "force_parity.png"
ERROR_HISTOGRAM = "error_histogram.png"
PLOTS = (ENERGY_PARITY, FORCE_PARITY, ERROR_HISTOGRAM)
COLORS = {"train": "tab:blue", "test": "tab:orange"}


def _new_figure(columns: int = 1) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(4.5 * columns, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(1, columns, index + 1) for index in range(columns)]
    return figure, axes


def _parity(axes: Axes, series: Mapping[str, tuple[np.ndarray, np.ndarray]], unit: str) -> None:
    everything = np.concatenate([np.concatenate(pair) for pair in series.values()])
    low, high = float(everything.min()), float(everything.max())
    margin = 0.05 * (high - low or 1.0)
    axes.plot([low - margin, high + margin], [low - margin, high + margin], "k--", lw=0.8)
    for name, (reference, predicted) in series.items():
        axes.scatter(reference, predicted, s=8, alpha=0.7, color=COLORS[name], label=name)
    axes.set_xlabel(f"DFT ({unit})")
    axes.set_ylabel(f"ACE ({unit})")
    axes.legend(loc="upper left")


def energy_parity(predictions: Mapping[str, pd.DataFrame], path: Path) -> Path:
    figure, (axes,) = _new_figure()
    series = {}
    for name, frame in predictions.items():
        atoms = frame["NUMBER_OF_ATOMS"].to_numpy(float)
        reference = frame["energy_corrected"].to_numpy(float) / atoms
        series[name] = (reference, reference + energy_errors_per_atom(frame))
    _parity(axes, series, "eV/atom")
    axes.set_title("Energy per atom (energy_corrected)")
    figure.savefig(path, dpi=110)
    return path


def force_parity(predictions: Mapping[str, pd.DataFrame], path: Path) -> Path:
    figure, (axes,) = _new_figure()
    series = {}
    for name, frame in predictions.items():
        reference = np.vstack([np.asarray(f, float) for f in frame["forces"]]).ravel()
        series[name] = (reference, reference + force_errors(frame))
    _parity(axes, series, "eV/Å")
    axes.set_title("Force components")
    figure.savefig(path, dpi=110)
    return path


def _bin_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Shared bins for train and test; never zero-width, even when all errors are equal."""
    low, high = float(values.min()), float(values.max())
    pad = 0.05 * max(high - low, 1e-3)
    return np.linspace(low - pad, high + pad, bins + 1)


def error_histogram(predictions: Mapping[str, pd.DataFrame], path: Path) -> Path:
    figure, (energy_axes, force_axes) = _new_figure(columns=2)
    energy = {name: 1e3 * energy_errors_per_atom(frame) for name, frame in predictions.items()}
    forces = {name: 1e3 * force_errors(frame) for name, frame in predictions.items()}
    for axes, errors, bins in ((energy_axes, energy, 20), (force_axes, forces, 40)):
        edges = _bin_edges(np.concatenate(list(errors.values())), bins)
        for name, values in errors.items():
            axes.hist(values, bins=edges.tolist(), alpha=0.6, color=COLORS[name], label=name)
        axes.set_ylabel("count")
        axes.legend()
    energy_axes.set_xlabel("energy error (meV/atom)")
    force_axes.set_xlabel("force component error (meV/Å)")
    figure.savefig(path, dpi=110)
    return path


def plot_fit(predictions: Mapping[str, pd.DataFrame], folder: Path) -> list[Path]:
    """All plots of one fit into `folder`; `predictions` maps 'train'/'test' to pacemaker's
    prediction frames (an empty test set is simply left out)."""
    present = {name: frame for name, frame in predictions.items() if len(frame)}
    return [
        energy_parity(present, folder / ENERGY_PARITY),
        force_parity(present, folder / FORCE_PARITY),
        error_histogram(present, folder / ERROR_HISTOGRAM),
    ]
