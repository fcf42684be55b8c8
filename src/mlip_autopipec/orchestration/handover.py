"""The hand-over: the potential a campaign delivers, in one place, with a card beside it.

`work_dir/potential/` holds the chosen fit's files under plain names and `CARD.md`: what data
it saw, the DFT settings and their check, its validation table and checks, the gamma range it
was trained for, and how to use it in LAMMPS and ASE. The candidates are every iteration's fit
and the final fit on every label (`orchestration.training.train_final`); the chosen one is the
best by validation (see `orchestration.validation.candidate_score`), not simply the newest;
without validation results the newest fit is handed over and the card says so.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlip_autopipec.config import InferenceConfig
from mlip_autopipec.core import keys
from mlip_autopipec.core.files import write_atomically
from mlip_autopipec.generation.anchors import is_anchor
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.dft_check import stored_result
from mlip_autopipec.orchestration.labeling import ProgressCallback
from mlip_autopipec.orchestration.report_validation import dft_failure_line
from mlip_autopipec.orchestration.training import Candidate, candidates
from mlip_autopipec.orchestration.validation import (
    dft_reference,
    score_fits,
    validate_potential,
)
from mlip_autopipec.orchestration.validation_dft import DFTReference
from mlip_autopipec.training.pacemaker import TrainingResult, reference_energies
from mlip_autopipec.validation.evaluate import row_label
from mlip_autopipec.validation.score import error_text

logger = logging.getLogger(__name__)

CARD = "CARD.md"
FILES = {"potential.yaml": "potential", "potential.yace": "yace", "potential.asi": "active_set"}
GRADER_FILES = {"grader.yaml": "potential", "grader.asi": "active_set"}


@dataclass(frozen=True)
class Choice:
    """The fit handed over and why: its score (None: not validated) and the others', by the
    candidates' names (their folders: iter_NNN, final_NNN)."""

    candidate: Candidate
    reason: str
    scores: dict[str, float | None]

    @property
    def fit(self) -> TrainingResult:
        return self.candidate.fit


def choose(found: list[Candidate], scores: dict[str, float | None]) -> Choice:
    """The lowest validation score wins; ties go to the newer fit (later in `found`). Fits
    without a score are only chosen when none has one (then the newest)."""
    if not found:
        raise ValueError("no finished fit to hand over")
    scored = [
        (score, -index, candidate)
        for index, candidate in enumerate(found)
        if (score := scores.get(candidate.name)) is not None
    ]
    if not scored:
        return Choice(found[-1], "the newest fit (no validation to choose by)", scores)
    score, _, best = min(scored, key=lambda item: (item[0], item[1]))
    newest = found[-1]
    why = f"best validation score ({score:.3g}) of {len(scored)} validated fits"
    if best is not newest:
        why += f"; the newest, {newest.describe()}, scored worse"
    return Choice(best, why, scores)


def hand_over_after_run(
    campaign: Campaign,
    on_progress: ProgressCallback | None = None,
    reference: DFTReference | None = None,
) -> tuple[Path | None, Path | None]:
    """`run`'s last step: DFT's side of the validation once (`reference` when it was computed
    already), every fit scored against it (no more DFT), the best validated in full and handed
    over. Returns (validation JSON, potential folder); a failure is logged and never costs the
    campaign what it computed."""
    found = candidates(campaign)
    if not found:
        return None, None
    scores: dict[str, float | None] = {}
    if campaign.config.validation.enabled:
        try:
            if reference is None:
                reference = dft_reference(campaign, on_progress)
            scores = {c.name: s["score"] for c, s in score_fits(campaign, found, reference)}
        except Exception as error:  # noqa: BLE001 - the campaign's results must survive
            logger.warning("validation of the fits failed: %s", error)
    choice = choose(found, scores)
    document, path = None, None
    if reference is not None:
        try:
            path = validate_potential(campaign, choice.candidate, reference=reference)
            document = read_json(path)
        except Exception as error:  # noqa: BLE001
            logger.warning("validation of %s failed: %s", choice.candidate.name, error)
    try:
        return path, hand_over(campaign, choice, document, stored_result(campaign))
    except Exception as error:  # noqa: BLE001 - the campaign's results must survive
        logger.warning("could not hand over %s: %s", choice.candidate.describe(), error)
        return path, None


