"""One Campaign per command: the config, the database and the work-dir layout, built once.

`CampaignLayout` owns every path under `work_dir`; nothing else in the package joins path
segments onto the work dir. `open_campaign` is what a command that changes the campaign
uses: it creates the work dir (with a clear error when it cannot), takes the locks, logs to
the campaign's log file and opens the database. `existing_campaign` is for read-only commands:
it never creates a work dir or a database.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlip_autopipec.config import MLIPConfig
from mlip_autopipec.core.database import DatabaseManager, check_existing_database
from mlip_autopipec.errors import UserError
from mlip_autopipec.orchestration.database import can_write, open_database, snapshot_of
from mlip_autopipec.orchestration.lock import campaign_lock

_ITERATION_FOLDER = re.compile(r"^iter_(\d+)$")
_FINAL_FOLDER = re.compile(r"^final_(\d+)$")


class CampaignError(UserError):
    """The work dir or database cannot be used (missing, a file, read-only, not ours)."""


@dataclass(frozen=True)
class CampaignLayout:
    """Every path of a campaign, relative to its work dir."""

    work_dir: Path

    @property
    def state_file(self) -> Path:
        return self.work_dir / "workflow.json"

    @property
    def lock_file(self) -> Path:
        return self.work_dir / ".lock"

    @property
    def log_file(self) -> Path:
        return self.work_dir / "mlip-autopipe.log"

    @property
    def dft_root(self) -> Path:
        return self.work_dir / "dft"

    def dft_dir(self, row_id: int) -> Path:
        """Everything pw.x ran for one structure: one `sub_N` folder per submission."""
        return self.dft_root / f"{row_id:06d}"

    def submission_dir(self, row_id: int, number: int) -> Path:
        """Where submission `number` of a structure runs its attempts (attempt_K inside)."""
        return self.dft_dir(row_id) / f"sub_{number}"

    def claim_submission_dir(self, row_id: int) -> Path:
        """Create and return the next free `sub_N` of a structure. Run where the task runs:
        mkdir is atomic, so a requeued copy never shares a folder with one still running."""
        parent = self.dft_dir(row_id)
        if parent.is_symlink():
            raise OSError(f"{parent} is a symbolic link; refusing to run pw.x in it")
        parent.mkdir(parents=True, exist_ok=True)
        number = len(list(parent.glob("sub_*")))
        while True:
            folder = self.submission_dir(row_id, number)
            try:
                folder.mkdir()
            except FileExistsError:
                number += 1
                continue
            return folder

    @property
    def jobs_dir(self) -> Path:
        """Batch-job scripts' output (dask-jobqueue worker logs)."""
        return self.work_dir / "jobs"

    @property
    def md_root(self) -> Path:
        return self.work_dir / "md"

    def md_dir(self, iteration: int) -> Path:
        return self.md_root / f"iter_{iteration:03d}"

    def md_runs_dir(self, iteration: int) -> Path:
        return self.md_dir(iteration) / "runs"

    @property
    def potentials_root(self) -> Path:
        return self.work_dir / "potentials"

    def potential_dir(self, iteration: int) -> Path:
        return self.potentials_root / f"iter_{iteration:03d}"

    def final_potential_dir(self, last_iteration: int) -> Path:
        """The final fit on every label of iterations 0..last_iteration."""
        return self.potentials_root / f"final_{last_iteration:03d}"

    @property
    def handover_dir(self) -> Path:
        """The potential to use (files, CARD.md) and choice.json: which fit it is."""
        return self.work_dir / "potential"

    @property
    def handover_choice_file(self) -> Path:
        return self.handover_dir / "choice.json"

    @property
    def report_dir(self) -> Path:
        return self.work_dir / "report"

    @property
    def errors_root(self) -> Path:
        return self.work_dir / "errors"

    def new_data_errors_file(self, iteration: int) -> Path:
        """Errors of the previous fit on the structures labeled since it was trained, measured
        before fit `iteration` runs."""
        return self.errors_root / f"iter_{iteration:03d}.json"

    def validation_errors_file(self, iteration: int) -> Path:
        """Errors of fit `iteration` on workflow.validation_set."""
        return self.errors_root / f"validation_iter_{iteration:03d}.json"

    def iteration_folders(self, root: Path) -> list[tuple[int, Path]]:
        """(iteration, folder) of every `iter_NNN` folder under `root`, by iteration."""
        return _numbered_folders(root, _ITERATION_FOLDER)

    def final_folders(self) -> list[tuple[int, Path]]:
        """(last iteration, folder) of every `final_NNN` fit, oldest first."""
        return _numbered_folders(self.potentials_root, _FINAL_FOLDER)


def _numbered_folders(root: Path, pattern: re.Pattern[str]) -> list[tuple[int, Path]]:
    found = []
    for folder in root.iterdir() if root.is_dir() else []:
        match = pattern.match(folder.name)
        if match and folder.is_dir():
            found.append((int(match.group(1)), folder))
    return sorted(found)


@dataclass(frozen=True)
class Campaign:
    """What every phase is handed: the config, the open database and the layout."""

    config: MLIPConfig
    database: DatabaseManager
    layout: CampaignLayout
    # added to the CPU niceness of the local Dask workers that run its tasks: work that runs
    # alongside other work on the same machine (the validation's DFT beside the final fit)
    nice: int = 0

    @classmethod
    def open(cls, config: MLIPConfig) -> Campaign:
        """Open (creating when needed) the campaign's folders and database; takes no lock."""
        layout = _make_folders(config)
        return cls(config, open_database(config), layout)


def _make_folders(config: MLIPConfig) -> CampaignLayout:
    layout = CampaignLayout(config.workflow.work_dir)
    _make_folder(layout.work_dir, "work_dir")
    _make_folder(config.workflow.database_path.parent, "the database's folder")
    return layout


def _make_folder(folder: Path, what: str) -> None:
    if folder.exists() and not folder.is_dir():
        raise CampaignError(f"{what} {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CampaignError(f"cannot create {what} {folder}: {error.strerror}") from None


@contextmanager
def open_campaign(config: MLIPConfig) -> Iterator[Campaign]:
    """The campaign of a command that changes it: locked, logging to its log file."""
    layout = _make_folders(config)
    with campaign_lock(layout.lock_file, config.workflow.database_path):
        handler = _log_to(layout.log_file)
        try:
            yield Campaign(config, open_database(config), layout)
        finally:
            logging.getLogger("mlip_autopipec").removeHandler(handler)
            handler.close()


def existing_campaign(config: MLIPConfig) -> Campaign:
    """The campaign of a read-only command; refuses to create or touch anything that is missing
    or that is not a campaign's database. A database this process cannot write (a finished
    campaign on a read-only mount) is read from a private copy."""
    database = config.workflow.database_path
    if not database.is_file():
        raise CampaignError(
            f"no campaign here: database {database} does not exist (run `mlip-autopipe run`)"
        )
    check_existing_database(database)
    path = database if can_write(database) else snapshot_of(database)
    return Campaign(config, open_database(config, path), CampaignLayout(config.workflow.work_dir))


def _log_to(path: Path) -> logging.Handler:
    try:
        handler = logging.FileHandler(path)
    except OSError as error:
        raise CampaignError(f"cannot write the log file {path}: {error.strerror}") from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("mlip_autopipec")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler
