"""Validation wiring: the potential vs DFT on the physical properties of `validation/`.

The DFT side (validation_dft.py) is computed once per call and shared by every potential
compared with it; `validate_candidate` scores one potential against it without any new DFT,
for a step that chooses which potential to hand over. Results are written atomically to
work_dir/validation/<fit>.json (iter_NNN or final_NNN) with PNG plots beside it: the table,
the checks (each one passed or failed, never averaged), the score, both sides and the DFT
cost.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mlip_autopipec.core import keys
from mlip_autopipec.core.files import write_atomically
from mlip_autopipec.inference.ase_md import graded, run_ase_md
from mlip_autopipec.inference.md_types import GammaGrader, MDRunSpec, PotentialFiles
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.labeling import ProgressCallback
from mlip_autopipec.orchestration.training import Candidate, candidates, finished_fits
from mlip_autopipec.orchestration.validation_dft import (
    DFTReference,
    ValidationError,
    dft_reference,
    validation_layout,
)
from mlip_autopipec.training.dataset import TEST, LabeledStructure
from mlip_autopipec.training.evaluation import score
from mlip_autopipec.training.metrics import ErrorSummary
from mlip_autopipec.training.pacemaker import TrainingResult
from mlip_autopipec.validation.alloys import AlloySide
from mlip_autopipec.validation.calculator import (
    alloy_calculator_side,
    calculator_side,
    potential_calculator,
)
from mlip_autopipec.validation.checks import (
    Check,
    held_out_against_best_check,
    held_out_forces_check,
)
from mlip_autopipec.validation.evaluate import SideProperties
from mlip_autopipec.validation.plots import eos_plot, phonon_plot, rdf_plot
from mlip_autopipec.validation.properties import radial_distribution, rdf_peaks
from mlip_autopipec.validation.score import candidate_score, with_failed_check
from mlip_autopipec.validation.table import full_table

logger = logging.getLogger(__name__)

__all__ = ["DFTReference", "ValidationError", "dft_reference", "validate_candidate"]


def result_file(campaign: Campaign, name: str) -> Path:
    return validation_layout(campaign).work_dir / f"{name}.json"


def scored_file(campaign: Campaign, name: str) -> Path:
    """The rows and score of a fit the hand-over compared (no plots, no MD check)."""
    return validation_layout(campaign).work_dir / "scores" / f"{name}.json"


def choose_fit(campaign: Campaign, iteration: int | None) -> Candidate:
    """Iteration `iteration`'s fit; by default the newest candidate (the final fit, if any)."""
    found = candidates(campaign)
    if not found:
        raise ValidationError("no trained potential to validate; run `train` or `run` first")
    if iteration is None:
        return found[-1]
    for candidate in found:
        if not candidate.is_final and candidate.last_iteration == iteration:
            return candidate
    have = ", ".join(str(n) for n, _ in finished_fits(campaign))
    raise ValidationError(f"iteration {iteration} has no finished potential (have: {have})")


def validate_candidate(
    campaign: Campaign, fit: TrainingResult, reference: DFTReference | None = None
) -> dict[str, Any]:
    """One potential against the DFT side, with no new DFT: `reference` as computed by
    `dft_reference` (else the stored DFT labels are read). Returns the table rows, the checks
    of both sides, the potential's properties, its force RMSE on the test split
    (`held_out_rmse_forces`, meV/Å; None without one) and its score (validation/score.py:
    lower is better; a failed check ranks below every candidate that passes them all)."""
    if reference is None:
        reference = dft_reference(campaign, compute=False)
    sides = potential_sides(reference, fit.potential)
    held_out = held_out_forces(campaign, fit)
    document = candidate_document(sides, reference, held_out_checks(campaign, held_out))
    document["held_out_rmse_forces"] = None if held_out is None else held_out.rmse_forces
    return document


def held_out_forces(campaign: Campaign, fit: TrainingResult) -> ErrorSummary | None:
    """The fit's errors on every labeled test-split structure (no fit trains on them, so every
    candidate is judged on the same unseen labels; a cut-out's zero-weight shell is left out,
    as in the fits); None without a test split."""
    rows = campaign.database.select(**{keys.STATUS: keys.LABELED, keys.SPLIT: TEST})
    held_out = [LabeledStructure(r.id, r.atoms, TEST, r.data.get(keys.FORCE_WEIGHTS)) for r in rows]
    return score(fit.potential, held_out, fit.metrics.reference_energies)


