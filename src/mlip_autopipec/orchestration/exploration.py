"""Phase A wiring: StructureBuilder -> filters -> `candidate` -> surrogate -> selection ->
`selected`.

Selection is by `exploration.selection.method`: MaxVol in the previous fit's ACE basis
(D-optimality w.r.t. its active set; `initial_method` while there is no fit), farthest point
sampling in the surrogate's descriptor space, or a seeded random draw.

Every step is restartable: generation is deterministic and exact duplicates are not stored
twice; surrogate results are cached on the rows (keys and the descriptor in row data) batch by
batch; and selection never picks more than `n_select` per iteration in total.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from mlip_autopipec.config import MLIPConfig
from mlip_autopipec.core import keys
from mlip_autopipec.core.composition import (
    Composition,
    balanced_shares,
    composition,
    formula,
)
from mlip_autopipec.core.database import DatabaseManager, StructureError, StructureRecord
from mlip_autopipec.core.rejection import Rejection
from mlip_autopipec.generation import GeneratedStructure, StructureBuilder, first_rejection
from mlip_autopipec.generation.anchors import ANCHOR_ORIGINS, build_anchors
from mlip_autopipec.inference.selection import select_maxvol
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.summaries import ExploreSummary, PhaseProgress, SelectSummary
from mlip_autopipec.orchestration.training import latest_fit
from mlip_autopipec.surrogate import SurrogateFailure, SurrogatePipeline, energy_reference
from mlip_autopipec.surrogate.prescreen import SURROGATE_ERROR
from mlip_autopipec.surrogate.representative import random_draw, representatives
from mlip_autopipec.training.pacemaker import TrainingResult

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]
"""Called with (stage, done, total) as the work advances."""

INVALID = "invalid"
WARM_START_STATUSES = (keys.SELECTED, keys.LABELING, keys.LABELED)
MIN_DEFAULT_SELECT = 8


@dataclass
class SelectionSummary:
    iteration: int
    candidates: int = 0
    filtered_by_reason: Counter[str] = field(default_factory=Counter)
    evaluated: int = 0
    prescreened_by_reason: Counter[str] = field(default_factory=Counter)
    warm_start: int = 0
    selected: int = 0
    selected_in_iteration: int = 0
    topped_up: int = 0  # picks from earlier iterations' candidates (see `_select`)
    method: str | None = None

    @property
    def prescreened(self) -> int:
        return sum(self.prescreened_by_reason.values())


@dataclass
class ExplorationSummary:
    iteration: int
    generated_by_origin: Counter[str] = field(default_factory=Counter)
    filtered_by_reason: Counter[str] = field(default_factory=Counter)
    inserted: int = 0
    already_present: int = 0
    anchors: int = 0
    selection: SelectionSummary | None = None

    @property
    def generated(self) -> int:
        return sum(self.generated_by_origin.values())

    @property
    def filtered(self) -> int:
        return sum(self.filtered_by_reason.values())


def run_exploration(
    campaign: Campaign, iteration: int, on_progress: ProgressCallback | None = None
) -> ExplorationSummary:
    """Generate, filter and store candidates, then pre-screen and select among them."""
    config, database = campaign.config, campaign.database
    summary = ExplorationSummary(iteration)
    _report(on_progress, "generating", 0, 1)
    if iteration == 0:
        summary.anchors = _add_anchors(campaign)
    builder = StructureBuilder(config.system, config.exploration.generation, iteration)
    generated = builder.build()
    summary.generated_by_origin.update(item.origin for item in generated)
    kept = _passing_filters(generated, config, database, summary)
    ids = database.add_structures(
        [item.atoms for item in kept], keys.CANDIDATE, iteration, [item.origin for item in kept]
    )
    summary.inserted = len(ids)
    summary.already_present = len(kept) - len(ids)
    _report(on_progress, "generating", 1, 1)
    logger.info(
        "iteration %d: generated %d, filtered %d, stored %d new candidates",
        iteration,
        summary.generated,
        summary.filtered,
        summary.inserted,
    )
    summary.selection = select_candidates(campaign, iteration, on_progress)
    return summary


def _add_anchors(campaign: Campaign) -> int:
    """The near-equilibrium anchors go to DFT directly (no pre-screen, not counted in
    n_select); returns how many the campaign has."""
    config, database = campaign.config, campaign.database
    exploration = config.exploration
    anchors = build_anchors(config.system, exploration.generation, exploration.anchors)
    if anchors:
        origins = [item.origin for item in anchors]
        database.add_structures([item.atoms for item in anchors], keys.SELECTED, 0, origins)
    return sum(database.count(**{keys.ORIGIN: origin}) for origin in ANCHOR_ORIGINS)


def explore_phase(
    campaign: Campaign, iteration: int, progress: PhaseProgress | None = None
) -> ExploreSummary:
    def report(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(done, total, stage)

    summary = run_exploration(campaign, iteration, report)
    selection = summary.selection
    return ExploreSummary(
        generated=summary.generated,
        filtered=summary.filtered,
        prescreened_out=selection.prescreened if selection else 0,
        selected=selection.selected_in_iteration if selection else 0,
        method=selection.method if selection else None,
        anchors=summary.anchors,
        by_composition=picks_by_composition(campaign.database, iteration),
    )


def select_phase(
    campaign: Campaign, iteration: int, progress: PhaseProgress | None = None
) -> SelectSummary:
    summary = select_candidates(campaign, iteration)
    # Counted from the database, so a rerun after a kill reports what the phase selected.
    selected = summary.selected_in_iteration
    return SelectSummary(
        iteration=iteration,
        prescreened_out=summary.prescreened,
        selected=selected,
        topped_up=summary.topped_up,
        method=summary.method,
        by_composition=picks_by_composition(campaign.database, iteration),
    )


def picks_by_composition(database: DatabaseManager, iteration: int) -> dict[str, int]:
    """The structures the iteration sent to DFT (selected, labeling, labeled or failed; a
    pick topped up from an earlier iteration counts where it was picked), per formula."""
    counts: Counter[str] = Counter()
    for status in (keys.SELECTED, keys.LABELING, keys.LABELED, keys.FAILED):
        for row in database.select(**{keys.STATUS: status}):
            if _sent_in(row) == iteration:
                counts[formula(_composition_of(row))] += 1
    return dict(counts)


def _sent_in(row: StructureRecord) -> int:
    return int(row.key_value_pairs.get(keys.SELECTION_ITERATION, row.iteration))


def _passing_filters(
    generated: Sequence[GeneratedStructure],
    config: MLIPConfig,
    database: DatabaseManager,
    summary: ExplorationSummary,
) -> list[GeneratedStructure]:
    kept = []
    for item in generated:
        rejection = _filter_rejection(item.atoms, config) or _invalid(database, item)
        if rejection is None:
            kept.append(item)
        else:
            summary.filtered_by_reason[rejection.kind] += 1
            logger.debug("%s filtered out: %s", item.origin, rejection)
    return kept


def _filter_rejection(atoms: Atoms, config: MLIPConfig) -> Rejection | None:
    filters = config.exploration.generation.filters
    return first_rejection(atoms, filters, config.system.min_distance)


def _invalid(database: DatabaseManager, item: GeneratedStructure) -> Rejection | None:
    try:
        database.validate(item.atoms)
    except StructureError as error:
        return Rejection(INVALID, str(error))
    return None


def select_candidates(
    campaign: Campaign, iteration: int, on_progress: ProgressCallback | None = None
) -> SelectionSummary:
    """Filter, pre-screen and select among all `candidate` rows of `iteration`, any origin."""
    config, database = campaign.config, campaign.database
    pipeline = SurrogatePipeline(config.exploration, config.system.elements)
    summary = SelectionSummary(iteration)
    rows = database.select(**{keys.STATUS: keys.CANDIDATE, keys.ITERATION: iteration})
    summary.candidates = len(rows)
    rows = _reject_filtered(database, rows, config, summary)
    stale = [row for row in rows if not _has_cache(row, pipeline.identity)]
    _evaluate(database, pipeline, stale, on_progress, summary.prescreened_by_reason)
    summary.evaluated = len(stale)
    survivors = _prescreen(database, pipeline, config, iteration, summary)
    _select(campaign, pipeline, survivors, summary, on_progress)
    logger.info(
        "iteration %d: %d candidates, %d pre-screened out, %d selected (%d in the iteration)",
        iteration,
        summary.candidates,
        summary.prescreened,
        summary.selected,
        summary.selected_in_iteration,
    )
    return summary


def _reject_filtered(
    database: DatabaseManager,
    rows: list[StructureRecord],
    config: MLIPConfig,
    summary: SelectionSummary,
) -> list[StructureRecord]:
    """Candidates from any source (MD extraction, import) must pass the same pre-DFT filters."""
    verdicts = [_filter_rejection(row.atoms, config) for row in rows]
    _reject(database, rows, verdicts, summary.filtered_by_reason)
    return [row for row, verdict in zip(rows, verdicts, strict=True) if verdict is None]


def _has_cache(row: StructureRecord, identity: str) -> bool:
    return (
        row.key_value_pairs.get(keys.SURROGATE_MODEL) == identity
        and keys.SURROGATE_ENERGY in row.key_value_pairs
        and keys.DESCRIPTOR in row.data
    )


def _evaluate(
    database: DatabaseManager,
    pipeline: SurrogatePipeline,
    rows: Sequence[StructureRecord],
    on_progress: ProgressCallback | None,
    failures: Counter[str] | None = None,
) -> None:
    """Run the surrogate batch by batch, caching results on the rows as each batch finishes."""
    batch_size = pipeline.exploration.surrogate.batch_size
    for start in range(0, len(rows), batch_size):
        _report(on_progress, "surrogate", start, len(rows))
        batch = rows[start : start + batch_size]
        predictions = pipeline.evaluate([row.atoms for row in batch])
        key_values, data, broken = {}, {}, []
        for row, prediction in zip(batch, predictions, strict=True):
            if isinstance(prediction, SurrogateFailure):
                broken.append((row, Rejection(SURROGATE_ERROR, prediction.error)))
                continue
            key_values[row.id] = {
                keys.SURROGATE_MODEL: pipeline.identity,
                keys.SURROGATE_ENERGY: prediction.energy_per_atom,
                keys.SURROGATE_MAX_FORCE: prediction.max_force,
            }
            data[row.id] = {keys.DESCRIPTOR: prediction.descriptor}
        database.annotate(key_values, data)
        if failures is not None:
            _reject(database, [row for row, _ in broken], [r for _, r in broken], failures)
    _report(on_progress, "surrogate", len(rows), len(rows))


def _prescreen(
    database: DatabaseManager,
    pipeline: SurrogatePipeline,
    config: MLIPConfig,
    iteration: int,
    summary: SelectionSummary,
) -> list[StructureRecord]:
    """Reject candidates with huge forces or energies; the energy references (per composition
    and per pure element) are the lowest of every structure of the iteration this surrogate
    evaluated, so re-runs judge alike."""
    evaluated = database.select(
        **{keys.ITERATION: iteration, keys.SURROGATE_MODEL: pipeline.identity}
    )
    energies, forces = _surrogate_values(evaluated)
    max_force = config.exploration.surrogate.max_force
    reference = energy_reference(energies, forces, max_force, _compositions(evaluated))
    candidates = [row for row in evaluated if row.status == keys.CANDIDATE]
    energies, forces = _surrogate_values(candidates)
    verdicts = pipeline.screen(energies, forces, _compositions(candidates), reference)
    _reject(database, candidates, verdicts, summary.prescreened_by_reason)
    return [row for row, verdict in zip(candidates, verdicts, strict=True) if verdict is None]


def _compositions(rows: Sequence[StructureRecord]) -> list[Composition]:
    return [_composition_of(row) for row in rows]


def _surrogate_values(rows: Sequence[StructureRecord]) -> tuple[np.ndarray, np.ndarray]:
    energies = [float(row.key_value_pairs[keys.SURROGATE_ENERGY]) for row in rows]
    forces = [float(row.key_value_pairs[keys.SURROGATE_MAX_FORCE]) for row in rows]
    return np.asarray(energies), np.asarray(forces)


def _reject(
    database: DatabaseManager,
    rows: Sequence[StructureRecord],
    verdicts: Sequence[Rejection | None],
    counts: Counter[str],
) -> None:
    """`rejected` with the reason, one transaction per distinct reason."""
    by_reason: dict[str, list[int]] = {}
    for row, verdict in zip(rows, verdicts, strict=True):
        if verdict is not None:
            by_reason.setdefault(str(verdict)[:500], []).append(row.id)
            counts[verdict.kind] += 1
    for reason, ids in by_reason.items():
        database.set_status(ids, keys.REJECTED, extra_keys={keys.REASON: reason})


def resolve_n_select(config: MLIPConfig) -> int:
    """`selection.n_select`, or the smallest multiple of the task slots that is >= 8."""
    chosen = config.exploration.selection.n_select
    if chosen is not None:
        return chosen
    slots = config.compute.task_slots
    return slots * math.ceil(MIN_DEFAULT_SELECT / slots)


@dataclass(frozen=True)
class Pick:
    index: int  # in the survivors
    extra: dict[str, float | int] = field(default_factory=dict)


def _select(
    campaign: Campaign,
    pipeline: SurrogatePipeline,
    survivors: Sequence[StructureRecord],
    summary: SelectionSummary,
    on_progress: ProgressCallback | None,
) -> None:
    """Up to n_select picks among the survivors, by the configured method; never more than
    n_select in the iteration however often this runs (reruns continue the count).

    Candidates earlier iterations left unpicked join in two cases, picked by the same method:
    those of each composition the iteration's own candidates do not cover (its MD ran
    elsewhere or found nothing there; MaxVol then takes only what lies outside the active
    set), so that picks can reach every composition; and all of them when the iteration's own
    candidates give fewer than n_select picks, so that an iteration's DFT budget is spent on
    what the current fit knows least, not dropped.
    """
    database = campaign.database
    already = len(_picks_of(database, summary.iteration))
    wanted = resolve_n_select(campaign.config) - already
    summary.selected_in_iteration = already
    if wanted <= 0:
        return
    method, fit = _method_and_fit(campaign, summary.iteration)
    summary.method = method
    _report(on_progress, "selecting", 0, wanted)
    earlier = _earlier_candidates(database, pipeline, summary.iteration, on_progress)
    covered = {_composition_of(row) for row in survivors}
    pool = [*survivors, *(row for row in earlier if _composition_of(row) not in covered)]
    picks = _picks_among(campaign, pipeline, pool, wanted, method, fit, summary, on_progress)
    _mark_selected(database, picks, already, method, summary.iteration)
    if len(picks) < wanted:
        taken = {row.id for row, _ in picks}
        rest = [row for row in earlier if row.id not in taken]
        more = _picks_among(
            campaign, pipeline, rest, wanted - len(picks), method, fit, summary, on_progress
        )
        _mark_selected(database, more, already + len(picks), method, summary.iteration)
        picks += more
    summary.selected = len(picks)
    summary.topped_up = sum(row.iteration < summary.iteration for row, _ in picks)
    summary.selected_in_iteration = already + summary.selected
    if summary.topped_up:
        logger.info(
            "iteration %d: %d of %d picks among the %d candidates earlier iterations left",
            summary.iteration,
            summary.topped_up,
            summary.selected,
            len(earlier),
        )
    _report(on_progress, "selecting", summary.selected, wanted)


def _picks_of(database: DatabaseManager, iteration: int) -> list[StructureRecord]:
    return [
        row for row in database.select(selection=keys.SELECTION_RANK) if _sent_in(row) == iteration
    ]


def _picks_among(
    campaign: Campaign,
    pipeline: SurrogatePipeline,
    rows: Sequence[StructureRecord],
    wanted: int,
    method: str,
    fit: TrainingResult | None,
    summary: SelectionSummary,
    on_progress: ProgressCallback | None,
) -> list[tuple[StructureRecord, Pick]]:
    """(row, pick) by `method`, the picks shared out over the compositions."""
    picks: list[tuple[StructureRecord, Pick]] = []
    if not rows:
        return picks
    for members, count in _composition_shares(campaign.database, rows, wanted):
        subset = [rows[index] for index in members]
        if method == "maxvol" and fit is not None:
            found = _maxvol_picks(subset, fit, count)
        elif method == "fps":
            found = _fps_picks(campaign.database, pipeline, subset, count, summary, on_progress)
        else:
            found = _representative_picks(campaign.config, method, subset, count, summary.iteration)
        picks += [(subset[pick.index], pick) for pick in found]
    return picks


def _mark_selected(
    database: DatabaseManager,
    picks: Sequence[tuple[StructureRecord, Pick]],
    first_rank: int,
    method: str,
    iteration: int,
) -> None:
    for rank, (row, pick) in enumerate(picks, start=first_rank):
        extra = {
            keys.SELECTION_RANK: rank,
            keys.SELECTION_METHOD: method,
            keys.SELECTION_ITERATION: iteration,
            **pick.extra,
        }
        database.set_status([row.id], keys.SELECTED, extra_keys=extra)


def _earlier_candidates(
    database: DatabaseManager,
    pipeline: SurrogatePipeline,
    iteration: int,
    on_progress: ProgressCallback | None,
) -> list[StructureRecord]:
    """Candidates of earlier iterations still unpicked: they passed their iteration's filters
    and pre-screen (the rest are `rejected`); a surrogate result that is missing or from
    another model is computed first, as descriptors and caches must be this pipeline's."""
    rows = [row for row in _rows_with_status(database, keys.CANDIDATE) if row.iteration < iteration]
    stale = [row for row in rows if not _has_cache(row, pipeline.identity)]
    if stale:
        _evaluate(database, pipeline, stale, on_progress)
        rows = _records(database, (row.id for row in rows))
    return [
        row for row in rows if row.status == keys.CANDIDATE and _has_cache(row, pipeline.identity)
    ]


