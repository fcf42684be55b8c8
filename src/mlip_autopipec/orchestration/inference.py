"""Phase D wiring: MD runs through the TaskQueue, then extracted environments become candidates.

Policy lives in `inference`: which runs to make and where they start (`planning`), which
engine runs them (`engines`), which environments are new (`novelty`). This module reads rows,
calls those with plain data and writes the results back.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
from ase import Atoms, units

from mlip_autopipec.core import keys
from mlip_autopipec.core.composition import composition
from mlip_autopipec.core.database import StructureError, validate_structure
from mlip_autopipec.core.files import write_atomically
from mlip_autopipec.generation.anchors import ANCHOR_ORIGINS, ANCHOR_VOLUME
from mlip_autopipec.generation.builder import SURFACE, VACANCY
from mlip_autopipec.inference import planning
from mlip_autopipec.inference.engines import MDEngineSpec, run_md_task, select_engine
from mlip_autopipec.inference.extraction import (
    EXTRACT_ORIGIN,
    EmbeddingExtractor,
    ExtractedEnvironment,
)
from mlip_autopipec.inference.md_types import MDResult, MDRunSpec, PotentialFiles
from mlip_autopipec.inference.novelty import (
    ace_calculator,
    novel_environments,
    relaxed_environments,
)
from mlip_autopipec.inference.planning import StartCandidate, VolumeScan, plan_md
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.errors import WorkflowError
from mlip_autopipec.orchestration.fit_errors import newest_new_data_errors, validation_errors
from mlip_autopipec.orchestration.summaries import ExtractSummary, InferSummary, PhaseProgress
from mlip_autopipec.orchestration.task_queue import TaskFailure, campaign_task_queue
from mlip_autopipec.orchestration.training import finished_fits, latest_fit
from mlip_autopipec.training.pacemaker import TrainingResult

logger = logging.getLogger(__name__)

SUMMARY_FILE = "md_summary.json"
FRAMES_FILE = "extrapolative_frames.extxyz"
# Origins whose start kind is not "bulk"; cut-out environments never start MD (see planning).
START_KINDS_BY_ORIGIN: dict[str, str | None] = {
    EXTRACT_ORIGIN: None,
    **{origin: None for origin in ANCHOR_ORIGINS},  # tiny cells: their job is the fit
    VACANCY: planning.VACANCY,
    SURFACE: planning.SURFACE,
}


@dataclass
class MDRunStats:
    run_id: str
    temperature: float
    steps_done: int
    halted: bool
    extrapolative_share: float
    max_gamma_per_check: list[float]
    n_frames: int
    error: str | None
    # Optional, so summaries written before restarts existed still load (load_summary).
    start: str = planning.BULK
    restarts: int = 0
    halts: int = 0
    segment_steps: list[int] = field(default_factory=list)
    start_volume: float | None = None  # Å^3/atom of the start structure
    start_pressure: float | None = None  # GPa, the potential's pressure at the start


@dataclass
class InferenceSummary:
    iteration: int
    potential: str
    runs: list[MDRunStats] = field(default_factory=list)
    engine: str | None = None

    def share_by_temperature(self) -> dict[float, float]:
        by_temperature: dict[float, list[float]] = {}
        for run in self.runs:
            by_temperature.setdefault(run.temperature, []).append(run.extrapolative_share)
        return {t: float(np.mean(shares)) for t, shares in sorted(by_temperature.items())}

    @property
    def halted(self) -> int:
        """Runs that reached gamma_upper at least once."""
        return sum(run.halted for run in self.runs)

    @property
    def restarts(self) -> int:
        return sum(run.restarts for run in self.runs)

    def start_conditions(self) -> dict[str, str]:
        """Per start kind: the start structures' volume and the potential's pressure there (a
        range when its starts differ, e.g. one per composition)."""
        volumes: dict[str, list[float]] = {}
        pressures: dict[str, list[float]] = {}
        for run in self.runs:
            if run.start_volume is not None:
                volumes.setdefault(run.start, []).append(run.start_volume)
                if run.start_pressure is not None:
                    pressures.setdefault(run.start, []).append(run.start_pressure)
        shown: dict[str, str] = {}
        for kind, found in volumes.items():
            shown[kind] = f"{_span(found, '.2f', '-')} Å³/atom"
            if kind in pressures:
                shown[kind] += f", {_span(pressures[kind], '+.1f', ' to ')} GPa"
        return shown

    def runs_by_start(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for run in self.runs:
            counts[run.start] = counts.get(run.start, 0) + 1
        return counts


def _span(values: list[float], spec: str, between: str) -> str:
    low, high = format(min(values), spec), format(max(values), spec)
    return low if low == high else f"{low}{between}{high}"


def potential_files(fit: TrainingResult) -> PotentialFiles:
    return PotentialFiles(yaml=fit.potential, yace=fit.yace, active_set=fit.active_set)


def previous_fit(campaign: Campaign, iteration: int) -> TrainingResult:
    fit = latest_fit(campaign, before=iteration)
    if fit is None:
        raise WorkflowError(f"iteration {iteration} needs a trained potential; none found")
    return fit


def start_candidates(campaign: Campaign) -> list[StartCandidate]:
    return [
        StartCandidate(r.atoms, r.origin, r.atoms.get_potential_energy() / len(r.atoms))
        for r in campaign.database.select(**{keys.STATUS: keys.LABELED})
    ]


def volume_scans(campaign: Campaign) -> list[VolumeScan]:
    """The labeled E-V anchors, one scan per crystal (per unstrained cell they came from)."""
    rows = campaign.database.select(**{keys.STATUS: keys.LABELED, keys.ORIGIN: ANCHOR_VOLUME})
    by_cell: dict[bytes, list[Atoms]] = {}
    for row in rows:
        if keys.KPOINT_CELL in row.atoms.info:
            cell = np.round(np.asarray(row.atoms.info[keys.KPOINT_CELL]), 4)
            by_cell.setdefault(cell.tobytes(), []).append(row.atoms)
    scans = []
    for members in by_cell.values():
        reference = abs(float(np.linalg.det(members[0].info[keys.KPOINT_CELL])))
        n_atoms = len(members[0])
        scans.append(
            VolumeScan(
                reference_volume=reference / n_atoms,
                volumes=[atoms.get_volume() / n_atoms for atoms in members],
                energies=[atoms.get_potential_energy() / n_atoms for atoms in members],
                composition=composition(members[0].get_chemical_symbols()),
            )
        )
    return scans


def run_inference(
    campaign: Campaign,
    iteration: int,
    fit: TrainingResult,
    progress: PhaseProgress | None = None,
) -> InferenceSummary:
    """MD with gamma monitoring for every temperature; finished results are read back, not rerun."""
    folder = campaign.layout.md_dir(iteration)
    if (folder / SUMMARY_FILE).is_file():
        return load_summary(folder)
    engine = select_engine(campaign.config.inference)
    candidates = start_candidates(campaign)
    scans = volume_scans(campaign)
    items = plan_md(candidates, campaign.config.inference, iteration, START_KINDS_BY_ORIGIN, scans)
    summary = InferenceSummary(iteration=iteration, potential=str(fit.folder), engine=engine.name)
    outcomes = _run_md(campaign, iteration, engine, items, fit, progress)
    conditions = start_conditions(items, fit)
    for stats, _ in outcomes:
        stats.start_volume, stats.start_pressure = conditions.get(stats.run_id, (None, None))
    summary.runs = sorted((stats for stats, _ in outcomes), key=lambda r: (r.temperature, r.run_id))
    if all(run.error is not None for run in summary.runs):
        errors = "; ".join(f"{run.run_id}: {run.error}" for run in summary.runs)
        raise WorkflowError(f"every MD run failed (nothing saved, rerun after fixing): {errors}")
    _save(folder, summary, [frame for _, kept in outcomes for frame in kept])
    return summary


def start_conditions(
    items: list[tuple[Atoms, MDRunSpec]], fit: TrainingResult
) -> dict[str, tuple[float, float | None]]:
    """(volume per atom, the potential's pressure in GPa) of every run's start structure."""
    calculator = None
    try:
        calculator = ace_calculator(str(fit.potential))
    except Exception as error:  # noqa: BLE001 - a figure to show; MD results never depend on it
        logger.warning("no start pressures: %s", error)
    conditions: dict[str, tuple[float, float | None]] = {}
    for atoms, spec in items:
        pressure = None
        if calculator is not None and spec.start != planning.SURFACE:
            pressure = _pressure(atoms, calculator)
        conditions[spec.run_id] = (round(atoms.get_volume() / len(atoms), 3), pressure)
    return conditions


def _pressure(atoms: Atoms, calculator: Any) -> float | None:
    """GPa; None when the potential cannot give it (a figure to show, never a failure)."""
    probe = atoms.copy()
    probe.calc = calculator
    try:
        return round(float(-np.trace(probe.get_stress(voigt=False)) / 3 / units.GPa), 2)
    except Exception as error:  # noqa: BLE001
        logger.warning("no start pressure for %s: %s", atoms.get_chemical_formula(), error)
        return None


def _run_md(
    campaign: Campaign,
    iteration: int,
    engine: MDEngineSpec,
    items: list[tuple[Atoms, MDRunSpec]],
    fit: TrainingResult,
    progress: PhaseProgress | None,
) -> list[tuple[MDRunStats, list[Atoms]]]:
    gamma_lower = campaign.config.inference.gamma_lower
    results: list[tuple[MDRunStats, list[Atoms]]] = []
    with campaign_task_queue(campaign) as queue:
        for batch in queue.map_unordered(
            run_md_task,
            items,
            engine=engine,
            potential=potential_files(fit),
            run_root=campaign.layout.md_runs_dir(iteration),
        ):
            results.extend(_stats(result, gamma_lower) for result in batch)
            if progress is not None:
                top = max((max(s.max_gamma_per_check, default=0.0) for s, _ in results))
                progress(len(results), len(items), f"{engine.name}, max gamma {top:.2f}")
    return results


def infer_phase(
    campaign: Campaign, iteration: int, progress: PhaseProgress | None = None
) -> InferSummary:
    fit = previous_fit(campaign, iteration)
    summary = run_inference(campaign, iteration, fit, progress)
    workflow = campaign.config.workflow
    judged, judged_by = honest_force_rmse(campaign, iteration, fit)
    return InferSummary(
        iteration=iteration,
        runs=len(summary.runs),
        halted=summary.halted,
        errors=sum(run.error is not None for run in summary.runs),
        extrapolative_share={
            f"{t:g}": round(share, 4) for t, share in summary.share_by_temperature().items()
        },
        engine=summary.engine,
        fit_test_rmse_forces=fit.metrics.test.rmse_forces if fit.metrics.test else None,
        max_extrapolative_fraction=workflow.max_extrapolative_fraction,
        target_force_rmse=workflow.target_force_rmse,
        judged_rmse_forces=judged,
        judged_by=judged_by,
        runs_by_start=summary.runs_by_start(),
        restarts=summary.restarts,
        start_conditions=summary.start_conditions(),
    )


NOTHING_MEASURED = "no honest error measured yet"


def honest_force_rmse(
    campaign: Campaign, iteration: int, fit: TrainingResult
) -> tuple[float | None, str | None]:
    """The force RMSE (meV/Å) convergence is judged on: the validation set's, scored by the
    potential the MD ran with, when one is configured; else the newest error on new data (in
    iteration k, fit k-2 on the batch labeled in k-1: conservative). (None, why) if neither."""
    if campaign.config.workflow.validation_set is not None:
        fit_iteration = next(n for n, f in finished_fits(campaign) if f.folder == fit.folder)
        validation = validation_errors(campaign, fit_iteration, fit)
        if validation is not None:
            return validation.rmse_forces, "validation-set"
    newest = newest_new_data_errors(campaign, before=iteration)
    if newest is None:
        return None, NOTHING_MEASURED
    measured_in, errors = newest
    return errors.rmse_forces, f"new-data (measured before fit {measured_in})"


def _stats(result: MDResult | TaskFailure, gamma_lower: float) -> tuple[MDRunStats, list[Atoms]]:
    if isinstance(result, TaskFailure):
        _, spec = result.item
        failed = MDResult(
            run_id=spec.run_id, temperature=spec.temperature, error=result.error, start=spec.start
        )
        return _stats(failed, gamma_lower)
    stats = MDRunStats(
        run_id=result.run_id,
        temperature=result.temperature,
        steps_done=result.steps_done,
        halted=result.halted,
        extrapolative_share=result.extrapolative_share(gamma_lower),
        max_gamma_per_check=[round(g, 4) for g in result.max_gamma_per_check],
        n_frames=len(result.frames),
        error=result.error,
        start=result.start,
        restarts=max(len(result.segments) - 1, 0),
        halts=result.halts,
        segment_steps=[segment.steps_done for segment in result.segments],
    )
    return stats, result.frames


def _save(folder: Path, summary: InferenceSummary, frames: list[Atoms]) -> None:
    """Frames first, the summary last and atomically: its presence means the phase finished."""
    folder.mkdir(parents=True, exist_ok=True)
    if frames:
        ase.io.write(folder / FRAMES_FILE, frames, format="extxyz")
    write_atomically(folder / SUMMARY_FILE, json.dumps(asdict(summary), indent=1))


def load_summary(folder: Path) -> InferenceSummary:
    raw: dict[str, Any] = json.loads((folder / SUMMARY_FILE).read_text())
    runs = [MDRunStats(**_with_segments(run)) for run in raw.pop("runs")]
    return InferenceSummary(runs=runs, **raw)


def _with_segments(run: dict[str, Any]) -> dict[str, Any]:
    """A run of a summary written before restarts existed was one segment from a bulk cell."""
    run.setdefault("halts", int(run["halted"]))
    run.setdefault("segment_steps", [run["steps_done"]])
    return run


def load_frames(folder: Path) -> list[Atoms]:
    path = folder / FRAMES_FILE
    return list(ase.io.read(path, index=":")) if path.is_file() else []


def extract_candidates(campaign: Campaign, iteration: int, fit: TrainingResult) -> int:
    """Cut environments out of the kept frames and store the new ones as candidates."""
    config, database = campaign.config, campaign.database
    frames = load_frames(campaign.layout.md_dir(iteration))
    extractor = EmbeddingExtractor(
        threshold=config.inference.gamma_lower,
        cutoff=config.training.cutoff,
        buffer=config.inference.extraction_buffer,
        min_distance=config.system.min_distance,
    )
    found = [
        (env, _provenance(frame, env, iteration))
        for frame in frames
        for env in extractor.extract(frame)
    ]
    environments = [env for env, _ in found]
    calculator = ace_calculator(str(fit.potential)) if environments else None
    if config.inference.relax_boundary and environments:
        environments = relaxed_environments(environments, calculator, config.training.cutoff)
    valid = [i for i, env in enumerate(environments) if _is_valid(env.atoms, campaign)]
    labeled = [r.atoms for r in database.select(**{keys.STATUS: keys.LABELED})]
    novel = novel_environments([environments[i] for i in valid], labeled, calculator)
    kept = [valid[i] for i in novel]
    ids = database.add_structures(
        [environments[i].atoms for i in kept],
        keys.CANDIDATE,
        iteration,
        EXTRACT_ORIGIN,
        extra_keys=[found[i][1] for i in kept],
        data=[_training_weights(environments[i]) for i in kept],
    )
    logger.info(
        "iteration %d: %d environments from %d frames, %d new candidates",
        iteration,
        len(environments),
        len(frames),
        len(ids),
    )
    # Counted from the database, so a rerun after a kill reports what the phase produced.
    return database.count(**{keys.ORIGIN: EXTRACT_ORIGIN, keys.ITERATION: iteration})


def extract_phase(
    campaign: Campaign, iteration: int, progress: PhaseProgress | None = None
) -> ExtractSummary:
    count = extract_candidates(campaign, iteration, previous_fit(campaign, iteration))
    return ExtractSummary(iteration=iteration, candidates=count)


def _provenance(frame: Atoms, env: ExtractedEnvironment, iteration: int) -> dict[str, Any]:
    return {
        "md_iteration": iteration,
        "md_run": str(frame.info.get("run_id", "")),
        "md_step": int(frame.info.get("step", -1)),
        "centre_atom": env.centre,
        "centre_gamma": round(env.gamma, 4),
    }


def _training_weights(env: ExtractedEnvironment) -> dict[str, Any]:
    """Row data that survives labeling: the per-atom force weights of a cut-out environment."""
    weights = env.force_weights if env.force_weights is not None else np.ones(len(env.atoms))
    return {keys.FORCE_WEIGHTS: [float(w) for w in weights]}


def _is_valid(atoms: Atoms, campaign: Campaign) -> bool:
    system = campaign.config.system
    try:
        validate_structure(atoms, system.min_distance, system.elements)
    except StructureError as error:
        logger.info("dropping an extracted environment: %s", error)
        return False
    return True
