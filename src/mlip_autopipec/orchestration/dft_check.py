"""DFT check wiring: pw.x on a few of the campaign's structures at the configured and denser
settings, judged by `dft.check`, before any label is spent.

Each settings variant labels through the normal path (Dask + pw.x, `selected` then `labeled`)
in a database of its own, work_dir/dft_check/runs/<key>/check.db, where <key> names exactly
the pw.x inputs it holds: a rerun, or a later check that needs the same calculations, finds
them there and runs no pw.x again. The verdict goes to work_dir/dft_check/result.json with the
fingerprint of all inputs; it is reused until the dft settings, the check's settings or its
structures change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ase import Atoms

from mlip_autopipec.config import DFTConfig, MLIPConfig
from mlip_autopipec.core import keys
from mlip_autopipec.core.database import DatabaseManager
from mlip_autopipec.core.files import write_atomically
from mlip_autopipec.dft.check import (
    BASE,
    CUTOFF,
    INTERMEDIATE,
    KPOINTS,
    CheckStructure,
    SCFValues,
    calculation_key,
    check_settings,
    compare,
    extrapolated,
    intermediate_settings,
    kpoints_of,
    physical_settings,
    pick_structures,
    settings_fingerprint,
)
from mlip_autopipec.dft.check_verdict import CheckOutcome, judge, outcome_document
from mlip_autopipec.errors import UserError
from mlip_autopipec.generation import StructureBuilder, first_rejection
from mlip_autopipec.generation.anchors import build_anchors
from mlip_autopipec.orchestration.campaign import Campaign, CampaignLayout
from mlip_autopipec.orchestration.labeling import LabelingProgress, label_selected
from mlip_autopipec.orchestration.summaries import PhaseProgress

logger = logging.getLogger(__name__)

CHECK_FOLDER = "dft_check"
RESULT_NAME = "result.json"
CHECK_DATABASE = "check.db"
ORIGIN = "dft_check"
CHECK_INPUT = "check_input"  # row key: the calculation key of its pw.x input
MIN_STRUCTURES = 2  # relative energies need two
LABEL_ROUNDS = 2  # a failed pw.x run of the check is tried once more before the check stops


class DFTCheckFailed(UserError):
    """The dft settings are too far from converged, or the check could not run pw.x."""


@dataclass(frozen=True)
class DFTCheckSummary:
    """The check, shown like a phase by `run` (never stored in workflow.json)."""

    passed: bool
    message: str
    reused: bool = False
    result: str | None = None  # the result.json it came from

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def stop_reason(self) -> str | None:
        return None if self.passed else self.message

    def describe(self) -> str:
        """Passed: the numbers; failed: only that (`run` then stops with the one line)."""
        stored = " (stored result)" if self.reused else ""
        return f"passed{stored}: {self.message}" if self.passed else f"failed{stored}"


@dataclass(frozen=True)
class CheckPlan:
    """What the check runs: its structures, the settings per variant and their keys."""

    structures: list[CheckStructure]
    settings: dict[str, DFTConfig]
    fingerprint: str


def check_folder(campaign: Campaign) -> Path:
    return campaign.layout.work_dir / CHECK_FOLDER


def result_path(campaign: Campaign) -> Path:
    return check_folder(campaign) / RESULT_NAME


def campaign_structures(config: MLIPConfig) -> list[tuple[Atoms, str]]:
    """Iteration 0's generated structures that pass the pre-DFT filters, and its anchors,
    with their origin: what the campaign's first labels are made of."""
    generation = config.exploration.generation
    builder = StructureBuilder(config.system, generation, 0)
    filters, floor = generation.filters, config.system.min_distance
    generated = [
        (item.atoms, item.origin)
        for item in builder.build()
        if first_rejection(item.atoms, filters, floor) is None
    ]
    anchors = build_anchors(config.system, generation, config.exploration.anchors)
    return [(item.atoms, item.origin) for item in anchors] + generated


def check_plan(config: MLIPConfig) -> CheckPlan:
    """The structures and settings the check would run now, and their fingerprint (cheap)."""
    structures = pick_structures(campaign_structures(config))
    settings = check_settings(config.dft, config.dft_check)
    run_keys = [calculation_key(s.atoms, dft) for dft in settings.values() for s in structures]
    return CheckPlan(structures, settings, settings_fingerprint(config.dft_check, run_keys))