def held_out_checks(campaign: Campaign, summary: ErrorSummary | None) -> list[Check]:
    """The held-out forces check of `held_out_forces`; none without a test split."""
    if summary is None:
        return []
    target = campaign.config.workflow.target_force_rmse
    return [held_out_forces_check(summary.rmse_forces, summary.n_structures, target)]


@dataclass(frozen=True)
class PotentialSides:
    """The potential's side of every material of a `DFTReference`, in its order."""

    materials: list[SideProperties]
    alloys: list[AlloySide]

    @property
    def main(self) -> SideProperties:
        return self.materials[0]


def potential_sides(reference: DFTReference, potential: Path) -> PotentialSides:
    """The potential on every structure DFT's side has (no DFT)."""
    calculator = potential_calculator(potential)
    return PotentialSides(
        [calculator_side(calculator, material.scan) for material in reference.materials],
        [alloy_calculator_side(calculator, alloy.plan) for alloy in reference.alloys],
    )


def candidate_document(
    potential: PotentialSides, reference: DFTReference, held_out: list[Check]
) -> dict[str, Any]:
    """The table rows of every material (each naming its composition when there are
    several), every check (with `held_out`, the potential's on the campaign's own labels),
    and the score; the main material's sides in full, the others' beside them."""
    rows, mine, theirs = full_table(
        [material.scan.composition for material in reference.materials],
        potential.materials,
        [material.side for material in reference.materials],
        potential.alloys,
        [alloy.side for alloy in reference.alloys],
    )
    table = [row.as_dict() for row in rows]
    mine = mine + held_out
    return {
        "comparisons": table,
        "checks": [check.as_dict() for check in mine + theirs],
        "score": candidate_score(table, mine),
        "composition": reference.scan.composition,
        "potential_side": _jsonable(asdict(potential.main)),
        "materials": [
            _material_sides(material.scan.composition, side, material.side)
            for side, material in zip(potential.materials[1:], reference.materials[1:], strict=True)
        ]
        + [
            _material_sides(side.composition, side, alloy.side)
            for side, alloy in zip(potential.alloys, reference.alloys, strict=True)
        ],
    }


def _material_sides(composition: str, potential: Any, dft: Any) -> dict[str, Any]:
    return {
        "composition": composition,
        "potential_side": _jsonable(asdict(potential)),
        "dft_side": _jsonable(asdict(dft)),
    }


def score_fits(
    campaign: Campaign, found: list[Candidate], reference: DFTReference
) -> list[tuple[Candidate, dict[str, Any]]]:
    """Every candidate's score against one DFT side, best first (no DFT); a fit that cannot be
    evaluated is logged and left out. Each one's rows are kept in `scored_file`, so that a
    user sees why a fit lost, not only its score. With held-out labels, each fit is also
    checked against the best fit's force error on them (`held_out_against_best_check`)."""
    documents = []
    for candidate in found:
        try:
            documents.append((candidate, validate_candidate(campaign, candidate.fit, reference)))
        except Exception as error:  # noqa: BLE001 - one broken fit must not hide the others
            logger.warning("could not validate %s: %s", candidate.name, error)
    _check_against_best(documents, campaign.config.workflow.target_force_rmse)
    scored = []
    for candidate, document in documents:
        path = scored_file(campaign, candidate.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps({"fit": candidate.name, **document}, indent=1))
        scored.append((candidate, document["score"]))
    return sorted(scored, key=lambda item: item[1]["score"])


def _check_against_best(documents: list[tuple[Candidate, dict[str, Any]]], target: float) -> None:
    """Add the check against the best held-out force RMSE to each document, and its failure
    to the score (one failed check more, as every check counts)."""
    found = [document.get("held_out_rmse_forces") for _, document in documents]
    rmses = [rmse for rmse in found if rmse is not None]
    if len(rmses) < 2:
        return
    for _, document in documents:
        rmse = document.get("held_out_rmse_forces")
        if rmse is None:
            continue
        check = held_out_against_best_check(rmse, min(rmses), target)
        document["checks"].append(check.as_dict())
        if not check.passed:
            with_failed_check(document["score"], check.name)


