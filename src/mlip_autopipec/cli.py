"""The `mlip-autopipe` command: thin commands over orchestration and config.

Every expected failure derives from `UserError` (or is a `ConfigError`) and is reported in one
place, `ErrorBoundary`: one plain line on stderr, no traceback, a non-zero exit. Messages are
printed without console markup, so a `[/]` in a path cannot break a command.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from mlip_autopipec import cli_tables
from mlip_autopipec.config import ConfigError, load_config
from mlip_autopipec.core import keys
from mlip_autopipec.errors import UserError

if TYPE_CHECKING:
    from mlip_autopipec.orchestration.labeling import LabelingProgress

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def one_line(message: str) -> str:
    return " ".join(str(message).split("\n"))


def print_error(message: str) -> None:
    err_console.print(Text("error: ", style="bold red") + Text(one_line(message)))


def print_config_error(error: ConfigError) -> None:
    err_console.print(Text(f"{one_line(error.source)} is invalid:", style="bold red"))
    for problem in error.problems:
        err_console.print(Text(f"  {one_line(problem)}"))


class ErrorBoundary(TyperGroup):
    """Expected failures end a command with one clear line; anything else is a bug."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as error:
            print_config_error(error)
            raise typer.Exit(2) from None
        except UserError as error:
            print_error(str(error))
            raise typer.Exit(1) from None
        except sqlite3.DatabaseError as error:  # a damaged file: say so, change nothing
            print_error(
                f"the campaign database cannot be read ({error}); nothing was written to it: "
                "restore it from a copy, or try `sqlite3 FILE .recover`"
            )
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=ErrorBoundary,
    help="Active learning of ACE potentials: explore, label with pw.x, fit with pacemaker.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

ConfigArg = Annotated[Path, typer.Argument(help="The campaign's YAML configuration file.")]


class UsageError(UserError):
    """The command line asks for something impossible."""


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder for the new config.yaml.")],
    more_elements: Annotated[
        list[str] | None, typer.Argument(hidden=True, show_default=False)
    ] = None,
    elements: Annotated[
        list[str] | None,
        typer.Option(
            "--elements", help="The material's elements: --elements Si Ge (default: Si example)."
        ),
    ] = None,
    prototype: Annotated[
        str | None, typer.Option(help="diamond, fcc, bcc, hcp, ... (default: ASE's for the first).")
    ] = None,
    pseudo_dir: Annotated[Path, typer.Option(help="Folder with the UPF pseudopotentials.")] = Path(
        "/usr/share/espresso/pseudo"
    ),
    pseudo: Annotated[
        list[str] | None, typer.Option(help="ELEMENT=FILE when the folder holds several.")
    ] = None,
    functional: Annotated[
        str | None, typer.Option(help="pbe, pz, pbesol, ... (default: PBE when all have one).")
    ] = None,
) -> None:
    """Write a config.yaml that validates: the commented Si example, or, with --elements, one
    for that material (pseudopotentials, cutoffs, k-points, lattice constants, alloys)."""
    from mlip_autopipec.config.example import EXAMPLE_CONFIG
    from mlip_autopipec.config.starter import StarterError, material, starter_config

    target = directory / "config.yaml"
    if target.exists():
        raise UsageError(f"{target} already exists; not overwriting it")
    text = EXAMPLE_CONFIG
    if more_elements and not elements:
        raise UsageError(f"unexpected argument(s) {' '.join(more_elements)}")
    # click takes one value per option: `--elements Si Ge` leaves Ge as an argument
    elements = [e for item in (elements or []) + (more_elements or []) for e in item.split(",")]
    if elements:
        chosen = dict(_element_file(item) for item in pseudo or [])
        try:
            text = starter_config(
                material(elements, prototype, pseudo_dir.resolve(), chosen, functional)
            )
        except StarterError as error:
            raise UsageError(str(error)) from None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    except OSError as error:
        raise UsageError(f"cannot write {target}: {error.strerror}") from None
    console.print(Text(f"wrote {target}; check it with: mlip-autopipe validate {target}"))


def _element_file(item: str) -> tuple[str, str]:
    element, _, name = item.partition("=")
    if not element or not name:
        raise UsageError(f"--pseudo {item}: give ELEMENT=FILE, e.g. Si=Si.pbe-rrkj.UPF")
    return element, name


@app.command()
def validate(config_path: ConfigArg) -> None:
    """Check a config file; print every problem as `field.path: message` (exit 2 if any)."""
    from mlip_autopipec.training.inputs import InputError, check_basis_shape

    config = load_config(config_path)
    try:  # what pacemaker will accept, asked of pyace itself: no DFT is spent to find out
        check_basis_shape(config.training, config.system.elements)
    except InputError as error:
        raise ConfigError([str(error)], str(config_path)) from None
    elements = ", ".join(config.system.elements)
    console.print(
        Text("valid", style="green") + Text(f": {elements}; work_dir {config.workflow.work_dir}")
    )
    for note in config.compute.notes:
        console.print(Text(f"note: {one_line(note)}", style="yellow"))