def _composition_shares(
    database: DatabaseManager, survivors: Sequence[StructureRecord], wanted: int
) -> list[tuple[list[int], int]]:
    """(survivor indices, picks) per composition. With one composition: all of them, every
    pick. With several, see `balanced_shares`: no composition falls below half an even share
    of what was sent to DFT (anchors included), and beyond that picks go where the fewest
    explored structures are (anchors not counted: they are the same fixed set for every
    crystal); within one composition, the method picks."""
    groups: dict[Composition, list[int]] = {}
    for index, row in enumerate(survivors):
        groups.setdefault(_composition_of(row), []).append(index)
    if len(groups) == 1:
        return [(next(iter(groups.values())), wanted)]
    sent, explored = _sent_counts(database)
    available = {key: len(members) for key, members in groups.items()}
    shares = balanced_shares(available, explored, wanted, sent)
    return [(groups[key], count) for key, count in sorted(shares.items())]


def _sent_counts(database: DatabaseManager) -> tuple[Counter[Composition], Counter[Composition]]:
    """Per composition: the structures sent to DFT (selected, labeling or labeled), and of
    them those explored (anchors not counted)."""
    sent_rows = [
        (_composition_of(row), row.origin)
        for status in WARM_START_STATUSES
        for row in _rows_with_status(database, status)
    ]
    sent = Counter(key for key, _ in sent_rows)
    explored = Counter(key for key, origin in sent_rows if origin not in ANCHOR_ORIGINS)
    return sent, explored