def validate_potential(
    campaign: Campaign,
    which: int | Candidate | None = None,
    on_progress: ProgressCallback | None = None,
    reference: DFTReference | None = None,
) -> Path:
    """Compute every configured property with the potential and with DFT (each at its own
    equilibrium); write the JSON. `which`: a candidate, an iteration's fit, or the newest
    candidate. A given `reference` is used as it is (no DFT)."""
    candidate = which if isinstance(which, Candidate) else choose_fit(campaign, which)
    fit = candidate.fit
    config = campaign.config
    if reference is None:
        reference = dft_reference(campaign, on_progress)
    sides = potential_sides(reference, fit.potential)
    folder = validation_layout(campaign).work_dir
    prefix = candidate.name
    plots = _plots(sides, reference, folder / prefix)
    files = candidate.potential_files()
    runs = md_starts(reference, config.validation.vacancy_supercell)
    mds = [
        md_check(campaign, files, start, folder / f"{prefix}_rdf{suffix}.png", name)
        for name, suffix, start in runs
    ] if reference.scan.wants("md") else []  # fmt: skip
    md = mds[0] if mds else None
    document = {
        "fit": candidate.name,
        "iteration": candidate.last_iteration,
        "potential": str(fit.potential),
        "reference_lattice_constant": config.system.lattice_constant,
        **candidate_document(
            sides, reference, held_out_checks(campaign, held_out_forces(campaign, fit))
        ),
        "dft_side": _jsonable(asdict(reference.side)),
        "dft_cost": asdict(reference.cost),
        "md": md,
        "md_other_compositions": mds[1:],
        "gamma_on_test_split": test_split_gammas(campaign, files),
        "plots": [path.name for path in plots if path is not None]
        + [run["plot"] for run in mds if run.get("plot")],
    }
    path = write_atomically(result_file(campaign, candidate.name), json.dumps(document, indent=1))
    logger.info("validation of %s: %s", fit.potential, path)
    return path


def _plots(sides: PotentialSides, reference: DFTReference, stem: Path) -> list[Path | None]:
    """E(V) and phonons of each pure crystal (named by composition beside the main one's),
    E(V) of each alloy."""
    plots = []
    for side, material in zip(sides.materials, reference.materials, strict=True):
        suffix = f"_{material.scan.composition}" if material is not reference.materials[0] else ""
        pair = {"potential": side, "DFT": material.side}
        plots.append(
            eos_plot(
                {k: v.eos for k, v in pair.items()}, stem.with_name(f"{stem.name}_eos{suffix}.png")
            )
        )
        plots.append(
            phonon_plot(
                {k: v.phonons for k, v in pair.items()},
                stem.with_name(f"{stem.name}_phonons{suffix}.png"),
            )
        )
    for mine, alloy in zip(sides.alloys, reference.alloys, strict=True):
        name = f"{stem.name}_eos_{alloy.side.composition}.png"
        plots.append(eos_plot({"potential": mine.eos, "DFT": alloy.side.eos}, stem.with_name(name)))
    return plots


def test_split_gammas(campaign: Campaign, files: PotentialFiles) -> dict[str, list[float]] | None:
    """The largest gamma of each test-split structure (labels no fit trained on), by the fit's
    own active set and by its grader; None without a grader or a test split."""
    if files.grader is None:
        return None
    rows = campaign.database.select(**{keys.STATUS: keys.LABELED, keys.SPLIT: TEST})
    if not rows:
        return None
    structures = [row.atoms for row in rows]
    # a cut-out's zero-weight shell is left out, as in the fits and the held-out forces
    weights = [_force_weights(row.data.get(keys.FORCE_WEIGHTS), len(row.atoms)) for row in rows]

    def largest(grading: GammaGrader) -> list[float]:
        gammas = graded(grading, structures)
        return [float(g[w > 0].max()) for g, w in zip(gammas, weights, strict=True)]

    own = GammaGrader(files.yaml, files.active_set)
    return {
        "own": largest(own) if own.active_set.is_file() else [],
        "grader": largest(files.grader),
    }