@app.command()
def status(config_path: ConfigArg) -> None:
    """Structures per status; per iteration: DFT counts, fit errors, MD extrapolation."""
    from mlip_autopipec.orchestration.campaign import existing_campaign
    from mlip_autopipec.orchestration.report_dft_check import status_lines as dft_check_lines
    from mlip_autopipec.orchestration.report_validation import validation_lines
    from mlip_autopipec.orchestration.status import (
        failed_phase,
        iteration_rows,
        status_rows,
        stop_reason,
    )

    campaign = existing_campaign(load_config(config_path, read_only=True))
    title = f"Structures in {campaign.config.workflow.database_path}"
    console.print(cli_tables.status_table(title, status_rows(campaign)))
    rows = iteration_rows(campaign)
    if any(r.train_rmse_forces is not None or r.wall_times for r in rows):
        Console(width=max(console.width, 160)).print(cli_tables.iterations_table(rows))
    reason = stop_reason(campaign)
    if reason:
        console.print(Text(f"workflow stopped: {reason}"))
    failure = failed_phase(campaign)
    if failure:
        console.print(Text(f"FAILED: {one_line(failure)}", style="bold red"), soft_wrap=True)
    for line in validation_lines(campaign):
        failed = line.lstrip().startswith("FAILED")  # a failed validation check
        console.print(Text(line, style="bold red" if failed else ""), soft_wrap=True)
    for line in dft_check_lines(campaign):
        console.print(Text(line), soft_wrap=True)


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
    from mlip_autopipec.orchestration.campaign import open_campaign
    from mlip_autopipec.orchestration.importing import import_files

    if selected and labeled:
        print_error("choose at most one of --selected and --labeled")
        raise typer.Exit(2)
    status_name = keys.LABELED if labeled else keys.SELECTED if selected else keys.CANDIDATE
    with open_campaign(load_config(config_path)) as campaign:
        try:
            added, skipped = import_files(campaign, files, status_name, iteration)
        except UserError as error:
            raise UsageError(f"nothing imported: {error}") from None
    console.print(Text(f"added {added} structure(s) as {status_name!r}; {skipped} already present"))


@app.command()
def export(
    config_path: ConfigArg,
    out: Annotated[Path, typer.Argument(help="Output file.")],
    fmt: Annotated[str, typer.Option("--format", help="Output format.")] = "extxyz",
) -> None:
    """Write all labeled structures (energy, forces, stress) to a file."""
    from mlip_autopipec.orchestration.campaign import existing_campaign
    from mlip_autopipec.orchestration.importing import export_labeled

    if fmt != "extxyz":
        print_error(f"unsupported format {fmt!r}; supported: extxyz")
        raise typer.Exit(2)
    campaign = existing_campaign(load_config(config_path, read_only=True))
    try:
        count = export_labeled(campaign, out)
    except OSError as error:
        raise UsageError(f"cannot write {out}: {error.strerror}") from None
    console.print(Text(f"wrote {count} labeled structure(s) to {out}"))


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

    from mlip_autopipec.orchestration.campaign import open_campaign
    from mlip_autopipec.orchestration.labeling import label_selected

    config = load_config(config_path)
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
    with open_campaign(config) as campaign, Progress(*columns, console=console) as bar:
        task = bar.add_task("dft", total=None, failed=0, running=0)

        def show(progress: LabelingProgress) -> None:
            done = progress.labeled + progress.failed
            bar.update(
                task,
                total=progress.queued,
                completed=done,
                failed=progress.failed,
                running=progress.running,
            )

        progress = label_selected(campaign, on_progress=show, retry_failed=retry_failed)
        show(progress)
    if progress.queued == 0:
        console.print("nothing to label: no structure is 'selected'")
    else:
        console.print(cli_tables.labeling_table(progress))


@app.command()
def train(
    config_path: ConfigArg,
    iteration: Annotated[
        int | None,
        typer.Option(help="Iteration to fit (default: the newest one with labeled data)."),
    ] = None,
) -> None:
    """Fit an ACE potential with pacemaker on all labeled data (up-fits the previous one)."""
    from mlip_autopipec.orchestration.campaign import open_campaign
    from mlip_autopipec.orchestration.training import train_iteration

    with open_campaign(load_config(config_path)) as campaign:
        result = train_iteration(campaign, iteration)
    console.print(cli_tables.training_table(result))
    for line in cli_tables.training_lines(result):
        console.print(Text(line), soft_wrap=True)


