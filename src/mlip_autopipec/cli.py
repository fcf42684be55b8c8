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
    from mlip_autopipec.orchestration.labeling import LabelingSummary

app = typer.Typer(
    help="Active learning of ACE potentials: explore, label with pw.x, fit with pacemaker.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

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


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


@app.command()
def init(directory: Annotated[Path, typer.Argument(help="Folder for the new config.yaml.")]) -> None:
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
        f"[green]valid[/]: {', '.join(config.system.elements)}; "
        f"work_dir {config.workflow.work_dir}"
    )


@app.command()
def status(config_path: ConfigArg) -> None:
    """Show how many structures are in each status, per iteration."""
    from mlip_autopipec.orchestration.status import status_rows

    config = _load(config_path)
    table = Table(title=f"{config.workflow.database_path}")
    table.add_column("iteration", justify="right")
    for name in keys.STATUSES:
        table.add_column(name, justify="right")
    for iteration, counts in status_rows(config):
        table.add_row(str(iteration), *(str(counts.get(name, 0)) for name in keys.STATUSES))
    console.print(table)


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
def label(config_path: ConfigArg) -> None:
    """Run pw.x on every selected structure (resumable; finished labels are kept)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from mlip_autopipec.orchestration.labeling import LabelingSummary, label_selected
    from mlip_autopipec.orchestration.lock import CampaignBusyError, campaign_lock

    config = _load(config_path)
    columns = (
        TextColumn("[bold]DFT"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} done, {task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("dft", total=None, failed=0)

        def show(summary: LabelingSummary) -> None:
            done = summary.labeled + summary.failed
            progress.update(task, total=summary.queued, completed=done, failed=summary.failed)

        try:
            with campaign_lock(config.workflow.work_dir):
                summary = label_selected(config, on_progress=show)
        except CampaignBusyError as error:
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


def main() -> None:
    app()
