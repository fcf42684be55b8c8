"""The DFT side of a validation, computed once and shared by every potential it is compared
with (`DFTReference`).

The DFT side goes through the normal labeling path (Dask + pw.x, stored `selected` then
`labeled`) but in a database of its own, work_dir/validation/validation.db, with its own dft
folder: validation structures are never trained on, never start an MD and are never a novelty
reference. A rerun finds its labels there by structure hash and runs no pw.x again.

Two stages: the E-V scan is labeled first and fitted (a0 of DFT); then the stage-2 structures
are built at that a0 and labeled. The relaxed vacancy is a BFGS relaxation (fixed cell) driven
by pw.x forces, one single-point label per step (`validation.vacancy_relax_steps`): every
step is a stored label, so a rerun replays it from the database without pw.x.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from mlip_autopipec.core import keys
from mlip_autopipec.core.database import DatabaseManager, structure_hash
from mlip_autopipec.errors import UserError
from mlip_autopipec.orchestration.campaign import Campaign, CampaignLayout
from mlip_autopipec.orchestration.labeling import (
    LabelingProgress,
    ProgressCallback,
    check_same_dft_settings,
    label_selected,
)
from mlip_autopipec.validation.alloys import AlloyPlan, AlloySide, alloy_plans, alloy_side
from mlip_autopipec.validation.equilibrium import Equilibrium, find_equilibrium
from mlip_autopipec.validation.evaluate import SideProperties, side_properties
from mlip_autopipec.validation.properties import Calculated, Results
from mlip_autopipec.validation.structures import (
    ValidationPlan,
    equilibrium_plan,
    material_scans,
)

logger = logging.getLogger(__name__)

VALIDATION_FOLDER = "validation"
VALIDATION_DATABASE = "validation.db"
ORIGIN = "validation"
DFT_RELAX_FMAX = 0.05  # eV/Å, the DFT vacancy relaxation's force criterion
NICE_ALONGSIDE = 10  # CPU niceness of local pw.x that runs beside the final fit


class ValidationError(UserError):
    """There is no potential to validate, or the asked-for iteration has none."""


class MissingLabel(RuntimeError):
    """A structure the DFT side needs has no label (failed, or not computed in a read-only
    pass)."""


@dataclass(frozen=True)
class DFTCost:
    kspacing: float  # dft.kspacing, as for the training labels (one mesh per cell shape)
    structures: int  # distinct structures the validation needs
    labeled: int
    failed: int
    new_calculations: int  # pw.x labels run by this call (0 on a rerun)
    wall_time: float  # s of pw.x, all labels the validation uses


@dataclass(frozen=True)
class MaterialReference:
    """DFT's side of one pure crystal: its stage 1 and its properties at its own a0."""

    scan: ValidationPlan
    side: SideProperties


@dataclass(frozen=True)
class AlloyReference:
    """DFT's side of one alloy composition."""

    plan: AlloyPlan
    side: AlloySide


@dataclass(frozen=True)
class DFTReference:
    """The DFT side of a validation: every pure crystal (the first is the campaign's main
    material, whose stage 1 `scan` and properties `side` the MD check and plots use) and
    every alloy composition."""

    materials: tuple[MaterialReference, ...]
    alloys: tuple[AlloyReference, ...]
    cost: DFTCost

    @property
    def scan(self) -> ValidationPlan:
        return self.materials[0].scan

    @property
    def side(self) -> SideProperties:
        return self.materials[0].side


def validation_layout(campaign: Campaign) -> CampaignLayout:
    return CampaignLayout(campaign.layout.work_dir / VALIDATION_FOLDER)


def validation_campaign(campaign: Campaign) -> Campaign:
    """The same config (the DFT settings of the training labels), with the validation's own
    database and dft folder."""
    config = campaign.config
    layout = validation_layout(campaign)
    layout.work_dir.mkdir(parents=True, exist_ok=True)
    system = campaign.config.system
    database = DatabaseManager(
        layout.work_dir / VALIDATION_DATABASE,
        min_distance=system.min_distance,
        allowed_elements=system.elements,
    )
    return Campaign(config, database, layout, nice=campaign.nice)


