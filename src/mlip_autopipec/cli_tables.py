"""Rich tables the CLI prints: what each command did, in a form a person reads at a glance."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from mlip_autopipec.core import keys

if TYPE_CHECKING:
    from mlip_autopipec.orchestration.exploration import ExplorationSummary
    from mlip_autopipec.orchestration.inference import InferenceSummary
    from mlip_autopipec.orchestration.labeling import LabelingProgress
    from mlip_autopipec.orchestration.status import IterationRow
    from mlip_autopipec.training.pacemaker import TrainingResult


def status_table(title: str, rows: list[tuple[int, dict[str, int]]]) -> Table:
    table = Table(title=title)
    table.add_column("iteration", justify="right")
    for name in keys.STATUSES:
        table.add_column(name, justify="right")
    for iteration, counts in rows:
        table.add_row(str(iteration), *(str(counts.get(name, 0)) for name in keys.STATUSES))
    return table


def iterations_table(rows: list[IterationRow]) -> Table:
    """Force RMSEs: train; random test split; error on new data (the previous fit on the
    structures this iteration labeled, measured before this fit); validation set."""
    table = Table(title="Iterations")
    columns = ["iter", "labeled", "failed DFT", "train F RMSE", "test-split F RMSE"]
    columns += ["test-split E RMSE", "new-data F RMSE", "new-data E RMSE", "validation F RMSE"]
    for name in columns:
        table.add_column(name, justify="right")
    table.add_column("MD engine")
    table.add_column("extrapolative share")
    table.add_column("wall time per phase (s)")
    for r in rows:
        shares = " ".join(f"{t}K:{s:.2f}" for t, s in r.extrapolative_share.items()) or "-"
        walls = " ".join(f"{name}:{seconds:.0f}" for name, seconds in r.wall_times.items()) or "-"
        table.add_row(
            str(r.iteration),
            str(r.labeled),
            str(r.failed),
            _fmt(r.train_rmse_forces, "meV/Å"),
            _fmt(r.test_rmse_forces, "meV/Å"),
            _fmt(r.test_rmse_energy, "meV/at"),
            _fmt(r.new_data_rmse_forces, "meV/Å") + (f" ({r.n_new_data})" if r.n_new_data else ""),
            _fmt(r.new_data_rmse_energy, "meV/at"),
            _fmt(r.validation_rmse_forces, "meV/Å"),
            r.md_engine or "-",
            shares,
            walls,
        )
    return table


def _fmt(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.1f} {unit}"


def labeling_table(progress: LabelingProgress) -> Table:
    table = Table(title="Labeling")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("labeled", str(progress.labeled))
    for kind, count in sorted(progress.failed_by_kind.items()):
        table.add_row(f"failed: {kind}", str(count))
    table.add_row("DFT wall time (sum)", f"{progress.dft_wall_time:.1f} s")
    table.add_row("elapsed", f"{progress.elapsed:.1f} s")
    return table


def training_table(result: TrainingResult) -> Table:
    metrics = result.metrics
    table = Table(title=f"Training: {result.folder.name} ({metrics.start_mode})")
    for column in ("set", "structures", "atoms", "RMSE E (meV/atom)", "RMSE F (meV/Å)"):
        table.add_column(column, justify="left" if column == "set" else "right")
    for name, summary in (("train", metrics.train), ("test split", metrics.test)):
        if summary is None:
            table.add_row(name, "0", "0", "-", "-")
            continue
        table.add_row(
            name,
            str(summary.n_structures),
            str(summary.n_atoms),
            f"{summary.rmse_energy:.2f}",
            f"{summary.rmse_forces:.1f}",
        )
    return table


def training_lines(result: TrainingResult) -> list[str]:
    metrics = result.metrics
    return [
        f"{metrics.start_mode} ({metrics.start_reason}); loss {metrics.initial_loss:.4g} -> "
        f"{metrics.final_loss:.4g} in {metrics.n_iterations} iterations, "
        f"{metrics.fit_seconds:.0f} s",
        f"{'potential:':<12}{result.potential}  (for LAMMPS: {result.yace.name})",
        f"{'active set:':<12}{result.active_set}",
        f"{'plots:':<12}{', '.join(p.name for p in result.plots)}",
        f"{'log:':<12}{result.log}",
    ]


def exploration_table(summary: ExplorationSummary) -> Table:
    table = Table(title=f"Exploration, iteration {summary.iteration}")
    table.add_column("")
    table.add_column("structures", justify="right")
    table.add_row("generated", str(summary.generated))
    for origin, count in sorted(summary.generated_by_origin.items()):
        table.add_row(f"  {origin}", str(count))
    for reason, count in sorted(summary.filtered_by_reason.items()):
        table.add_row(f"filtered: {reason}", str(count))
    table.add_row("new candidates stored", str(summary.inserted))
    table.add_row("already in the database", str(summary.already_present))
    selection = summary.selection
    if selection is not None:
        table.add_row("candidates considered", str(selection.candidates))
        for reason, count in sorted(selection.filtered_by_reason.items()):
            table.add_row(f"filtered: {reason}", str(count))
        table.add_row("evaluated by the surrogate", str(selection.evaluated))
        for reason, count in sorted(selection.prescreened_by_reason.items()):
            table.add_row(f"pre-screened out: {reason}", str(count))
        table.add_row("pre-screened out (total)", str(selection.prescreened))
        table.add_row("selected now", str(selection.selected))
        table.add_row("selected in this iteration", str(selection.selected_in_iteration))
    return table


def md_table(potential: str, summary: InferenceSummary) -> Table:
    table = Table(title=f"MD with {potential} ({summary.engine or 'ase'} engine)")
    for name in ("run", "T (K)", "steps", "halted", "extrapolative share", "frames kept"):
        table.add_column(name, justify="right")
    for run in summary.runs:
        table.add_row(
            run.run_id,
            f"{run.temperature:g}",
            str(run.steps_done),
            "yes" if run.halted else "no",
            f"{run.extrapolative_share:.2f}",
            str(run.n_frames),
        )
    return table
