"""Metrics from pacemaker's prediction frames and loss history; the plots, drawn headless."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlip_autopipec.training.metrics import (
    ErrorSummary,
    FitMetrics,
    MetricsError,
    read_loss_history,
    read_metrics,
    read_predictions,
    summarize,
    write_metrics,
)
from mlip_autopipec.training.plots import PLOTS, plot_fit

# The first lines of a real pacemaker 0.4.0rc1 metrics.txt (15 functions, Si; columns trimmed).
METRICS_TXT = """\
ladder_step cycle_step iter_num loss                   e_loss_contrib         f_loss_contrib
0           0          0        5.566392761886459      0.04846040554388943    5.51793235634257
0           0          1        3.4220644272794667     1.0042464030835687     2.417818009416227
0           0          2        1.2                    0.2                    1.0
0           0          30       0.0229775875877945     0.0041776              0.0188
"""


def prediction_frame(
    energy_errors: list[float], atoms: list[int], force_error: float
) -> pd.DataFrame:
    rows = []
    for index, (error, n_atoms) in enumerate(zip(energy_errors, atoms, strict=True)):
        forces = np.random.default_rng(index).normal(size=(n_atoms, 3))
        rows.append(
            {
                "energy_corrected": -0.1 * n_atoms,
                "energy_pred": -0.1 * n_atoms + error * n_atoms,
                "forces": forces,
                "forces_pred": forces + force_error,
                "NUMBER_OF_ATOMS": n_atoms,
            }
        )
    return pd.DataFrame(rows)


def test_summary_in_mev_per_atom_and_mev_per_angstrom_component() -> None:
    frame = prediction_frame([0.003, -0.004], [2, 8], force_error=0.05)
    summary = summarize(frame)
    assert summary.n_structures == 2 and summary.n_atoms == 10
    assert summary.rmse_energy == pytest.approx(1e3 * np.sqrt((0.003**2 + 0.004**2) / 2))
    assert summary.rmse_forces == pytest.approx(50.0)


def test_non_finite_predictions_are_an_error() -> None:
    frame = prediction_frame([0.0], [2], force_error=float("nan"))
    with pytest.raises(MetricsError, match="non-finite"):
        summarize(frame)


def test_prediction_file_must_hold_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "train_pred.pckl.gzip"
    with pytest.raises(MetricsError, match="no predictions"):
        read_predictions(path)
    pd.DataFrame({"energy": [1.0]}).to_pickle(path, compression="gzip")
    with pytest.raises(MetricsError, match="energy_corrected, energy_pred"):
        read_predictions(path)


def test_loss_history_from_pacemaker_metrics_txt(tmp_path: Path) -> None:
    path = tmp_path / "metrics.txt"
    path.write_text(METRICS_TXT)
    history = read_loss_history(path)
    assert history[0] == (0, pytest.approx(5.566392761886459))
    assert history[-1] == (30, pytest.approx(0.0229775875877945))
    path.write_text("iter loss\n")
    with pytest.raises(MetricsError, match="no iterations"):
        read_loss_history(path)


def test_metrics_json_round_trip(tmp_path: Path) -> None:
    metrics = FitMetrics(
        train=ErrorSummary(25, 152, 87.5, 148.5),
        test=None,
        initial_loss=6.1,
        final_loss=0.025,
        n_iterations=30,
        fit_seconds=21.9,
        start_mode="continue",
        previous_potential="/w/potentials/iter_000/output_potential.yaml",
        reference_energies={"Si": -106.75},
        potential_section={"elements": ["Si"]},
    )
    write_metrics(metrics, tmp_path / "metrics.json")
    assert read_metrics(tmp_path / "metrics.json") == metrics
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(MetricsError, match="unreadable"):
        read_metrics(tmp_path / "broken.json")


@pytest.mark.parametrize("with_test", [True, False])
def test_plots_are_png_files(tmp_path: Path, with_test: bool) -> None:
    predictions = {"train": prediction_frame([0.01, -0.02, 0.0], [2, 8, 8], 0.1)}
    if with_test:
        predictions["test"] = prediction_frame([0.03], [8], -0.2)
    paths = plot_fit(predictions, tmp_path)
    assert [path.name for path in paths] == list(PLOTS)
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
