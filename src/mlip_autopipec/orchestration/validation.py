"""Validation wiring: the potential vs DFT on the physical properties of `validation/`.

The DFT side goes through the normal labeling path (Dask + pw.x, stored `selected` then
`labeled`) but in a database of its own, work_dir/validation/validation.db, with its own dft
folder: validation structures are never trained on, never start an MD and are never a novelty
reference. A rerun finds its labels there by structure hash and runs no pw.x again. Results
are written atomically to work_dir/validation/iter_NNN.json with PNG plots beside it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ase import Atoms

from mlip_autopipec.core import keys
from mlip_autopipec.core.database import DatabaseManager, structure_hash
from mlip_autopipec.core.files import write_atomically
from mlip_autopipec.errors import UserError
from mlip_autopipec.inference.ase_md import run_ase_md
from mlip_autopipec.inference.md_types import MDRunSpec, PotentialFiles
from mlip_autopipec.orchestration.campaign import Campaign, CampaignLayout
from mlip_autopipec.orchestration.labeling import ProgressCallback, label_selected
from mlip_autopipec.orchestration.training import finished_fits
from mlip_autopipec.training.pacemaker import TrainingResult
from mlip_autopipec.validation.evaluate import (
    Results,
    compare,
    evaluate_potential,
    side_properties,
)
from mlip_autopipec.validation.plots import eos_plot, phonon_plot, rdf_plot
from mlip_autopipec.validation.properties import Calculated, radial_distribution, rdf_peaks
from mlip_autopipec.validation.structures import ValidationPlan, build_plan, common_kspacing

logger = logging.getLogger(__name__)

VALIDATION_FOLDER = "validation"
VALIDATION_DATABASE = "validation.db"
ORIGIN = "validation"
DFT_SETTINGS_FILE = "dft_settings.json"  # the settings the stored DFT labels were made with
SAME_MESH = ("eos_", "elastic_", "bulk")  # the primitive cells: one k-mesh for them all


class ValidationError(UserError):
    """There is no potential to validate, or the asked-for iteration has none."""


@dataclass(frozen=True)
class DFTCost:
    kspacing: float  # dft.kspacing, lowered so the primitive cells share one k-mesh
    structures: int  # distinct structures the validation needs
    labeled: int
    failed: int
    new_calculations: int  # pw.x labels run by this call (0 on a rerun)
    wall_time: float  # s of pw.x, all labels the validation uses


def validation_layout(campaign: Campaign) -> CampaignLayout:
    return CampaignLayout(campaign.layout.work_dir / VALIDATION_FOLDER)


def result_file(campaign: Campaign, iteration: int) -> Path:
    return validation_layout(campaign).work_dir / f"iter_{iteration:03d}.json"


def validation_campaign(campaign: Campaign, kspacing: float | None = None) -> Campaign:
    """The same config (k-spacing as given), with the validation's own database and dft
    folder."""
    config = campaign.config
    if kspacing is not None:
        dft = config.dft.model_copy(update={"kspacing": kspacing})
        config = config.model_copy(update={"dft": dft})
    layout = validation_layout(campaign)
    layout.work_dir.mkdir(parents=True, exist_ok=True)
    system = campaign.config.system
    database = DatabaseManager(
        layout.work_dir / VALIDATION_DATABASE,
        min_distance=system.min_distance,
        allowed_elements=system.elements,
    )
    return Campaign(config, database, layout)


def choose_fit(campaign: Campaign, iteration: int | None) -> tuple[int, TrainingResult]:
    fits = finished_fits(campaign)
    if not fits:
        raise ValidationError("no trained potential to validate; run `train` or `run` first")
    if iteration is None:
        return fits[-1]
    for found in fits:
        if found[0] == iteration:
            return found
    have = ", ".join(str(n) for n, _ in fits)
    raise ValidationError(f"iteration {iteration} has no finished potential (have: {have})")


def validate_potential(
    campaign: Campaign, iteration: int | None = None, on_progress: ProgressCallback | None = None
) -> Path:
    """Compute every configured property with the potential and with DFT; write the JSON."""
    fit_iteration, fit = choose_fit(campaign, iteration)
    config = campaign.config
    generation = config.exploration.generation
    plan = build_plan(config.system, config.validation, generation.surfaces)
    potential_side = side_properties(plan, evaluate_potential(plan.structures, fit.potential))
    dft_results, cost = label_dft_side(campaign, plan.structures, on_progress)
    dft_side = side_properties(plan, dft_results)
    folder = validation_layout(campaign).work_dir
    prefix = f"iter_{fit_iteration:03d}"
    plots = [
        eos_plot(
            {"potential": potential_side.eos, "DFT": dft_side.eos}, folder / f"{prefix}_eos.png"
        ),
        phonon_plot(
            {"potential": potential_side.phonons, "DFT": dft_side.phonons},
            folder / f"{prefix}_phonons.png",
        ),
    ]
    md = md_check(campaign, fit, plan, folder / f"{prefix}_rdf.png") if _wants(plan, "md") else None
    document = {
        "iteration": fit_iteration,
        "potential": str(fit.potential),
        "reference_lattice_constant": config.system.lattice_constant,
        "comparisons": [row.as_dict() for row in compare(potential_side, dft_side)],
        "potential_side": _jsonable(asdict(potential_side)),
        "dft_side": _jsonable(asdict(dft_side)),
        "dft_cost": asdict(cost),
        "md": md,
        "plots": [path.name for path in plots if path is not None]
        + ([md["plot"]] if md and md.get("plot") else []),
    }
    path = write_atomically(result_file(campaign, fit_iteration), json.dumps(document, indent=1))
    logger.info("validation of %s: %s", fit.potential, path)
    return path


def _wants(plan: ValidationPlan, name: str) -> bool:
    return name in plan.settings.properties


def label_dft_side(
    campaign: Campaign, structures: dict[str, Atoms], on_progress: ProgressCallback | None
) -> tuple[Results, DFTCost]:
    """Label what is not labeled yet in the validation database; results by structure name."""
    same_mesh = [atoms for name, atoms in structures.items() if name.startswith(SAME_MESH)]
    kspacing = common_kspacing(same_mesh, campaign.config.dft.kspacing)
    validation = validation_campaign(campaign, kspacing)
    check_same_dft_settings(validation)
    database = validation.database
    database.add_structures(list(structures.values()), keys.SELECTED, 0, ORIGIN)
    progress = label_selected(validation, on_progress=on_progress)
    rows = {r.key_value_pairs[keys.STRUCTURE_HASH]: r for r in database.select(origin=ORIGIN)}
    needed = {structure_hash(atoms) for atoms in structures.values()}
    used = [rows[fingerprint] for fingerprint in needed if fingerprint in rows]
    results: Results = {}
    for name, atoms in structures.items():
        record = rows.get(structure_hash(atoms))
        if record is not None and record.status == keys.LABELED:
            calc_results = record.atoms.calc.results
            results[name] = Calculated(
                energy=float(calc_results["energy"]),
                forces=calc_results["forces"],
                stress=calc_results.get("stress"),
            )
    cost = DFTCost(
        kspacing=kspacing,
        structures=len(needed),
        labeled=sum(r.status == keys.LABELED for r in used),
        failed=sum(r.status == keys.FAILED for r in used),
        new_calculations=progress.labeled + progress.failed,
        wall_time=round(
            sum(float(r.key_value_pairs.get(keys.DFT_WALL_TIME, 0.0)) for r in used), 2
        ),
    )
    return results, cost


def check_same_dft_settings(validation: Campaign) -> None:
    """Stored DFT labels are reused by structure only: refuse them if the settings changed."""
    path = validation.layout.work_dir / DFT_SETTINGS_FILE
    settings = json.loads(validation.config.dft.model_dump_json())
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(settings, indent=1, sort_keys=True))
        return
    stored = json.loads(path.read_text())
    changed = sorted(
        key for key in settings.keys() | stored.keys() if settings.get(key) != stored.get(key)
    )
    if changed:
        raise ValidationError(
            f"{validation.layout.work_dir} holds DFT labels made with other dft settings "
            f"({', '.join(changed)}); move that folder away to validate with the new ones"
        )


def md_check(
    campaign: Campaign, fit: TrainingResult, plan: ValidationPlan, plot: Path
) -> dict[str, Any]:
    """A short ASE MD at the highest configured temperature: max gamma and g(r)."""
    config = campaign.config
    inference = config.inference
    temperature = max(inference.temperatures)
    steps = config.validation.md_steps
    spec = MDRunSpec(
        run_id="validation",
        temperature=temperature,
        pressure=None,
        steps=steps,
        timestep=inference.timestep,
        seed=config.training.seed,
        gamma_every=inference.gamma_every,
        gamma_lower=0.0,  # keep every checked frame: they make the g(r)
        gamma_upper=inference.gamma_upper,
        max_frames=steps // inference.gamma_every + 1,
        timeout=inference.timeout,
    )
    potential = PotentialFiles(fit.potential, fit.yace, fit.active_set)
    start = plan.primitive.repeat(config.validation.vacancy_supercell)
    run_dir = plot.parent / "md"
    run_dir.mkdir(parents=True, exist_ok=True)
    result = run_ase_md(start, potential, spec, run_dir)
    max_gamma = max(result.max_gamma_per_check, default=None)
    r, g = radial_distribution(result.frames, r_max=config.training.cutoff)
    title = f"g(r), {temperature:g} K, {result.steps_done} steps"
    in_domain = (
        not result.halted
        and result.error is None
        and max_gamma is not None
        and max_gamma < inference.gamma_upper
    )
    return {
        "temperature": temperature,
        "steps": steps,
        "steps_done": result.steps_done,
        "atoms": len(start),
        "halted": result.halted,
        "error": result.error,
        "max_gamma": max_gamma,
        "gamma_lower": inference.gamma_lower,
        "gamma_upper": inference.gamma_upper,
        "in_domain": in_domain,
        "rdf_peaks": rdf_peaks(r, g) if result.frames else [],
        "rdf": {"r": r.round(4).tolist(), "g": g.round(4).tolist()},
        "plot": rdf_plot(r.tolist(), g.tolist(), title, plot).name if result.frames else None,
    }


def validate_after_run(
    campaign: Campaign, on_progress: ProgressCallback | None = None
) -> Path | None:
    """`run`'s last step: a failed validation is logged and never costs the campaign."""
    if not campaign.config.validation.enabled:
        return None
    try:
        fit_iteration, _ = choose_fit(campaign, None)
        if result_file(campaign, fit_iteration).is_file():
            return result_file(campaign, fit_iteration)  # validated by an earlier `run`
        return validate_potential(campaign, fit_iteration, on_progress)
    except Exception as error:  # noqa: BLE001 - the campaign's results must survive any failure
        logger.warning("validation of the final potential failed: %s", error)
        return None


def newest_validation(campaign: Campaign) -> dict[str, Any] | None:
    """The newest iter_NNN.json, for `status` and the report (they never compute)."""
    layout = validation_layout(campaign)
    files = sorted(layout.work_dir.glob("iter_*.json")) if layout.work_dir.is_dir() else []
    for path in reversed(files):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            logger.warning("ignoring %s: %s", path, error)
            continue
        document["folder"] = str(path.parent)
        return dict(document)
    return None


def _jsonable(value: Any) -> Any:
    """asdict output with numpy arrays and scalars as plain lists and floats."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value