class _Labeler:
    """Labels structures in the validation database and keeps count of what that cost."""

    def __init__(self, validation: Campaign, compute: bool, on_progress: Any) -> None:
        self.validation, self.compute, self.on_progress = validation, compute, on_progress
        self.used: set[str] = set()
        self.new_calculations = 0

    def label(self, structures: dict[str, Atoms]) -> Results:
        database = self.validation.database
        if self.compute:
            self._requeue_failed({structure_hash(atoms) for atoms in structures.values()})
            database.add_structures(list(structures.values()), keys.SELECTED, 0, ORIGIN)
            progress = label_selected(self.validation, on_progress=self.on_progress)
            self.new_calculations += progress.labeled + progress.failed
        hashes = {name: structure_hash(atoms) for name, atoms in structures.items()}
        self.used.update(hashes.values())
        rows = _rows(database, set(hashes.values()))
        results: Results = {}
        for name, fingerprint in hashes.items():
            record = rows.get(fingerprint)
            if record is not None and record.status == keys.LABELED:
                found = record.atoms.calc.results
                results[name] = Calculated(
                    energy=float(found["energy"]),
                    forces=np.asarray(found["forces"]),
                    stress=found.get("stress"),
                )
        return results

    def _requeue_failed(self, hashes: set[str]) -> None:
        """A structure whose pw.x failed on an earlier run (a timeout on a loaded machine, an
        SCF that did not converge) gets one more try per run, not one per stage that uses it."""
        failed = [
            row.id
            for row in _rows(self.validation.database, hashes - self.used).values()
            if row.status == keys.FAILED
        ]
        if failed:
            logger.info("validation: %d pw.x runs that failed before are tried again", len(failed))
            self.validation.database.set_status(failed, keys.SELECTED)

    def label_together(self, batches: list[dict[str, Atoms]]) -> list[Results]:
        """Several structure sets in one labeling pass (the task queue runs them side by
        side); their results set by set."""
        named = {
            f"{k}/{name}": atoms for k, batch in enumerate(batches) for name, atoms in batch.items()
        }
        results = self.label(named) if named else {}
        return [
            {name: results[f"{k}/{name}"] for name in batch if f"{k}/{name}" in results}
            for k, batch in enumerate(batches)
        ]

    def cost(self, kspacing: float) -> DFTCost:
        rows = list(_rows(self.validation.database, self.used).values())
        wall = sum(float(r.key_value_pairs.get(keys.DFT_WALL_TIME, 0.0)) for r in rows)
        return DFTCost(
            kspacing=kspacing,
            structures=len(self.used),
            labeled=sum(r.status == keys.LABELED for r in rows),
            failed=sum(r.status == keys.FAILED for r in rows),
            new_calculations=self.new_calculations,
            wall_time=round(wall, 2),
        )


def _rows(database: DatabaseManager, hashes: set[str]) -> dict[str, Any]:
    rows = {r.key_value_pairs[keys.STRUCTURE_HASH]: r for r in database.select(origin=ORIGIN)}
    return {fingerprint: row for fingerprint, row in rows.items() if fingerprint in hashes}


def dft_reference(
    campaign: Campaign, on_progress: ProgressCallback | None = None, compute: bool = True
) -> DFTReference:
    """DFT's side of every pure crystal and alloy composition: all stage-1 scans labeled
    together, each one's own a0, all stage-2 structures there together. With `compute` False
    no pw.x runs: only stored labels count (what is missing leaves its property empty)."""
    config = campaign.config
    scans = material_scans(
        config.system,
        config.validation,
        config.exploration.generation.surfaces,
        avoid=anchor_volume_strains(config),
    )
    alloys = validation_alloys(config, scans)
    validation = validation_campaign(campaign)
    check_same_dft_settings(validation)
    labeler = _Labeler(validation, compute, on_progress)
    stage_1 = labeler.label_together(
        [scan.structures for scan in scans] + [alloy.scan.structures for alloy in alloys]
    )
    plans = scans + [alloy.scan for alloy in alloys]
    equilibria = [find_equilibrium(p, r, "DFT") for p, r in zip(plans, stage_1, strict=True)]
    pure, mixed = equilibria[: len(scans)], equilibria[len(scans) :]
    at_a0 = [equilibrium_plan(scan, e.volume) for scan, e in zip(scans, pure, strict=True)]
    randoms = [alloy.random_at(e.volume) for alloy, e in zip(alloys, mixed, strict=True)]
    stage_2 = labeler.label_together([plan.structures for plan in at_a0] + randoms)
    materials = tuple(
        MaterialReference(scan, _material(labeler, equilibrium, plan, results, config))
        for scan, equilibrium, plan, results in zip(scans, pure, at_a0, stage_2, strict=False)
    )
    alloy_sides = tuple(
        AlloyReference(alloy, alloy_side("DFT", alloy, equilibrium, results))
        for alloy, equilibrium, results in zip(alloys, mixed, stage_2[len(scans) :], strict=True)
    )
    return DFTReference(materials, alloy_sides, labeler.cost(config.dft.kspacing))