def potential_folder(campaign: Campaign) -> Path:
    return campaign.layout.handover_dir


def hand_over(
    campaign: Campaign,
    choice: Choice,
    validation: dict[str, Any] | None,
    dft_check: dict[str, Any] | None,
) -> Path:
    """Copy the chosen fit's files into work_dir/potential/ and write its card; returns the
    folder. Files are replaced one by one, the card last, so a card always describes files
    that are there."""
    folder = potential_folder(campaign)
    folder.mkdir(parents=True, exist_ok=True)
    _copy_files(None, GRADER_FILES, folder)  # a stop halfway leaves no other fit's grader
    _copy_files(choice.fit, FILES, folder)
    _copy_files(choice.candidate.grader, GRADER_FILES, folder)
    card = card_text(campaign, choice, validation, dft_check)
    write_atomically(folder / CARD, card)
    chosen = {
        "fit": choice.candidate.name,
        "iteration": choice.candidate.last_iteration,
        "reason": choice.reason,
        "scores": choice.scores,
        "grader": None if choice.candidate.grader is None else choice.candidate.grader.folder.name,
    }
    write_atomically(campaign.layout.handover_choice_file, json.dumps(chosen, indent=1))
    logger.info("handed over %s: %s", choice.candidate.describe(), folder)
    return folder


def _copy_files(fit: TrainingResult | None, files: dict[str, str], folder: Path) -> None:
    """Each of `fit`'s files under its plain name; a name `fit` has no file for (or every one,
    without a fit) is removed: never leave another fit's files beside this potential."""
    for name, attribute in files.items():
        source, target = None if fit is None else getattr(fit, attribute), folder / name
        if source is not None and source.is_file():
            temporary = folder / f".{name}.tmp"
            shutil.copyfile(source, temporary)
            temporary.replace(target)
        else:
            target.unlink(missing_ok=True)


def card_text(
    campaign: Campaign,
    choice: Choice,
    validation: dict[str, Any] | None,
    dft_check: dict[str, Any] | None,
) -> str:
    config = campaign.config
    species = " ".join(config.system.elements)
    scored = ", ".join(f"{n}: {'-' if v is None else f'{v:.3g}'}" for n, v in choice.scores.items())
    parts = [
        f"# ACE potential for {species}",
        f"{choice.candidate.describe().capitalize()} ({choice.fit.folder}): {choice.reason}."
        + (f" Validation scores (lower is better): {scored}." if scored else ""),
        _files_line(choice),
        "## Data it saw\n" + _data_lines(campaign, choice),
        "## DFT\n" + _dft_lines(campaign, dft_check),
        "## Validation\n" + _validation_lines(validation),
        "## Energies\n" + _energy_lines(choice.fit.potential),
        "## Where to trust it\n" + trust_lines(config.inference, validation, choice),
        "## Use it\n" + _usage(species, graded_apart=choice.candidate.grader is not None),
    ]
    return "\n\n".join(parts) + "\n"


def _files_line(choice: Choice) -> str:
    grader = choice.candidate.grader
    if grader is None:
        return (
            "Files: `potential.yaml` (B-basis: pyace, `pair_style pace/extrapolation`), "
            "`potential.yace` (`pair_style pace`), `potential.asi` (active set for gamma)."
        )
    return (
        "Files: `potential.yaml` (B-basis: pyace, LAMMPS `pair_style pace`), `potential.yace` "
        "(`pair_style pace`): energies and forces; `grader.yaml` + `grader.asi`: "
        f"{grader.folder.name}, the loop fit on the same structures, whose active set grades "
        "gamma (see Where to trust it); `potential.asi`: this fit's own active set."
    )