def stored_result(campaign: Campaign) -> dict[str, Any] | None:
    """result.json as written, or None when there is none (or it cannot be read)."""
    path = result_path(campaign)
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        logger.warning("ignoring %s: %s", path, error)
        return None
    return dict(document) if isinstance(document, dict) else None


def run_dft_check(
    campaign: Campaign, progress: PhaseProgress | None = None, reuse: bool = True
) -> tuple[dict[str, Any], bool]:
    """The check's document and whether it was reused; pw.x runs only for what is missing."""
    config = campaign.config
    plan = check_plan(config)
    stored = stored_result(campaign) if reuse else None
    if stored is not None and stored.get("fingerprint") == plan.fingerprint:
        return stored, True
    if len(plan.structures) < MIN_STRUCTURES:
        raise DFTCheckFailed("the DFT check needs at least two generated structures")
    start = time.perf_counter()
    counter = _Counter(progress, len(plan.settings) * len(plan.structures))
    values = {
        name: label_variant(campaign, name, dft, plan, counter)
        for name, dft in plan.settings.items()
    }
    outcome = _judge(config, plan, values)
    if "kpoints" in outcome.blamed:
        middle = intermediate_settings(config.dft, config.dft_check)
        counter.total += len(plan.structures)
        values[INTERMEDIATE] = label_variant(campaign, INTERMEDIATE, middle, plan, counter)
        outcome = _judge(config, plan, values, middle.kspacing)
    document = _document(config, plan, values, outcome, time.perf_counter() - start)
    document["pw_time"] = {name: round(seconds, 1) for name, seconds in counter.pw_time.items()}
    write_atomically(result_path(campaign), json.dumps(document, indent=1))
    logger.info("DFT check: %s", outcome.message)
    return document, False


def dft_check_summary(campaign: Campaign, progress: PhaseProgress | None = None) -> DFTCheckSummary:
    """`run`'s first step: the stored or a fresh check, as a summary (failed or not)."""
    document, reused = run_dft_check(campaign, progress)
    path = str(result_path(campaign))
    return DFTCheckSummary(bool(document["passed"]), str(document["message"]), reused, path)


def refusal(summary: DFTCheckSummary) -> DFTCheckFailed:
    """The one line a failed check stops `run` and `check-dft` with."""
    where = summary.result or f"work_dir/{CHECK_FOLDER}/{RESULT_NAME}"
    return DFTCheckFailed(f"DFT check failed: {summary.message} (details: {where})")


def _judge(
    config: MLIPConfig,
    plan: CheckPlan,
    values: dict[str, dict[str, SCFValues]],
    intermediate_kspacing: float | None = None,
) -> CheckOutcome:
    base, dense_k, high_cut = values[BASE], values[KPOINTS], values[CUTOFF]
    converged = extrapolated(base, dense_k, high_cut)
    complete = plan.structures
    k, c = plan.settings[KPOINTS], plan.settings[CUTOFF]
    dft = config.dft
    differences = (
        compare(complete, base, dense_k, "kpoints", f"kspacing {dft.kspacing:g} vs {k.kspacing:g}"),
        compare(complete, base, high_cut, "cutoff", f"ecutwfc {dft.ecutwfc:g} vs {c.ecutwfc:g}"),
        compare(complete, base, converged, "total", "configured vs converged estimate"),
    )
    middle = None
    if intermediate_kspacing is not None and INTERMEDIATE in values:
        text = f"kspacing {intermediate_kspacing:g} vs converged estimate"
        middle = (
            intermediate_kspacing,
            compare(complete, values[INTERMEDIATE], converged, "intermediate", text),
        )
    return judge(dft, config.dft_check, differences, middle)


