"""`mlip-autopipe report`: plots and a self-contained HTML summary in work_dir/report/."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mlip_autopipec.core.files import write_atomically  # noqa: E402
from mlip_autopipec.orchestration.campaign import Campaign  # noqa: E402
from mlip_autopipec.orchestration.inference import SUMMARY_FILE, load_summary  # noqa: E402
from mlip_autopipec.orchestration.report_dft_check import dft_check_section  # noqa: E402
from mlip_autopipec.orchestration.report_validation import validation_section  # noqa: E402
from mlip_autopipec.orchestration.status import IterationRow, iteration_rows, stop_reason  # noqa: E402
from mlip_autopipec.orchestration.training import finished_fits  # noqa: E402


def learning_curve_series(rows: list[IterationRow]) -> dict[str, list[tuple[int, float]]]:
    """(labeled structures the fit was trained on, force RMSE) per curve. Error on new data is
    the main one: the fit of iteration k-1 (trained on what was labeled up to k-1) on the batch
    labeled in iteration k, which it had never seen."""
    trained_on = {r.iteration: r.total_labeled for r in rows}
    series: dict[str, list[tuple[int, float]]] = {
        "error on new data": [],
        "validation set": [],
        "test split": [],
        "train": [],
    }
    for r in rows:
        if r.new_data_rmse_forces is not None and r.iteration - 1 in trained_on:
            series["error on new data"].append(
                (trained_on[r.iteration - 1], r.new_data_rmse_forces)
            )
        for name, value in (
            ("validation set", r.validation_rmse_forces),
            ("test split", r.test_rmse_forces),
            ("train", r.train_rmse_forces),
        ):
            if value is not None:
                series[name].append((r.total_labeled, value))
    return {name: points for name, points in series.items() if points}


_CURVE_STYLE: dict[str, tuple[str, float]] = {  # format, line width
    "error on new data": ("o-", 2.5),
    "validation set": ("s-", 1.5),
    "test split": ("^--", 1.0),
    "train": ("v:", 1.0),
}


def learning_curve(rows: list[IterationRow], path: Path) -> Path | None:
    series = learning_curve_series(rows)
    if not series:
        return None
    figure, axis = plt.subplots(figsize=(5, 3.5))
    for name, points in series.items():
        fmt, width = _CURVE_STYLE[name]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        axis.plot(xs, ys, fmt, linewidth=width, label=name)
    axis.set_xlabel("labeled structures the fit was trained on")
    axis.set_ylabel("force RMSE (meV/Å)")
    axis.set_title("Learning curve")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def gamma_distributions(campaign: Campaign, path: Path) -> Path | None:
    config = campaign.config
    series = {}
    layout = campaign.layout
    for _, iteration_dir in layout.iteration_folders(layout.md_root):
        if (iteration_dir / SUMMARY_FILE).is_file():
            summary = load_summary(iteration_dir)
            series[summary.iteration] = [g for run in summary.runs for g in run.max_gamma_per_check]
    if not any(series.values()):
        return None
    figure, axis = plt.subplots(figsize=(5, 3.5))
    for iteration, gammas in series.items():
        if gammas:
            axis.hist(gammas, bins=30, histtype="step", label=f"iteration {iteration}")
    axis.axvline(config.inference.gamma_lower, color="k", linestyle="--", label="gamma_lower")
    axis.axvline(config.inference.gamma_upper, color="r", linestyle="--", label="gamma_upper")
    axis.set_xlabel("max extrapolation grade per MD check")
    axis.set_ylabel("count")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _image_tag(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img src="data:image/png;base64,{encoded}"><figcaption>{html.escape(path.name)}</figcaption></figure>'  # noqa: E501


def _table(rows: list[IterationRow]) -> str:
    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    lines = [
        "<table><tr><th>iteration</th><th>labeled</th><th>failed DFT</th><th>DFT total</th>"
        "<th>train F RMSE (meV/Å)</th><th>test-split F RMSE (meV/Å)</th>"
        "<th>test-split E RMSE (meV/atom)</th><th>error on new data F (meV/Å)</th>"
        "<th>error on new data E (meV/atom)</th><th>validation F RMSE (meV/Å)</th>"
        "<th>extrapolative share</th><th>wall time (s)</th></tr>"
    ]
    for r in rows:
        shares = ", ".join(f"{t} K: {s:.2f}" for t, s in r.extrapolative_share.items()) or "-"
        walls = ", ".join(f"{name} {seconds:.0f}" for name, seconds in r.wall_times.items())
        lines.append(
            f"<tr><td>{r.iteration}</td><td>{r.labeled}</td><td>{r.failed}</td>"
            f"<td>{r.total_labeled}</td><td>{cell(r.train_rmse_forces)}</td>"
            f"<td>{cell(r.test_rmse_forces)}</td><td>{cell(r.test_rmse_energy)}</td>"
            f"<td>{cell(r.new_data_rmse_forces)}{_per_composition(r)}</td>"
            f"<td>{cell(r.new_data_rmse_energy)}</td>"
            f"<td>{cell(r.validation_rmse_forces)}</td>"
            f"<td>{html.escape(shares)}</td><td>{html.escape(walls)}</td></tr>"
        )
    return "\n".join(lines) + "</table>"


def _per_composition(row: IterationRow) -> str:
    """The error on new data of each composition, under the pooled one (several only)."""
    parts = [f"{name} {value:.0f}" for name, value in row.new_data_forces_by_composition.items()]
    return "<br><small>" + html.escape(", ".join(parts)) + "</small>" if parts else ""


def write_report(campaign: Campaign) -> Path:
    config = campaign.config
    folder = campaign.layout.report_dir
    folder.mkdir(parents=True, exist_ok=True)
    rows = iteration_rows(campaign)
    images = [
        learning_curve(rows, folder / "learning_curve.png"),
        gamma_distributions(campaign, folder / "gamma_distributions.png"),
    ]
    fits = finished_fits(campaign)
    if fits:
        images.extend(fits[-1][1].plots)
    figures = "\n".join(_image_tag(path) for path in images if path is not None)
    reason = stop_reason(campaign) or "not finished"
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>MLIP-AutoPipe report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:4px 8px;text-align:right}}img{{max-width:520px}}
figure{{display:inline-block;margin:1em}}</style></head><body>
<h1>MLIP-AutoPipe: {html.escape(", ".join(config.system.elements))}</h1>
<p>Work dir: {html.escape(str(config.workflow.work_dir))}<br>Status: {html.escape(reason)}</p>
{dft_check_section(campaign)}
{_table(rows)}
{figures}
{validation_section(campaign)}
</body></html>
"""
    return write_atomically(folder / "index.html", page)