def trust_lines(
    inference: InferenceConfig, validation: dict[str, Any] | None, choice: Choice | None = None
) -> str:
    """The gamma thresholds, what grades gamma, and how the validation MD went with it."""
    text = (
        f"Trained for extrapolation grades gamma < {inference.gamma_lower:g} (the loop "
        f"collected frames above that); gamma >= {inference.gamma_upper:g} is outside what it "
        "knows: stop or relabel such configurations."
    )
    grader = None if choice is None else choice.candidate.grader
    if grader is not None:
        text += "\n" + _grader_lines(grader, validation)
    md = (validation or {}).get("md")
    if not md:
        return text
    lines = [text, _main_md_line(md, inference, graded_apart=grader is not None)]
    others = (validation or {}).get("md_other_compositions") or []
    if others:
        lines.append(_other_md_line(others))
    return "\n".join(lines)


def _main_md_line(md: dict[str, Any], inference: InferenceConfig, graded_apart: bool) -> str:
    crystal = md.get("composition") or "the first crystal"
    ran = (
        f"The validation MD ({md['atoms']} atoms of {crystal}, {md['temperature']:g} K) "
        f"ran {md['steps_done']} of {md['steps']} steps, max gamma {_number(md['max_gamma'])}."
    )
    if md.get("in_domain"):
        return ran
    if md.get("error"):
        return f"**{ran} It failed: {md['error']}**"
    if graded_apart:
        return f"**{ran} The grader's gamma reached {inference.gamma_upper:g} in a crystal.**"
    return (
        f"**{ran} Gamma reached {inference.gamma_upper:g} in a crystal: either this "
        "fit extrapolates there, or its active set is near-singular (a large basis on few "
        "structures) and gamma warns where the energies are right. Check the validation table "
        "above before trusting gamma, or watch gamma with a loop fit "
        "(potentials/iter_NNN/output_potential.yaml and .asi).**"
    )


def _other_md_line(runs: list[dict[str, Any]]) -> str:
    """The other compositions' validation MD, each in bold where it left its domain."""
    parts = []
    for run in runs:
        part = (
            f"{run['composition']} ({run['atoms']} atoms) {run['steps_done']} of "
            f"{run['steps']} steps, max gamma {_number(run['max_gamma'])}"
        )
        if run.get("error"):
            part += f", failed: {run['error']}"
        parts.append(part if run.get("in_domain") else f"**{part}**")
    temperature = runs[0]["temperature"]
    return f"The same MD ({temperature:g} K) for the other compositions: {'; '.join(parts)}."


def _grader_lines(grader: TrainingResult, validation: dict[str, Any] | None) -> str:
    """Why gamma comes from the grader, with the test split's grades by both active sets."""
    text = (
        f"Gamma comes from `grader.yaml` + `grader.asi` ({grader.folder.name}): the loop fit on "
        "the same structures, with the loop's smaller basis, on whose grades the thresholds "
        "above were set; this fit's own active set (`potential.asi`) is a larger basis on the "
        "same structures."
    )
    grades = (validation or {}).get("gamma_on_test_split") or {}
    mine, theirs = grades.get("own"), grades.get("grader")
    if theirs:
        text += (
            f" On the {len(theirs)} test-split structures (labels no fit trained on) the largest "
            f"gamma is {_range(theirs)} by the grader's active set"
            + (f" and {_range(mine)} by this fit's own." if mine else ".")
        )
    return text


def _range(values: list[float]) -> str:
    def text(value: float) -> str:
        return f"{value:.3g}" if value < 1000 else f"{value:.0f}"

    return f"{text(min(values))}-{text(max(values))}"


def _energy_lines(potential: Path) -> str:
    """The per-element reference energies the potential's energies leave out."""
    references = reference_energies(potential)
    if not references:
        return "No reference energies recorded in potential.yaml."
    values = ", ".join(f"{element} {energy:.6f} eV" for element, energy in references.items())
    return (
        "The potential returns the energy minus per-element reference energies (pacemaker's "
        f"energy_corrected): {values}. Add them per atom to compare a total energy with pw.x; "
        "energy differences at one composition, formation and mixing energies need nothing."
    )


def _data_lines(campaign: Campaign, choice: Choice) -> str:
    rows = campaign.database.select(**{keys.STATUS: keys.LABELED})
    seen = [row for row in rows if row.iteration <= choice.candidate.last_iteration]
    groups = Counter(_group(row.origin) for row in seen)
    atoms = sum(len(row.atoms) for row in seen)
    kinds = ", ".join(f"{name} {count}" for name, count in sorted(groups.items()))
    metrics = choice.fit.metrics
    errors = f"train force RMSE {metrics.train.rmse_forces:.0f} meV/Å"
    if metrics.test is not None:
        errors += (
            f", test split {metrics.test.rmse_forces:.0f} meV/Å, "
            f"{metrics.test.rmse_energy:.1f} meV/atom"
        )
    return f"{len(seen)} DFT-labeled structures, {atoms} atoms ({kinds}); {errors}."