def _composition_of(row: StructureRecord) -> Composition:
    return composition(row.atoms.get_chemical_symbols())


def _method_and_fit(campaign: Campaign, iteration: int) -> tuple[str, TrainingResult | None]:
    """maxvol needs the previous fit's potential and active set; without them, initial_method."""
    selection = campaign.config.exploration.selection
    if selection.method != "maxvol":
        return selection.method, None
    fit = latest_fit(campaign, before=iteration)
    if fit is not None and fit.active_set.is_file():
        return "maxvol", fit
    if fit is not None:
        logger.warning(
            "%s has no active set: selecting by %s", fit.folder, selection.initial_method
        )
    return selection.initial_method, None


def _maxvol_picks(
    survivors: Sequence[StructureRecord], fit: TrainingResult, wanted: int
) -> list[Pick]:
    atoms = [row.atoms for row in survivors]
    result = select_maxvol(atoms, fit.potential, fit.active_set, wanted)
    logger.info(
        "MaxVol in %s: %d of %d candidates outside the active set, %d picked",
        fit.folder.name,
        result.extrapolative,
        len(survivors),
        len(result.indices),
    )
    return [
        Pick(index, {keys.SELECTION_GAMMA: gamma})
        for index, gamma in zip(result.indices, result.gammas, strict=True)
    ]


