"""The `mlip-autopipe` command: thin commands over orchestration and config."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from mlip_autopipec.config import ConfigError, MLIPConfig, load_config
from mlip_autopipec.core import keys
from mlip_autopipec.core.database import StructureError

if TYPE_CHECKING:
    from mlip_autopipec.orchestration.exploration import ExplorationSummary
    from mlip_autopipec.orchestration.labeling import LabelingSummary
    from mlip_autopipec.orchestration.status import IterationRow
    from mlip_autopipec.training.pacemaker import TrainingResult

app = typer.Typer(
    help="Active learning of ACE potentials: explore, label with pw.x, fit with pacemaker.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

ConfigArg = Annotated[Path, typer.Argument(help="The campaign's YAML configuration file.")]


def _load(config_path: Path) -> MLIPConfig:
    try:
        config = load_config(config_path)
    except ConfigError as error:
        err_console.print(f"[bold red]{error.source} is invalid:[/]")
        for problem in error.problems:
            err_console.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    _log_to_work_dir(config)
    return config


def _log_to_work_dir(config: MLIPConfig) -> None:
    work_dir = config.workflow.work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(work_dir / "mlip-autopipe.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("mlip_autopipec")
    root.handlers = [h for h in root.handlers if not isinstance(h, logging.FileHandler)]
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors that mean "fix the config, the data or the machine": a message, no traceback."""
    from mlip_autopipec.core.process import ExecutableNotFoundError
    from mlip_autopipec.generation import BuildError
    from mlip_autopipec.inference.lammps import LammpsError
    from mlip_autopipec.orchestration.lock import CampaignBusyError
    from mlip_autopipec.orchestration.workflow import WorkflowError
    from mlip_autopipec.surrogate import SurrogateError
    from mlip_autopipec.training.pacemaker import TrainingError

    return (
        CampaignBusyError,
        ExecutableNotFoundError,
        BuildError,
        LammpsError,
        SurrogateError,
        TrainingError,
        WorkflowError,
        StructureError,
    )


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder for the new config.yaml.")],
) -> None:
    """Write a commented example config.yaml (diamond Si) that validates."""
    from mlip_autopipec.config.example import EXAMPLE_CONFIG

    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "config.yaml"
    if target.exists():
        raise _fail(f"{target} already exists; not overwriting it")
    target.write_text(EXAMPLE_CONFIG)
    console.print(f"wrote {target}; check it with: mlip-autopipe validate {target}")


@app.command()
def validate(config_path: ConfigArg) -> None:
    """Check a config file; print every problem as `field.path: message` (exit 2 if any)."""
    try:
        config = load_config(config_path)
    except ConfigError as error:
        err_console.print(f"[bold red]{error.source} is invalid:[/]")
        for problem in error.problems:
            err_console.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    console.print(
        f"[green]valid[/]: {', '.join(config.system.elements)}; work_dir {config.workflow.work_dir}"
    )


@app.command()
def status(config_path: ConfigArg) -> None:
    """Structures per status; per iteration: DFT counts, fit errors, MD extrapolation."""
    from mlip_autopipec.orchestration.status import iteration_rows, status_rows, stop_reason

    config = _load(config_path)
    table = Table(title=f"Structures in {config.workflow.database_path}")
    table.add_column("iteration", justify="right")
    for name in keys.STATUSES:
        table.add_column(name, justify="right")
    for iteration, counts in status_rows(config):
        table.add_row(str(iteration), *(str(counts.get(name, 0)) for name in keys.STATUSES))
    console.print(table)
    rows = iteration_rows(config)
    if any(r.train_rmse_forces is not None or r.wall_times for r in rows):
        Console(width=max(console.width, 150)).print(_iterations_table(rows))
    reason = stop_reason(config)
    if reason:
        console.print(f"workflow stopped: {reason}")


def _iterations_table(rows: list[IterationRow]) -> Table:
    table = Table(title="Iterations")
    for name in ("iter", "labeled", "failed DFT", "train F RMSE", "test F RMSE", "test E RMSE"):
        table.add_column(name, justify="right")
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
            shares,
            walls,
        )
    return table


def _fmt(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.1f} {unit}"