def _group(origin: str) -> str:
    if is_anchor(origin):
        return "anchors"
    if origin.startswith("builder:"):
        return "generated"
    if origin.startswith("import"):
        return "imported"
    return "from MD"


def _dft_lines(campaign: Campaign, dft_check: dict[str, Any] | None) -> str:
    dft = campaign.config.dft
    pseudos = ", ".join(f"{el}: {name}" for el, name in dft.pseudopotentials.items())
    ecutrho = dft.ecutrho if dft.ecutrho is not None else 4 * dft.ecutwfc
    line = (
        f"pw.x, {pseudos}; ecutwfc {dft.ecutwfc:g} Ry, ecutrho {ecutrho:g} Ry, "
        f"k-spacing {dft.kspacing:g} 1/Å (one mesh per unstrained cell), "
        f"{dft.occupations}"
    )
    if dft.occupations == "smearing":
        line += f" ({dft.smearing}, {dft.degauss:g} Ry)"
    if dft_check is None:
        verdict = "no DFT settings check recorded"
    else:
        state = "passed" if dft_check.get("passed") else "FAILED"
        verdict = f"{state}: {dft_check.get('message', '')}"
    return f"{line}.\nSettings check {verdict}"


def _validation_lines(document: dict[str, Any] | None) -> str:
    if document is None:
        return "Not validated (validation disabled or failed; see the log)."
    lines = ["| property | potential | DFT | error |", "|---|---|---|---|"]
    for row in document.get("comparisons", []):
        lines.append(
            f"| {row_label(row)} ({row['unit']}) | {_number(row.get('potential'))} | "
            f"{_number(row.get('dft'))} | {error_text(row)} |"
        )
    failure = dft_failure_line(document)
    if failure:
        lines.append(f"\n{failure}.")
    failed = [check for check in document.get("checks", []) if not check.get("passed", True)]
    for check in failed:
        lines.append(
            f"\n**FAILED: {check.get('side')}: {check.get('name')}: {check.get('detail')}**"
        )
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _usage(species: str, graded_apart: bool) -> str:
    """LAMMPS and ASE recipes; `graded_apart`: gamma from grader.yaml + grader.asi."""
    if graded_apart:
        intro = (
            "LAMMPS (built with ML-PACE): forces from the potential, gamma from the grader, "
            "which\n`hybrid/scaled` weighs by 0 so that it adds nothing to energies or forces:"
        )
        pair = (
            "pair_style hybrid/scaled 1.0 pace 0.0 pace/extrapolation\n"
            f"pair_coeff * * pace potential.yace {species}\n"
            f"pair_coeff * * pace/extrapolation grader.yaml grader.asi {species}"
        )
        ase = (
            'calc = PyACECalculator("potential.yaml")  # energies and forces: atoms.calc = calc\n'
            'grader = PyACECalculator("grader.yaml")\n'
            'grader.set_active_set("grader.asi")\n'
            'grader.calculate(atoms)  # then grader.results["gamma"]: gamma per atom of `atoms`'
        )
    else:
        intro = "LAMMPS (built with ML-PACE), with the extrapolation grade watched:"
        pair = (
            f"pair_style pace/extrapolation\npair_coeff * * potential.yaml potential.asi {species}"
        )
        ase = (
            'calc = PyACECalculator("potential.yaml")\n'
            'calc.set_active_set("potential.asi")  # then calc.results["gamma"] per atom'
        )
    return f"""{intro}

```
{pair}
fix pace_gamma all pair 10 pace/extrapolation gamma 1
compute max_pace_gamma all reduce max f_pace_gamma
```

or, for production without gamma: `pair_style pace` and `pair_coeff * * potential.yace {species}`.

ASE:

```python
from pyace import PyACECalculator
{ase}
```"""


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None