@app.command()
def explore(
    config_path: ConfigArg,
    iteration: Annotated[int, typer.Option(min=0, help="Iteration to file candidates under.")] = 0,
) -> None:
    """Generate candidates, filter them, pre-screen with the surrogate and select by FPS."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from mlip_autopipec.orchestration.campaign import open_campaign
    from mlip_autopipec.orchestration.exploration import run_exploration

    config = load_config(config_path)
    columns = (
        TextColumn("[bold]{task.description:<11}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with open_campaign(config) as campaign, Progress(*columns, console=console) as bar:
        task = bar.add_task("starting", total=None)

        def show(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        summary = run_exploration(campaign, iteration, on_progress=show)
    console.print(cli_tables.exploration_table(summary))


@app.command()
def run(config_path: ConfigArg) -> None:
    """Run the whole active-learning loop; killed, it resumes where it stopped."""
    from mlip_autopipec.cli_progress import RunDisplay
    from mlip_autopipec.orchestration.campaign import open_campaign
    from mlip_autopipec.orchestration.workflow import WorkflowManager

    with open_campaign(load_config(config_path)) as campaign, RunDisplay(console) as display:
        reason = WorkflowManager(campaign, observer=display).run()
    console.print(Text("stopped", style="bold") + Text(f": {reason}"))
    status(config_path)


@app.command("check-dft")
def check_dft(
    config_path: ConfigArg,
    again: Annotated[
        bool, typer.Option("--again", help="Judge again even when a stored result matches.")
    ] = False,
) -> None:
    """Compare the dft settings with denser k-points and a higher cutoff on a few of the
    campaign's structures (pw.x); exit 1 with one line naming the setting to change."""
    from mlip_autopipec.orchestration.campaign import open_campaign
    from mlip_autopipec.orchestration.dft_check import (
        DFTCheckSummary,
        refusal,
        result_path,
        run_dft_check,
    )
    from mlip_autopipec.orchestration.report_dft_check import table_lines

    with open_campaign(load_config(config_path)) as campaign:
        with console.status("DFT check (pw.x)", spinner="dots"):
            document, reused = run_dft_check(campaign, reuse=not again)
        path = str(result_path(campaign))
    for line in table_lines(document):
        console.print(Text(line), soft_wrap=True)
    summary = DFTCheckSummary(bool(document["passed"]), str(document["message"]), reused, path)
    if not summary.passed:
        raise refusal(summary)
    console.print(Text(f"DFT check passed: {summary.message}"), soft_wrap=True)


@app.command()
def infer(
    config_path: ConfigArg,
    iteration: Annotated[int | None, typer.Option(help="Iteration to run MD for.")] = None,
) -> None:
    """Run phase D alone: MD with the newest potential, gamma monitoring, extraction."""
    from mlip_autopipec.orchestration.campaign import open_campaign
    from mlip_autopipec.orchestration.inference import extract_candidates, run_inference
    from mlip_autopipec.orchestration.training import finished_fits

    with open_campaign(load_config(config_path)) as campaign:
        fits = finished_fits(campaign)
        if not fits:
            raise UsageError("no trained potential yet; run `train` first")
        fit_iteration, fit = fits[-1]
        target = fit_iteration + 1 if iteration is None else iteration
        with console.status("MD", spinner="dots"):
            summary = run_inference(campaign, target, fit)
            added = extract_candidates(campaign, target, fit)
    console.print(cli_tables.md_table(str(fit.potential), summary))
    console.print(
        Text(f"{added} candidate(s) from extrapolative environments in iteration {target}")
    )


@app.command("validate-potential")
def validate_potential(
    config_path: ConfigArg,
    iteration: Annotated[
        int | None, typer.Option(help="Potential of this iteration (default: the newest).")
    ] = None,
) -> None:
    """Compare the potential with DFT (EOS, elastic, vacancy, surface, phonons) and run an MD
    check; DFT labels go to work_dir/validation/ and are reused by a rerun."""
    from mlip_autopipec.orchestration.campaign import open_campaign
    from mlip_autopipec.orchestration.validation import validate_potential as validate_fit

    config = load_config(config_path)
    with open_campaign(config) as campaign, console.status("validating", spinner="dots"):
        path = validate_fit(campaign, iteration)
    console.print(Text(f"wrote {path}; `mlip-autopipe report` shows it"))


@app.command()
def report(config_path: ConfigArg) -> None:
    """Write plots and a self-contained HTML summary to work_dir/report/."""
    from mlip_autopipec.orchestration.campaign import existing_campaign
    from mlip_autopipec.orchestration.report import write_report

    campaign = existing_campaign(load_config(config_path))
    console.print(Text(f"wrote {write_report(campaign)}"))


def main() -> None:
    app()