@app.command()
def add(
    config_path: ConfigArg,
    files: Annotated[list[Path], typer.Argument(help="Structure files ASE can read.")],
    selected: Annotated[bool, typer.Option("--selected", help="Queue them for DFT.")] = False,
    labeled: Annotated[
        bool, typer.Option("--labeled", help="They carry DFT energy and forces already.")
    ] = False,
    iteration: Annotated[int, typer.Option(help="Iteration to file them under.")] = 0,
) -> None:
    """Import structures as candidates (or --selected, or --labeled with their DFT data)."""
    from mlip_autopipec.orchestration.importing import StructureImportError, import_files

    if selected and labeled:
        raise _fail("choose at most one of --selected and --labeled", 2)
    config = _load(config_path)
    status_name = keys.LABELED if labeled else keys.SELECTED if selected else keys.CANDIDATE
    try:
        added, skipped = import_files(config, files, status_name, iteration)
    except (StructureImportError, StructureError) as error:
        raise _fail(f"nothing imported: {error}") from None
    console.print(f"added {added} structure(s) as {status_name!r}; {skipped} already present")


@app.command()
def export(
    config_path: ConfigArg,
    out: Annotated[Path, typer.Argument(help="Output file.")],
    fmt: Annotated[str, typer.Option("--format", help="Output format.")] = "extxyz",
) -> None:
    """Write all labeled structures (energy, forces, stress) to a file."""
    from mlip_autopipec.orchestration.importing import export_labeled

    if fmt != "extxyz":
        raise _fail(f"unsupported format {fmt!r}; supported: extxyz", 2)
    config = _load(config_path)
    count = export_labeled(config, out)
    console.print(f"wrote {count} labeled structure(s) to {out}")


