"""Phase C wiring: labeled rows -> stable train/test split -> DatasetBuilder + PacemakerWrapper.

The database is read before the fit and written (new split keys) only after the fit succeeded,
so a crash or a timeout of pacemaker leaves both the database and the previous potential as
they were.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from mlip_autopipec.config import MLIPConfig
from mlip_autopipec.core import keys
from mlip_autopipec.core.database import StructureRecord
from mlip_autopipec.orchestration.database import open_database
from mlip_autopipec.training.dataset import (
    TEST,
    TRAIN,
    DatasetBuilder,
    LabeledStructure,
    Split,
    assign_split,
    fit_reference_energies,
)
from mlip_autopipec.training.metrics import MetricsError
from mlip_autopipec.training.pacemaker import (
    METRICS_FILE,
    PacemakerWrapper,
    TrainingError,
    TrainingResult,
)

logger = logging.getLogger(__name__)

POTENTIALS_DIR = "potentials"
_ITERATION_FOLDER = re.compile(r"^iter_(\d+)$")


def potentials_root(config: MLIPConfig) -> Path:
    return config.workflow.work_dir / POTENTIALS_DIR


def iteration_folder(config: MLIPConfig, iteration: int) -> Path:
    return potentials_root(config) / f"iter_{iteration:03d}"


def finished_fits(config: MLIPConfig) -> list[tuple[int, TrainingResult]]:
    """Every finished fit (a folder iter_NNN with its metrics.json), by iteration."""
    root = potentials_root(config)
    fits = []
    for folder in sorted(root.glob("iter_*")) if root.is_dir() else []:
        match = _ITERATION_FOLDER.match(folder.name)
        if match and (folder / METRICS_FILE).is_file():
            try:
                fits.append((int(match.group(1)), TrainingResult.load(folder)))
            except MetricsError as error:
                logger.warning("ignoring %s: %s", folder, error)
    return sorted(fits, key=lambda pair: pair[0])


def latest_fit(config: MLIPConfig, before: int | None = None) -> TrainingResult | None:
    """The newest finished fit of an iteration below `before` (any iteration when None)."""
    candidates = [fit for n, fit in finished_fits(config) if before is None or n < before]
    return candidates[-1] if candidates else None


def split_key(record: StructureRecord) -> str:
    """What the split is decided from: the structure's content hash, else its row id."""
    fingerprint = record.key_value_pairs.get(keys.STRUCTURE_HASH)
    return f"hash:{fingerprint}" if fingerprint else f"id:{record.id}"


def decide_splits(
    records: Sequence[StructureRecord], test_fraction: float
) -> tuple[dict[int, Split], dict[int, Split]]:
    """(split of every row, the rows whose split is new): a stored split is never changed."""
    splits: dict[int, Split] = {}
    new: dict[int, Split] = {}
    for record in records:
        stored = record.key_value_pairs.get(keys.SPLIT)
        if stored in (TRAIN, TEST):
            splits[record.id] = TRAIN if stored == TRAIN else TEST
        else:
            splits[record.id] = new[record.id] = assign_split(split_key(record), test_fraction)
    return splits, new


def choose_reference_energies(
    config: MLIPConfig, previous: TrainingResult | None, structures: Sequence[LabeledStructure]
) -> dict[str, float]:
    """Configured isolated-atom energies; else the ones the previous fit used (so energies stay
    comparable and up-fitting starts close); else a least-squares fit on the training set."""
    if config.training.reference_energies is not None:
        return dict(config.training.reference_energies)
    present = {symbol for s in structures for symbol in s.atoms.get_chemical_symbols()}
    if previous is not None and present <= set(previous.metrics.reference_energies):
        return dict(previous.metrics.reference_energies)
    train = [s for s in structures if s.split == TRAIN]
    return fit_reference_energies(train, config.system.elements)


def train_iteration(config: MLIPConfig, iteration: int | None = None) -> TrainingResult:
    """Fit the potential of `iteration` (default: the newest iteration with labeled data) on all
    labeled structures; a finished fit of that iteration is returned as it is."""
    database = open_database(config)
    records = database.select(**{keys.STATUS: keys.LABELED})
    if not records:
        raise TrainingError("no labeled structures in the database; run `label` or `add --labeled`")
    if iteration is None:
        iteration = max(record.iteration for record in records)
    target = iteration_folder(config, iteration)
    if (target / METRICS_FILE).is_file():
        logger.info("iteration %d is trained already: %s", iteration, target)
        return TrainingResult.load(target)
    splits, new_splits = decide_splits(records, config.training.test_fraction)
    structures = [LabeledStructure(r.id, r.atoms, splits[r.id]) for r in records]
    previous = latest_fit(config, before=iteration)
    references = choose_reference_energies(config, previous, structures)
    wrapper = PacemakerWrapper(config.training, config.system.elements)
    result = wrapper.fit(structures, DatasetBuilder(references), target, previous)
    database.set_keys({row_id: {keys.SPLIT: split} for row_id, split in new_splits.items()})
    logger.info("iteration %d trained on %d structures: %s", iteration, len(records), target)
    return result