def _force_weights(stored: Any, atoms: int) -> np.ndarray:
    weights = np.ones(atoms) if stored is None else np.asarray(stored, dtype=float)
    return weights if (weights > 0).any() else np.ones(atoms)


def md_starts(
    reference: DFTReference, supercell: tuple[int, int, int]
) -> list[tuple[str, str, Atoms]]:
    """(composition, plot suffix, start) of each validation MD: every pure crystal (the main
    one first, unsuffixed) as `supercell` of its primitive cell, then each alloy's random cell
    (at Vegard's lattice constant), repeated along its first axis to at least as many atoms."""
    starts = []
    for number, material in enumerate(reference.materials):
        suffix = f"_{material.scan.composition}" if number else ""
        starts.append(
            (material.scan.composition, suffix, material.scan.primitive.repeat(supercell))
        )
    atoms = len(starts[0][2]) if starts else 1
    for alloy in reference.alloys:
        random = alloy.plan.random
        repeats = max(1, -(-atoms // len(random)))
        name = alloy.plan.scan.composition
        starts.append((name, f"_{name}", random.repeat((repeats, 1, 1))))
    return starts


def md_check(
    campaign: Campaign, potential: PotentialFiles, start: Atoms, plot: Path, composition: str = ""
) -> dict[str, Any]:
    """A short ASE MD from `start` at the highest configured temperature: max gamma (as
    `potential`'s grading grades it) and g(r)."""
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
    run_dir = plot.parent / "md" / (composition or "main")
    run_dir.mkdir(parents=True, exist_ok=True)
    result = run_ase_md(start, potential, spec, run_dir)
    max_gamma = max(result.max_gamma_per_check, default=None)
    r, g = radial_distribution(result.frames, r_max=config.training.cutoff)
    named = f"{composition}, " if composition else ""
    title = f"g(r), {named}{temperature:g} K, {result.steps_done} steps"
    in_domain = (
        not result.halted
        and result.error is None
        and max_gamma is not None
        and max_gamma < inference.gamma_upper
    )
    return {
        "composition": composition,
        "temperature": temperature,
        "steps": steps,
        "steps_done": result.steps_done,
        "atoms": len(start),
        "halted": result.halted,
        "error": result.error,
        "max_gamma": max_gamma,
        "gamma_lower": inference.gamma_lower,
        "gamma_upper": inference.gamma_upper,
        "graded_by": str(potential.grading.yaml),
        "in_domain": in_domain,
        "rdf_peaks": rdf_peaks(r, g) if result.frames else [],
        "rdf": {"r": r.round(4).tolist(), "g": g.round(4).tolist()},
        "plot": rdf_plot(r.tolist(), g.tolist(), title, plot).name if result.frames else None,
    }


def newest_validation(campaign: Campaign) -> dict[str, Any] | None:
    """The validation of the handed-over fit, else the newest iter_NNN.json, for `status` and
    the report (they never compute)."""
    layout = validation_layout(campaign)
    folder = layout.work_dir
    files = sorted(folder.glob("iter_*.json")) if folder.is_dir() else []
    files += sorted(folder.glob("final_*.json")) if folder.is_dir() else []
    chosen = handed_over_fit(campaign)
    if chosen is not None and result_file(campaign, chosen).is_file():
        files = [result_file(campaign, chosen)]
    for path in reversed(files):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            logger.warning("ignoring %s: %s", path, error)
            continue
        document["folder"] = str(path.parent)
        return dict(document)
    return None


def handed_over_fit(campaign: Campaign) -> str | None:
    """The name of the fit in work_dir/potential/ (its choice.json), None before any; a
    campaign handed over before final fits existed names only its iteration."""
    try:
        document = json.loads(campaign.layout.handover_choice_file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    name, iteration = document.get("fit"), document.get("iteration")
    if isinstance(name, str) and name.replace("_", "").isalnum():
        return name
    return f"iter_{iteration:03d}" if isinstance(iteration, int) else None


def _jsonable(value: Any) -> Any:
    """asdict output with numpy arrays and scalars as plain lists and floats."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value