@app.command()
def label(
    config_path: ConfigArg,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Queue structures that failed before again.")
    ] = False,
) -> None:
    """Run pw.x on every selected structure (resumable; finished labels are kept)."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from mlip_autopipec.orchestration.labeling import label_selected
    from mlip_autopipec.orchestration.lock import campaign_lock

    config = _load(config_path)
    columns = (
        TextColumn("[bold]DFT"),
        BarColumn(),
        TextColumn(
            "{task.completed}/{task.total} done, {task.fields[failed]} failed, "
            "{task.fields[running]} running"
        ),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("dft", total=None, failed=0, running=0)

        def show(summary: LabelingSummary) -> None:
            done = summary.labeled + summary.failed
            progress.update(
                task,
                total=summary.queued,
                completed=done,
                failed=summary.failed,
                running=summary.running,
            )

        try:
            with campaign_lock(config.workflow.work_dir):
                summary = label_selected(config, on_progress=show, retry_failed=retry_failed)
        except _user_errors() as error:
            raise _fail(str(error)) from None
        show(summary)
    _print_labeling_summary(summary)


def _print_labeling_summary(summary: LabelingSummary) -> None:
    if summary.queued == 0:
        console.print("nothing to label: no structure is 'selected'")
        return
    table = Table(title="Labeling")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("labeled", str(summary.labeled))
    for reason, count in sorted(summary.failed_by_reason.items()):
        table.add_row(f"failed: {reason}", str(count))
    table.add_row("DFT wall time (sum)", f"{summary.dft_wall_time:.1f} s")
    table.add_row("elapsed", f"{summary.elapsed:.1f} s")
    console.print(table)


@app.command()
def train(
    config_path: ConfigArg,
    iteration: Annotated[
        int | None,
        typer.Option(help="Iteration to fit (default: the newest one with labeled data)."),
    ] = None,
) -> None:
    """Fit an ACE potential with pacemaker on all labeled data (up-fits the previous one)."""
    from mlip_autopipec.core.process import ExecutableNotFoundError
    from mlip_autopipec.orchestration.lock import CampaignBusyError, campaign_lock
    from mlip_autopipec.orchestration.training import train_iteration
    from mlip_autopipec.training.pacemaker import TrainingError

    config = _load(config_path)
    try:
        with campaign_lock(config.workflow.work_dir):
            result = train_iteration(config, iteration)
    except (CampaignBusyError, TrainingError, ExecutableNotFoundError, ValueError) as error:
        raise _fail(str(error)) from None
    _print_training_result(result)


def _print_training_result(result: TrainingResult) -> None:
    metrics = result.metrics
    table = Table(title=f"Training: {result.folder.name} ({metrics.start_mode})")
    for column in ("set", "structures", "atoms", "RMSE E (meV/atom)", "RMSE F (meV/Å)"):
        table.add_column(column, justify="left" if column == "set" else "right")
    for name, summary in (("train", metrics.train), ("test", metrics.test)):
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
    console.print(table)
    console.print(
        f"{metrics.start_mode} ({metrics.start_reason}); loss {metrics.initial_loss:.4g} -> "
        f"{metrics.final_loss:.4g} in {metrics.n_iterations} iterations, "
        f"{metrics.fit_seconds:.0f} s",
        highlight=False,
        soft_wrap=True,
    )
    for label, path in (
        ("potential", f"{result.potential}  (for LAMMPS: {result.yace.name})"),
        ("active set", result.active_set),
        ("plots", ", ".join(p.name for p in result.plots)),
        ("log", result.log),
    ):
        console.print(f"{label + ':':<12}{path}", highlight=False, soft_wrap=True)


@app.command()
def explore(
    config_path: ConfigArg,
    iteration: Annotated[int, typer.Option(min=0, help="Iteration to file candidates under.")] = 0,
) -> None:
    """Generate candidates, filter them, pre-screen with the surrogate and select by FPS."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from mlip_autopipec.generation import BuildError
    from mlip_autopipec.orchestration.exploration import run_exploration
    from mlip_autopipec.orchestration.lock import CampaignBusyError, campaign_lock
    from mlip_autopipec.surrogate import SurrogateError

    config = _load(config_path)
    columns = (
        TextColumn("[bold]{task.description:<11}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("starting", total=None)

        def show(stage: str, done: int, total: int) -> None:
            progress.update(task, description=stage, completed=done, total=total)

        try:
            with campaign_lock(config.workflow.work_dir):
                summary = run_exploration(config, iteration, on_progress=show)
        except (CampaignBusyError, SurrogateError, BuildError) as error:
            raise _fail(str(error)) from None
    _print_exploration_summary(summary)


def _print_exploration_summary(summary: ExplorationSummary) -> None:
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
    console.print(table)


@app.command()
def run(config_path: ConfigArg) -> None:
    """Run the whole active-learning loop; killed, it resumes where it stopped."""
    from mlip_autopipec.orchestration.lock import campaign_lock
    from mlip_autopipec.orchestration.workflow import WorkflowManager

    config = _load(config_path)

    def show(iteration: int, phase: str, event: str) -> None:
        if event == "start":
            console.print(f"[bold]iteration {iteration}[/]: {phase} ...")
        else:
            console.print(f"[bold]iteration {iteration}[/]: {phase} [green]done[/]")

    try:
        with campaign_lock(config.workflow.work_dir), console.status("working", spinner="dots"):
            reason = WorkflowManager(config, on_phase=show).run()
    except _user_errors() as error:
        raise _fail(str(error)) from None
    console.print(f"[bold]stopped[/]: {reason}")
    status(config_path)


@app.command()
def infer(
    config_path: ConfigArg,
    iteration: Annotated[int | None, typer.Option(help="Iteration to run MD for.")] = None,
) -> None:
    """Run phase D alone: MD with the newest potential, gamma monitoring, extraction."""
    from mlip_autopipec.orchestration.inference import extract_candidates, run_inference
    from mlip_autopipec.orchestration.lock import campaign_lock
    from mlip_autopipec.orchestration.training import finished_fits

    config = _load(config_path)
    fits = finished_fits(config)
    if not fits:
        raise _fail("no trained potential yet; run `train` first")
    fit_iteration, fit = fits[-1]
    target = fit_iteration + 1 if iteration is None else iteration
    try:
        with campaign_lock(config.workflow.work_dir), console.status("MD", spinner="dots"):
            summary = run_inference(config, target, fit)
            added = extract_candidates(config, target, fit)
    except _user_errors() as error:
        raise _fail(str(error)) from None
    table = Table(title=f"MD with {fit.potential}")
    for name in ("run", "T (K)", "steps", "halted", "extrapolative share", "frames kept"):
        table.add_column(name, justify="right")
    for run_stats in summary.runs:
        table.add_row(
            run_stats.run_id,
            f"{run_stats.temperature:g}",
            str(run_stats.steps_done),
            "yes" if run_stats.halted else "no",
            f"{run_stats.extrapolative_share:.2f}",
            str(run_stats.n_frames),
        )
    console.print(table)
    console.print(f"{added} candidate(s) from extrapolative environments in iteration {target}")


@app.command()
def report(config_path: ConfigArg) -> None:
    """Write plots and a self-contained HTML summary to work_dir/report/."""
    from mlip_autopipec.orchestration.report import write_report

    config = _load(config_path)
    console.print(f"wrote {write_report(config)}")


def main() -> None:
    app()