class DFTReferenceAlongside:
    """`dft_reference` in a thread of its own, started now: DFT's side of the validation
    depends on no potential, so its pw.x runs go on while the main thread fits one. pacemaker
    keeps one core busy: local workers run at a lower CPU priority (`NICE_ALONGSIDE`), so the
    fit keeps its core and pw.x takes the rest, and all of them once the fit is done.

    A daemon thread: a run that is stopped does not wait for it, and its labels are stored one
    by one as usual, so the next run finds them.
    """

    def __init__(self, campaign: Campaign) -> None:
        self.reference: DFTReference | None = None
        self._latest: LabelingProgress | None = None
        self._thread = threading.Thread(
            target=self._compute,
            args=(replace(campaign, nice=NICE_ALONGSIDE),),
            name="validation-dft",
            daemon=True,
        )
        self._thread.start()

    def _compute(self, campaign: Campaign) -> None:
        logger.info("DFT side of the validation: started alongside the final fit")
        try:
            self.reference = dft_reference(campaign, self._note)
        except Exception as error:  # noqa: BLE001 - the hand-over computes what is missing
            logger.warning("DFT side of the validation, alongside the final fit: %s", error)
        else:
            logger.info("DFT side of the validation: done alongside the final fit")

    def _note(self, counts: LabelingProgress) -> None:
        self._latest = counts

    def wait(self, on_progress: ProgressCallback | None = None) -> DFTReference | None:
        """The finished reference (None when it failed), passing on its progress meanwhile."""
        while self._thread.is_alive():
            self._thread.join(timeout=1.0)
            if on_progress is not None and self._latest is not None:
                on_progress(self._latest)
        return self.reference


def validation_alloys(config: Any, scans: list[ValidationPlan]) -> list[AlloyPlan]:
    """The configured alloy compositions, when they are validated (`alloys` in
    validation.properties, the pure crystals each validated on their own)."""
    compositions = config.exploration.generation.alloy_compositions
    if len(scans) < 2 or not compositions or not scans[0].wants("alloys"):
        return []
    return alloy_plans(compositions, {scan.composition: scan for scan in scans})


def _material(
    labeler: _Labeler,
    equilibrium: Equilibrium,
    plan: ValidationPlan,
    results: Results,
    config: Any,
) -> SideProperties:
    """DFT's properties of one pure crystal at its own a0, the vacancy relaxed with pw.x."""
    relaxed, note = None, None
    if "vacancy_defect" in results:
        relaxed, note = relaxed_vacancy(labeler, plan.structures["vacancy_defect"], config)
    side = side_properties("DFT", equilibrium, plan, results, relaxed)
    if note:
        side.notes.append(note)
    return side


def anchor_volume_strains(config: Any) -> tuple[float, ...]:
    """The training anchors' volume strains, which the E-V scan must not repeat."""
    anchors = config.exploration.anchors
    return tuple(anchors.volume_strains) if anchors.enabled else ()


class _LabelCalculator(Calculator):
    """Energy and forces of one structure through the labeler (pw.x or a stored label)."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, labeler: _Labeler) -> None:
        super().__init__()
        self.labeler = labeler

    def calculate(
        self, atoms: Any = None, properties: Any = None, changes: Any = all_changes
    ) -> None:
        super().calculate(atoms, properties, changes)
        found = self.labeler.label({"step": self.atoms.copy()}).get("step")
        if found is None:
            raise MissingLabel("a DFT label of the vacancy relaxation is missing")
        self.results = {"energy": found.energy, "forces": np.asarray(found.forces)}


def relaxed_vacancy(labeler: _Labeler, defect: Atoms, config: Any) -> tuple[float | None, str]:
    """The DFT vacancy cell relaxed at fixed cell (BFGS on pw.x forces); its energy and a note.
    None when relaxation is switched off or a step has no label."""
    steps = config.validation.vacancy_relax_steps
    if steps == 0:
        return None, "E_vac (relaxed): not computed on the DFT side (vacancy_relax_steps 0)"
    from ase.optimize import BFGS

    atoms = defect.copy()
    atoms.calc = _LabelCalculator(labeler)
    try:
        converged = BFGS(atoms, logfile=None, maxstep=0.1).run(fmax=DFT_RELAX_FMAX, steps=steps)
    except MissingLabel as error:
        return None, f"E_vac (relaxed): {error}"
    energy = float(atoms.get_potential_energy())
    force = float(np.linalg.norm(atoms.get_forces(), axis=1).max())
    state = "converged" if converged else "NOT converged (an upper bound)"
    return energy, f"DFT vacancy relaxation {state}: max force {force:.3f} eV/Å"