def _fps_picks(
    database: DatabaseManager,
    pipeline: SurrogatePipeline,
    survivors: Sequence[StructureRecord],
    wanted: int,
    summary: SelectionSummary,
    on_progress: ProgressCallback | None,
) -> list[Pick]:
    """Farthest points among the survivors, far from everything already selected or labeled."""
    known = _warm_start_descriptors(database, pipeline, on_progress)
    summary.warm_start = len(known)
    result = pipeline.select(_descriptors(survivors), np.stack(known) if known else None, wanted)
    return [
        Pick(
            int(index), {keys.SELECTION_DISTANCE: float(distance)} if np.isfinite(distance) else {}
        )
        for index, distance in zip(result.indices, result.distances, strict=True)
    ]


def _representative_picks(
    config: MLIPConfig,
    method: str,
    survivors: Sequence[StructureRecord],
    wanted: int,
    iteration: int,
) -> list[Pick]:
    """random: a seeded draw; kmedoids: one per cluster of surrogate descriptors. Neither looks
    at labeled structures (imports included): they only sample the candidate pool."""
    seed = config.exploration.selection.seed
    if method == "random":
        indices = random_draw(len(survivors), wanted, seed, iteration)
    else:
        indices = representatives(_descriptors(survivors), wanted, seed)
    return [Pick(int(index)) for index in indices]