class _Counter:
    """Turns each variant's labeling progress into one count over the whole check."""

    def __init__(self, progress: PhaseProgress | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0
        self.pw_time: dict[str, float] = {}  # s of pw.x per variant, stored runs included

    def variant(self, name: str) -> Any:
        def show(counts: LabelingProgress) -> None:
            if self.progress is not None:
                done = self.done + counts.labeled + counts.failed
                self.progress(done, self.total, f"pw.x {name}, {counts.running} running")

        return show


def variant_key(dft: DFTConfig) -> str:
    """The folder of one settings variant: named by what its labels depend on."""
    settings = json.dumps(physical_settings(dft), sort_keys=True)
    return hashlib.sha256(settings.encode()).hexdigest()[:12]


def label_variant(
    campaign: Campaign, name: str, dft: DFTConfig, plan: CheckPlan, counter: _Counter
) -> dict[str, SCFValues]:
    """Label the check's structures at `dft` in the variant's own database; results by name.
    Rows are found by their pw.x input (`CHECK_INPUT`), so a structure labeled by an earlier
    check is reused; one that failed is tried again (e.g. after raising dft.timeout)."""
    folder = check_folder(campaign) / "runs" / variant_key(dft)
    folder.mkdir(parents=True, exist_ok=True)
    config = campaign.config.model_copy(update={"dft": dft})
    system = config.system
    database = DatabaseManager(
        folder / CHECK_DATABASE, min_distance=system.min_distance, allowed_elements=system.elements
    )
    wanted = {calculation_key(s.atoms, dft): s for s in plan.structures}
    stored = {r.key_value_pairs.get(CHECK_INPUT): r for r in database.select(origin=ORIGIN)}
    new = [(key, s) for key, s in wanted.items() if key not in stored]
    database.add_structures(
        [s.atoms for _, s in new],
        keys.SELECTED,
        0,
        ORIGIN,
        extra_keys=[{CHECK_INPUT: key} for key, _ in new],
        skip_duplicates=False,  # the same cell with another k-mesh cell is another input
    )
    variant = Campaign(config, database, CampaignLayout(folder))
    for _ in range(LABEL_ROUNDS):  # a second round for a run killed from outside (SIGTERM)
        _requeue_failed(database, set(wanted))
        label_selected(variant, counter.variant(name))
    counter.done += len(plan.structures)
    rows = {r.key_value_pairs.get(CHECK_INPUT): r for r in database.select(origin=ORIGIN)}
    values = {}
    for key, structure in wanted.items():
        row = rows[key]
        if row.status != keys.LABELED:
            reason = row.key_value_pairs.get(keys.REASON, row.status)
            raise DFTCheckFailed(
                f"DFT check: pw.x failed on the {structure.name} structure ({len(structure.atoms)} "
                f"atoms) at {name} settings: {reason}; see {folder / 'dft'} (a rerun tries again)"
            )
        results = row.atoms.calc.results
        values[structure.name] = SCFValues(
            float(results["energy"]), results["forces"], results.get("stress")
        )
        counter.pw_time[name] = counter.pw_time.get(name, 0.0) + float(
            row.key_value_pairs.get(keys.DFT_WALL_TIME, 0.0)
        )
    return values


def _requeue_failed(database: DatabaseManager, wanted: set[str]) -> None:
    rows = database.select(origin=ORIGIN, **{keys.STATUS: keys.FAILED})
    database.set_status(
        [r.id for r in rows if r.key_value_pairs.get(CHECK_INPUT) in wanted], keys.SELECTED
    )


def _document(
    config: MLIPConfig,
    plan: CheckPlan,
    values: dict[str, dict[str, SCFValues]],
    outcome: CheckOutcome,
    seconds: float,
) -> dict[str, Any]:
    used = dict(plan.settings)
    if INTERMEDIATE in values:
        used[INTERMEDIATE] = intermediate_settings(config.dft, config.dft_check)
    return {
        "fingerprint": plan.fingerprint,
        "dft": physical_settings(config.dft),
        "settings": {name: _settings_row(dft) for name, dft in used.items()},
        "structures": [_structure_row(s, used) for s in plan.structures],
        **outcome_document(outcome, config.dft_check),
        "wall_time": round(seconds, 1),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _settings_row(dft: DFTConfig) -> dict[str, Any]:
    ecutrho = dft.ecutrho if dft.ecutrho is not None else 4 * dft.ecutwfc
    return {"kspacing": dft.kspacing, "ecutwfc": dft.ecutwfc, "ecutrho": ecutrho}


def _structure_row(structure: CheckStructure, used: dict[str, DFTConfig]) -> dict[str, Any]:
    atoms = structure.atoms
    meshes = {name: list(kpoints_of(atoms, dft)) for name, dft in used.items()}
    volume = float(atoms.get_volume()) / len(atoms) if atoms.cell.rank == 3 else None
    return {
        "name": structure.name,
        "origin": structure.origin,
        "formula": atoms.get_chemical_formula(),
        "atoms": len(atoms),
        "volume_per_atom": None if volume is None else round(volume, 3),
        "kpoints": meshes,
    }
