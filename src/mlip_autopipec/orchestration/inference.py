"""Phase D wiring: MD runs through the TaskQueue, then extracted environments become candidates."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
from ase import Atoms

from mlip_autopipec.config import MLIPConfig
from mlip_autopipec.core import keys
from mlip_autopipec.core.database import DatabaseManager, StructureError, validate_structure
from mlip_autopipec.core.quiet_imports import pyace_calculator
from mlip_autopipec.inference.extraction import (
    EmbeddingExtractor,
    ExtractedEnvironment,
    deduplicate,
    relax_boundary,
)
from mlip_autopipec.inference.lammps import LammpsRunner
from mlip_autopipec.inference.md import MDResult, MDRunSpec, PotentialFiles, run_md_task
from mlip_autopipec.orchestration.database import open_database
from mlip_autopipec.orchestration.errors import WorkflowError
from mlip_autopipec.orchestration.task_queue import TaskFailure, TaskQueue
from mlip_autopipec.training.pacemaker import TrainingResult

logger = logging.getLogger(__name__)

SUMMARY_FILE = "md_summary.json"
FRAMES_FILE = "extrapolative_frames.extxyz"
EXTRACT_ORIGIN = "md:extract"
# Two environments are duplicates when the ACE projections (B-basis functions) of their centre
# atoms differ by less than this fraction of a typical projection vector's length.
DEDUP_RELATIVE_TOLERANCE = 0.005


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


@dataclass
class InferenceSummary:
    iteration: int
    potential: str
    runs: list[MDRunStats] = field(default_factory=list)

    def share_by_temperature(self) -> dict[float, float]:
        by_temperature: dict[float, list[float]] = {}
        for run in self.runs:
            by_temperature.setdefault(run.temperature, []).append(run.extrapolative_share)
        return {t: float(np.mean(shares)) for t, shares in sorted(by_temperature.items())}

    @property
    def halted(self) -> int:
        return sum(run.halted for run in self.runs)


def md_folder(config: MLIPConfig, iteration: int) -> Path:
    return config.workflow.work_dir / "md" / f"iter_{iteration:03d}"


def potential_files(fit: TrainingResult) -> PotentialFiles:
    return PotentialFiles(yaml=fit.potential, yace=fit.yace, active_set=fit.active_set)


def md_specs(config: MLIPConfig, iteration: int) -> list[MDRunSpec]:
    inference = config.inference
    pressures: list[float | None] = [None]
    if inference.pressures:
        pressures = list(inference.pressures)
    specs: list[MDRunSpec] = []
    for temperature in inference.temperatures:
        for pressure in pressures:
            for repeat in range(inference.runs_per_temperature):
                run_id = f"T{temperature:g}" + (f"_P{pressure:g}" if pressure is not None else "")
                run_id += f"_r{repeat}"
                seed = 1000 * iteration + len(specs)
                specs.append(MDRunSpec.from_config(inference, run_id, temperature, pressure, seed))
    return specs


def check_engine(config: MLIPConfig) -> None:
    """Fail before any MD is submitted when the configured engine cannot run here."""
    if config.inference.engine == "lammps":
        LammpsRunner(tuple(config.inference.lammps_command))  # resolves lmp, checks ML-PACE


def start_structures(database: DatabaseManager, count: int) -> list[Atoms]:
    """Labeled bulk structures to start MD from: largest cells first, lowest energy.

    Fully periodic cells made by the builder or imported only: cut-out environments and
    slabs have free surfaces that MD would explore instead of the material.
    """
    records = [
        record
        for record in database.select(**{keys.STATUS: keys.LABELED})
        if record.atoms.pbc.all()
        and record.origin != EXTRACT_ORIGIN
        and record.origin != "builder:surface"
    ]
    if not records:
        raise WorkflowError("no labeled bulk structure to start MD from")
    records.sort(key=lambda r: (-len(r.atoms), r.atoms.get_potential_energy() / len(r.atoms)))
    starts = []
    for index in range(count):
        atoms = records[index % len(records)].atoms.copy()
        atoms.calc = None
        starts.append(atoms)
    return starts


def run_inference(config: MLIPConfig, iteration: int, fit: TrainingResult) -> InferenceSummary:
    """MD with gamma monitoring for every temperature; finished results are read back, not rerun."""
    folder = md_folder(config, iteration)
    if (folder / SUMMARY_FILE).is_file():
        return load_summary(folder)
    check_engine(config)
    specs = md_specs(config, iteration)
    starts = start_structures(open_database(config), len(specs))
    items = list(zip(starts, specs, strict=True))
    summary = InferenceSummary(iteration=iteration, potential=str(fit.folder))
    frames: list[Atoms] = []
    with TaskQueue(config.compute) as queue:
        for batch in queue.map_unordered(
            run_md_task,
            items,
            engine=config.inference.engine,
            potential=potential_files(fit),
            run_root=folder / "runs",
        ):
            for result in batch:
                stats, kept = _stats(result, config.inference.gamma_lower)
                summary.runs.append(stats)
                frames.extend(kept)
    summary.runs.sort(key=lambda run: (run.temperature, run.run_id))
    if all(run.error is not None for run in summary.runs):
        errors = "; ".join(f"{run.run_id}: {run.error}" for run in summary.runs)
        raise WorkflowError(f"every MD run failed (nothing saved, rerun after fixing): {errors}")
    _save(folder, summary, frames)
    return summary


def _stats(result: MDResult | TaskFailure, gamma_lower: float) -> tuple[MDRunStats, list[Atoms]]:
    if isinstance(result, TaskFailure):
        _, spec = result.item
        failed = MDResult(run_id=spec.run_id, temperature=spec.temperature, error=result.error)
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
    )
    return stats, result.frames


def _save(folder: Path, summary: InferenceSummary, frames: list[Atoms]) -> None:
    """Frames first, the summary last and atomically: its presence means the phase finished."""
    folder.mkdir(parents=True, exist_ok=True)
    if frames:
        ase.io.write(folder / FRAMES_FILE, frames, format="extxyz")
    temporary = folder / (SUMMARY_FILE + ".tmp")
    temporary.write_text(json.dumps(asdict(summary), indent=1))
    os.replace(temporary, folder / SUMMARY_FILE)


def load_summary(folder: Path) -> InferenceSummary:
    raw: dict[str, Any] = json.loads((folder / SUMMARY_FILE).read_text())
    runs = [MDRunStats(**run) for run in raw.pop("runs")]
    return InferenceSummary(runs=runs, **raw)


def load_frames(folder: Path) -> list[Atoms]:
    path = folder / FRAMES_FILE
    return list(ase.io.read(path, index=":")) if path.is_file() else []


def extract_candidates(config: MLIPConfig, iteration: int, fit: TrainingResult) -> int:
    """Cut environments out of the kept frames and store the new ones as candidates."""
    frames = load_frames(md_folder(config, iteration))
    database = open_database(config)
    environments: list[ExtractedEnvironment] = []
    provenance: list[dict[str, Any]] = []
    extractor = EmbeddingExtractor(
        threshold=config.inference.gamma_lower,
        cutoff=config.training.cutoff,
        buffer=config.inference.extraction_buffer,
        min_distance=config.system.min_distance,
    )
    for frame in frames:
        for env in extractor.extract(frame):
            environments.append(env)
            provenance.append(
                {
                    "md_iteration": iteration,
                    "md_run": str(frame.info.get("run_id", "")),
                    "md_step": int(frame.info.get("step", -1)),
                    "centre_atom": env.centre,
                    "centre_gamma": round(env.gamma, 4),
                }
            )
    if config.inference.relax_boundary:
        environments = _relaxed(environments, fit, config.training.cutoff)
    kept = _new_and_valid(environments, database, fit, config)
    ids = database.add_structures(
        [environments[i].atoms for i in kept],
        keys.CANDIDATE,
        iteration,
        EXTRACT_ORIGIN,
        extra_keys=[provenance[i] for i in kept],
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


def _relaxed(
    environments: list[ExtractedEnvironment], fit: TrainingResult, core_radius: float
) -> list[ExtractedEnvironment]:
    calculator = _ace_calculator(fit)
    return [
        env
        if env.whole_cell
        else replace(env, atoms=relax_boundary(env.atoms, calculator, core_radius))
        for env in environments
    ]


def _new_and_valid(
    environments: list[ExtractedEnvironment],
    database: DatabaseManager,
    fit: TrainingResult,
    config: MLIPConfig,
) -> list[int]:
    """Indices of environments that are valid structures and not duplicates by descriptor."""
    valid = []
    for index, env in enumerate(environments):
        try:
            validate_structure(env.atoms, config.system.min_distance, config.system.elements)
        except StructureError as error:
            logger.info("dropping an extracted environment: %s", error)
            continue
        valid.append(index)
    if not valid:
        return []
    vectors = _centre_projections([environments[i] for i in valid], fit)
    labeled = [r.atoms for r in database.select(**{keys.STATUS: keys.LABELED})]
    reference = _all_projections(labeled, fit) if labeled else None
    scale = float(np.mean(np.linalg.norm(vectors, axis=1))) or 1.0
    tolerance = DEDUP_RELATIVE_TOLERANCE * scale
    return [valid[i] for i in deduplicate(vectors, reference, tolerance)]


def _projections(atoms: Atoms, calculator: Any) -> np.ndarray:
    """Per-atom ACE projections (B-basis function values): the potential's own descriptor."""
    probe = atoms.copy()
    probe.calc = calculator
    probe.get_potential_energy()
    return np.asarray(calculator.projections, dtype=float)


def _ace_calculator(fit: TrainingResult) -> Any:
    return pyace_calculator(str(fit.potential))


def _centre_projections(
    environments: list[ExtractedEnvironment], fit: TrainingResult
) -> np.ndarray:
    calculator = _ace_calculator(fit)
    return np.vstack(
        [_projections(env.atoms, calculator)[env.centre_in_environment] for env in environments]
    )


def _all_projections(structures: list[Atoms], fit: TrainingResult) -> np.ndarray:
    calculator = _ace_calculator(fit)
    return np.vstack([_projections(atoms, calculator) for atoms in structures])