def _descriptors(rows: Sequence[StructureRecord]) -> np.ndarray:
    return np.stack([np.asarray(row.data[keys.DESCRIPTOR]) for row in rows])


def _warm_start_descriptors(
    database: DatabaseManager, pipeline: SurrogatePipeline, on_progress: ProgressCallback | None
) -> list[np.ndarray]:
    """Descriptors of every selected, labeling or labeled row (any iteration), cached on them."""
    rows = [row for status in WARM_START_STATUSES for row in _rows_with_status(database, status)]
    stale = [row for row in rows if not _has_cache(row, pipeline.identity)]
    if stale:
        _evaluate(database, pipeline, stale, on_progress)
        fresh = {record.id: record for record in _records(database, (row.id for row in stale))}
        rows = [fresh.get(row.id, row) for row in rows]
    return [
        np.asarray(row.data[keys.DESCRIPTOR]) for row in rows if _has_cache(row, pipeline.identity)
    ]


def _rows_with_status(database: DatabaseManager, status: str) -> list[StructureRecord]:
    return database.select(**{keys.STATUS: status})


def _records(database: DatabaseManager, ids: Iterable[int]) -> list[StructureRecord]:
    return [database.get(row_id) for row_id in ids]


def _report(on_progress: ProgressCallback | None, stage: str, done: int, total: int) -> None:
    if on_progress is not None:
        on_progress(stage, done, total)
