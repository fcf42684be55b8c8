"""Honest errors of a fit, kept as files of the campaign (work_dir/errors/):

- error on new data: before fit k (k >= 1) is trained, fit k-1 predicts the structures labeled
  since it was trained (rows not in its train/test files). Written once, before pacemaker runs,
  so a killed or failed fit keeps it and a rerun reuses it instead of measuring again. Per
  composition too, where there are several (the report shows each).
- validation set: every fit scored on workflow.validation_set, which never enters the database.
- anchors: every fit on the near-equilibrium anchors it was trained on, as a group of its own
  (their energies are what E(V) and the elastic constants are learned from).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlip_autopipec.core.composition import Composition, composition
from mlip_autopipec.core.files import write_atomically
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.training.dataset import LabeledStructure
from mlip_autopipec.training.evaluation import read_labeled_structures, score, trained_row_ids
from mlip_autopipec.training.metrics import ErrorSummary
from mlip_autopipec.training.pacemaker import TEST_DATA, TRAIN_DATA, TrainingResult

logger = logging.getLogger(__name__)


def record_new_data_errors(
    campaign: Campaign,
    iteration: int,
    structures: list[LabeledStructure],
    previous: TrainingResult,
) -> ErrorSummary | None:
    """Score `previous` on the structures it was not trained on, once per iteration."""
    path = campaign.layout.new_data_errors_file(iteration)
    if path.is_file():
        logger.info("error on new data of iteration %d already measured: %s", iteration, path)
        return new_data_errors(campaign, iteration)
    known = trained_row_ids([previous.folder / TRAIN_DATA, previous.folder / TEST_DATA])
    new = [s for s in structures if s.row_id not in known]
    record: dict[str, Any] = {"fit": str(previous.folder), "db_ids": [s.row_id for s in new]}
    try:
        summary = score(previous.potential, new, previous.metrics.reference_energies)
        record["by_composition"] = errors_by_composition(previous, new)
    except Exception as error:  # a diagnostic: it must never block the fit
        logger.warning(
            "could not measure the error on new data of iteration %d: %s", iteration, error
        )
        summary, record["error"] = None, f"{type(error).__name__}: {error}"
    record["errors"] = asdict(summary) if summary is not None else None
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(record, indent=1))
    if summary is not None:
        logger.info(
            "error on new data (%d structures) of %s: E %.2f meV/atom, F %.1f meV/Å",
            summary.n_structures,
            previous.folder.name,
            summary.rmse_energy,
            summary.rmse_forces,
        )
    return summary


def errors_by_composition(fit: TrainingResult, structures: list[LabeledStructure]) -> list[Any]:
    """[{composition, errors}] of `fit` on `structures`, one per composition; [] with one."""
    groups: dict[Composition, list[LabeledStructure]] = {}
    for structure in structures:
        groups.setdefault(composition(structure.atoms.get_chemical_symbols()), []).append(structure)
    if len(groups) < 2:
        return []
    references = fit.metrics.reference_energies
    return [
        {"composition": [list(pair) for pair in key], "errors": asdict(summary)}
        for key, members in sorted(groups.items())
        if (summary := score(fit.potential, members, references)) is not None
    ]


def new_data_force_errors_by_composition(
    campaign: Campaign, iteration: int
) -> dict[Composition, float]:
    """Force RMSE (meV/Å) per composition of the error on new data measured before fit
    `iteration`; empty with one composition, or where it was not measured per composition."""
    path = campaign.layout.new_data_errors_file(iteration)
    if not path.is_file():
        return {}
    entries = json.loads(path.read_text()).get("by_composition") or []
    return {
        tuple((str(element), float(x)) for element, x in entry["composition"]): float(
            entry["errors"]["rmse_forces"]
        )
        for entry in entries
    }


ANCHOR_ERRORS_FILE = "anchor_errors.json"


def anchor_errors(fit: TrainingResult, anchors: list[LabeledStructure]) -> ErrorSummary | None:
    """The fit's errors on the anchors, written beside it once and read back afterwards."""
    path = fit.folder / ANCHOR_ERRORS_FILE
    if path.is_file():
        return _stored_errors(path)
    try:
        summary = score(fit.potential, anchors, fit.metrics.reference_energies)
    except Exception as error:  # noqa: BLE001 - a diagnostic: it must never fail the phase
        logger.warning("could not score %s on the anchors: %s", fit.folder.name, error)
        return None
    if summary is not None:
        write_atomically(path, json.dumps({"errors": asdict(summary)}, indent=1))
    return summary


def new_data_errors(campaign: Campaign, iteration: int) -> ErrorSummary | None:
    """What record_new_data_errors measured before fit `iteration`; None if nothing."""
    return _stored_errors(campaign.layout.new_data_errors_file(iteration))


def newest_new_data_errors(campaign: Campaign, before: int) -> tuple[int, ErrorSummary] | None:
    """(iteration, errors) of the newest error on new data measured before fit `before`."""
    for iteration in range(before - 1, 0, -1):
        errors = new_data_errors(campaign, iteration)
        if errors is not None:
            return iteration, errors
    return None


def validation_errors(
    campaign: Campaign, iteration: int, fit: TrainingResult
) -> ErrorSummary | None:
    """Errors of fit `iteration` on workflow.validation_set (None when there is none); kept in
    a file and measured again only when the validation set's content changed."""
    source = campaign.config.workflow.validation_set
    if source is None:
        return None
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    path = campaign.layout.validation_errors_file(iteration)
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("sha256") == digest and stored.get("errors"):
            return ErrorSummary(**stored["errors"])
    structures = read_labeled_structures(Path(source))
    summary = score(fit.potential, structures, fit.metrics.reference_energies)
    record: dict[str, Any] = {
        "validation_set": str(source),
        "sha256": digest,
        "fit": str(fit.folder),
        "errors": asdict(summary) if summary is not None else None,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(record, indent=1))
    return summary


def stored_validation_errors(campaign: Campaign, iteration: int) -> ErrorSummary | None:
    """The validation errors of fit `iteration` as last recorded (for status and the report)."""
    return _stored_errors(campaign.layout.validation_errors_file(iteration))


def _stored_errors(path: Path) -> ErrorSummary | None:
    """The `errors` a record file holds; None when there is no file or nothing was measured."""
    if not path.is_file():
        return None
    errors = json.loads(path.read_text()).get("errors")
    return ErrorSummary(**errors) if errors else None
