"""PacemakerWrapper: fit an ACE potential with pacemaker, build its active set, convert to .yace.

Recipe of one fit (all in `iter_NNN.tmp/`, renamed to `iter_NNN/` only when every step worked,
so a crash or timeout never leaves a half-written potential where the next stage looks):
write data -> write input.yaml -> pacemaker (an up-fit that stalls is checked against a fit
from scratch) -> pace_activeset -> pace_yaml2yace -> metrics, plots -> rename.

A finished pacemaker fit is marked (fit_done.json, with a fingerprint of what it was fitted
on); a run killed after it (in pace_activeset, say) keeps the fit when the same data comes
back, and only the steps after it run again.

Files in iter_NNN/: output_potential.yaml (B-basis, for pyace + active set), .asi (active set),
.yace (for LAMMPS), metrics.json, *.png, pacemaker.log (its stderr: the log), input.yaml,
train/test.pckl.gzip, dataset.extxyz, and pacemaker's own outputs (metrics.txt, *_pred.pckl.gzip,
fitting_data_info.pckl.gzip, report/).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import yaml

from mlip_autopipec.config import TrainingConfig
from mlip_autopipec.core.files import fresh_folder
from mlip_autopipec.core.process import ExecutableNotFoundError, resolve_executable, run_process
from mlip_autopipec.errors import UserError
from mlip_autopipec.training.dataset import TEST, TRAIN, DatasetBuilder, LabeledStructure
from mlip_autopipec.training.inputs import (
    ACTIVE_SET_ATOM_SHARE,
    DataFiles,
    FitStart,
    StartMode,
    blocks_per_element,
    build_input,
    choose_start,
    determined_basis,
    functions_per_block,
    grown_too_much,
    potential_section,
    read_input,
    validate_input,
    write_input,
)
from mlip_autopipec.training.metrics import (
    LOSS_HISTORY,
    TEST_PREDICTIONS,
    TRAIN_PREDICTIONS,
    FitMetrics,
    MetricsError,
    read_loss_history,
    read_metrics,
    read_predictions,
    summarize,
    write_metrics,
)
from mlip_autopipec.training.plots import PLOTS, plot_fit

logger = logging.getLogger(__name__)

INPUT_FILE = "input.yaml"
TRAIN_DATA = "train.pckl.gzip"
TEST_DATA = "test.pckl.gzip"
DATASET_EXTXYZ = "dataset.extxyz"
PREVIOUS_POTENTIAL = "previous_potential.yaml"
POTENTIAL = "output_potential.yaml"
ACTIVE_SET = "output_potential.asi"
YACE = "output_potential.yace"
FITTING_DATA_INFO = "fitting_data_info.pckl.gzip"
PACEMAKER_LOG = "pacemaker.log"
PACEMAKER_STDOUT = "pacemaker.out"
METRICS_FILE = "metrics.json"
STAGING_SUFFIX = ".tmp"
SCRATCH_SUFFIX = ".scratch"
DISCARDED_FIT = "discarded_fit"
FIT_DONE = "fit_done.json"
QUIET_TENSORFLOW = {"TF_CPP_MIN_LOG_LEVEL": "3"}


class TrainingError(UserError, RuntimeError):
    """A fit did not produce a usable potential; the message names the log to read."""


def resolve_tool(name: str) -> str:
    """An executable on PATH, or else installed next to this Python (a venv's bin/)."""
    try:
        return resolve_executable(name)
    except ExecutableNotFoundError:
        candidate = Path(sys.executable).parent / name
        if os.sep not in name and candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
        raise


@dataclass(frozen=True)
class PacemakerProfile:
    """How to launch pacemaker and its helper programs: resolved argument lists and a timeout."""

    pacemaker: tuple[str, ...]
    activeset: tuple[str, ...]
    yaml2yace: tuple[str, ...]
    timeout: float

    @classmethod
    def from_config(cls, training: TrainingConfig) -> PacemakerProfile:
        return cls(
            pacemaker=(resolve_tool(training.command[0]), *training.command[1:]),
            # -a: every training atom may enter the active set. By default pace_activeset
            # leaves out atoms whose force error is an outlier (Q3 + 1.5 IQR), and those are the
            # rarest environments: the fit's own training structures then grade in the
            # thousands and MD halts at once on what was just labeled.
            activeset=(resolve_tool("pace_activeset"), "-a"),
            yaml2yace=(resolve_tool("pace_yaml2yace"),),
            timeout=training.timeout,
        )


@dataclass(frozen=True)
class TrainingResult:
    """A finished fit: its folder (potentials/iter_NNN) and metrics; paths of what it holds."""

    folder: Path
    metrics: FitMetrics

    @classmethod
    def load(cls, folder: Path) -> TrainingResult:
        return cls(folder=folder, metrics=read_metrics(folder / METRICS_FILE))

    @property
    def potential(self) -> Path:
        """B-basis .yaml: for pyace.PyACECalculator (with the active set) and up-fitting."""
        return self.folder / POTENTIAL

    @property
    def active_set(self) -> Path:
        return self.folder / ACTIVE_SET

    @property
    def yace(self) -> Path:
        """Ctilde-basis .yace: for LAMMPS pair_style pace (takes no active set in pyace)."""
        return self.folder / YACE

    @property
    def log(self) -> Path:
        return self.folder / PACEMAKER_LOG

    @property
    def plots(self) -> list[Path]:
        return [self.folder / name for name in PLOTS if (self.folder / name).is_file()]

    def training_rows(self) -> frozenset[str] | None:
        """The names of the structures it was fitted on (its pacemaker training file); None
        when that file is gone or unreadable."""
        import pandas as pd

        try:
            data = pd.read_pickle(self.folder / TRAIN_DATA, compression="gzip")
            return frozenset(str(name) for name in data["name"])
        except Exception as error:  # noqa: BLE001 - any unreadable file: no rows to compare
            logger.warning("cannot read the training rows of %s: %s", self.folder, error)
            return None


def train_atoms_per_element(structures: Sequence[LabeledStructure]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for structure in structures:
        if structure.split == TRAIN:
            for symbol in structure.atoms.get_chemical_symbols():
                counts[symbol] = counts.get(symbol, 0) + 1
    return counts


def distinct_environments(structures: Sequence[LabeledStructure], cutoff: float) -> dict[str, int]:
    """Training atoms per element whose neighbourhood within `cutoff` differs from every other
    one's (neighbour elements and distances to 0.01 Å): the rows pace_activeset can use."""
    from ase.neighborlist import neighbor_list

    seen: dict[str, set[tuple[tuple[str, float], ...]]] = {}
    for structure in structures:
        if structure.split != TRAIN:
            continue
        atoms = structure.atoms
        centres, neighbours, distances = neighbor_list("ijd", atoms, cutoff)
        symbols = atoms.get_chemical_symbols()
        shells: list[list[tuple[str, float]]] = [[] for _ in symbols]
        for centre, neighbour, distance in zip(centres, neighbours, distances, strict=True):
            shells[centre].append((symbols[neighbour], round(float(distance), 2)))
        for symbol, shell in zip(symbols, shells, strict=True):
            seen.setdefault(symbol, set()).add(tuple(sorted(shell)))
    return {symbol: len(environments) for symbol, environments in seen.items()}


def staging_folder(target_dir: Path) -> Path:
    return target_dir.with_name(target_dir.name + STAGING_SUFFIX)


class PacemakerWrapper:
    """Fits one iteration's potential; up-fits from the previous one when given."""

    def __init__(
        self,
        training: TrainingConfig,
        elements: Sequence[str],
        profile: PacemakerProfile | None = None,
    ) -> None:
        self.training = training
        self.elements = list(elements)
        self.profile = profile or PacemakerProfile.from_config(training)

    def fit(
        self,
        structures: Sequence[LabeledStructure],
        builder: DatasetBuilder,
        target_dir: Path,
        previous: TrainingResult | None = None,
    ) -> TrainingResult:
        """Fit on the train structures, test on the test ones; results land in target_dir."""
        if target_dir.exists():
            raise TrainingError(f"{target_dir} exists already; it holds a finished fit")
        wrapper = self._for_data(structures)
        if wrapper is not self:
            logger.warning(
                "%d functions per element (of %d configured): no more training atoms of the "
                "scarcest element for the active set; the basis grows as data arrive",
                wrapper.training.number_of_functions_per_element,
                self.training.number_of_functions_per_element,
            )
            return wrapper.fit(structures, builder, target_dir, previous)
        fingerprint = self.fingerprint(structures, builder, previous)
        kept = finished_fit(staging_folder(target_dir), fingerprint)
        if kept is not None:
            staging, start, fit_seconds = kept
            logger.info("kept the finished pacemaker fit in %s (stopped after it)", staging)
        else:
            staging, start, fit_seconds = self._fit(structures, builder, target_dir, previous)
            _mark_done(staging, fingerprint, start, fit_seconds)
        try:
            self._run_helper(
                "pace_activeset",
                [*self.profile.activeset, "-d", FITTING_DATA_INFO, POTENTIAL],
                staging,
            )
        except TrainingError:
            smaller = self._basis_for_a_singular_active_set(structures, staging)
            if smaller is None:
                raise
            capped = self.training.model_copy(update={"number_of_functions_per_element": smaller})
            wrapper = PacemakerWrapper(capped, self.elements, self.profile)
            return wrapper.fit(structures, builder, target_dir, previous)
        self._run_helper(
            "pace_yaml2yace", [*self.profile.yaml2yace, POTENTIAL, "-o", YACE], staging
        )
        metrics = self._metrics(staging, start, fit_seconds, builder, previous)
        write_metrics(metrics, staging / METRICS_FILE)
        staging.rename(target_dir)
        logger.info("potential written to %s", target_dir / POTENTIAL)
        return TrainingResult(folder=target_dir, metrics=metrics)

    def _fit(
        self,
        structures: Sequence[LabeledStructure],
        builder: DatasetBuilder,
        target_dir: Path,
        previous: TrainingResult | None,
    ) -> tuple[Path, FitStart, float]:
        staging = fresh_folder(staging_folder(target_dir))
        for_scratch = staging.with_name(staging.name + SCRATCH_SUFFIX)
        shutil.rmtree(for_scratch, ignore_errors=True)  # a fit of other data, never kept
        start = self._prepare(structures, builder, staging, previous)
        fit_seconds = self._run_pacemaker(staging)
        if previous is not None and start.mode != "scratch":
            return self._no_worse_than_scratch(
                structures, builder, (staging, start, fit_seconds), previous
            )
        return staging, start, fit_seconds

    def _for_data(self, structures: Sequence[LabeledStructure]) -> PacemakerWrapper:
        """This wrapper, or one with the basis capped to what the scarcest element's training
        atoms can determine (the active set needs as many atoms as functions)."""
        functions = determined_basis(self.training, train_atoms_per_element(structures))
        if functions >= self.training.number_of_functions_per_element:
            return self
        capped = self.training.model_copy(update={"number_of_functions_per_element": functions})
        return PacemakerWrapper(capped, self.elements, self.profile)

    def is_fitted_as_now(
        self,
        structures: Sequence[LabeledStructure],
        builder: DatasetBuilder,
        finished: Path,
        previous: TrainingResult | None = None,
    ) -> bool:
        """Whether the finished fit in `finished` is what `fit` would make of this data with
        these settings (a fit too old to have its fingerprint counts as the same)."""
        try:
            done = json.loads((finished / FIT_DONE).read_text())["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError):
            return True
        return bool(done == self._for_data(structures).fingerprint(structures, builder, previous))

    def fingerprint(
        self,
        structures: Sequence[LabeledStructure],
        builder: DatasetBuilder,
        previous: TrainingResult | None,
    ) -> str:
        """What a fit depends on: the structures (labels never change), their splits and
        weights, the reference energies, the training settings and the starting potential."""
        document = {
            "structures": [
                [s.row_id, s.split, s.energy_weight, s.atom_weights.tolist()] for s in structures
            ],
            "references": builder.reference_energies,
            "training": self.training.model_dump(mode="json", exclude={"timeout", "command"}),
            "elements": self.elements,
            "previous": _digest(previous.potential) if previous is not None else None,
        }
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()

    def _no_worse_than_scratch(
        self,
        structures: Sequence[LabeledStructure],
        builder: DatasetBuilder,
        upfit: tuple[Path, FitStart, float],
        previous: TrainingResult,
    ) -> tuple[Path, FitStart, float]:
        """An up-fit can stall in the previous potential's minimum when the new structures are
        far from the old ones (measured on Si: 10x the loss a fit from scratch reaches). When
        it ends above upfit_fallback_ratio x the previous final loss, fit from scratch as well
        and keep the fit with the lower train loss; the other one goes into discarded_fit/."""
        staging, start, seconds = upfit
        upfit_loss, before = _final_loss(staging), previous.metrics.final_loss
        ratio = self.training.upfit_fallback_ratio
        if upfit_loss <= ratio * before:
            return upfit
        logger.warning(
            "up-fit ended at loss %.3g > %g x %.3g; fitting from scratch too",
            upfit_loss,
            ratio,
            before,
        )
        scratch = fresh_folder(staging.with_name(staging.name + SCRATCH_SUFFIX))
        scratch_start = self._prepare(structures, builder, scratch, None)
        seconds += self._run_pacemaker(scratch)
        scratch_loss = _final_loss(scratch)
        keep, drop = (scratch, staging) if scratch_loss <= upfit_loss else (staging, scratch)
        kept = scratch_start if keep == scratch else start
        shutil.move(drop, keep / DISCARDED_FIT)
        reason = (
            f"up-fit ended at loss {upfit_loss:.3g} > {ratio:g} x previous {before:.3g}, "
            f"from scratch {scratch_loss:.3g}: kept {kept.mode}"
        )
        return keep, FitStart(kept.mode, kept.previous, reason), seconds

    def _prepare(
        self,
        structures: Sequence[LabeledStructure],
        builder: DatasetBuilder,
        staging: Path,
        previous: TrainingResult | None,
    ) -> FitStart:
        train = [s for s in structures if s.split == TRAIN]
        test = [s for s in structures if s.split == TEST]
        if not train:
            raise TrainingError(
                "no training structures: every labeled structure is in the test set"
            )
        builder.write_pacemaker(train, staging / TRAIN_DATA)
        if test:
            builder.write_pacemaker(test, staging / TEST_DATA)
        else:
            logger.warning("no test structures yet; test errors are not available this iteration")
        builder.write_extxyz(structures, staging / DATASET_EXTXYZ)
        start = self._start(previous, staging, len(train))
        files = DataFiles(TRAIN_DATA, TEST_DATA if test else None, builder.reference_energies)
        write_input(build_input(self.training, self.elements, files, start), staging / INPUT_FILE)
        validate_input(read_input(staging / INPUT_FILE), staging)
        logger.info("fit starts from %s (%s)", start.mode, start.reason)
        if len(self.elements) > 1:
            logger.info(
                "%d functions per element: %d per basis block (pyace shares them over %d "
                "blocks per element; each element's pure environments are one of them)",
                self.training.number_of_functions_per_element,
                functions_per_block(self.training, len(self.elements)),
                blocks_per_element(len(self.elements)),
            )
        return start

    def _start(self, previous: TrainingResult | None, staging: Path, n_train: int) -> FitStart:
        if previous is None or not self.training.upfit:
            return FitStart()
        n_before = previous.metrics.train.n_structures
        if grown_too_much(n_before, n_train, self.training.upfit_max_growth):
            growth = f"{n_before} -> {n_train} training structures"
            return FitStart(reason=f"training set grew too much for up-fitting ({growth})")
        current = potential_section(self.training, self.elements)
        start = choose_start(current, previous.metrics.potential_section, PREVIOUS_POTENTIAL)
        if start.mode != "scratch":
            shutil.copyfile(previous.potential, staging / PREVIOUS_POTENTIAL)
        return start

    def _run_pacemaker(self, staging: Path) -> float:
        argv = [*self.profile.pacemaker, INPUT_FILE]
        logger.info("running %s in %s", " ".join(argv), staging)
        returncode, seconds = run_process(
            argv,
            cwd=staging,
            timeout=self.profile.timeout,
            stdout_name=PACEMAKER_STDOUT,
            stderr_name=PACEMAKER_LOG,
            env=QUIET_TENSORFLOW,
        )
        log = staging / PACEMAKER_LOG
        if returncode is None:
            raise TrainingError(
                f"pacemaker did not finish within {self.profile.timeout:g} s and was stopped; "
                f"no potential was replaced; see {log}"
            )
        if returncode != 0 or not (staging / POTENTIAL).is_file():
            raise TrainingError(
                f"pacemaker failed (exit code {returncode}); no potential was replaced; "
                f"see {log}{_tail(log)}"
            )
        return seconds

    def _basis_for_a_singular_active_set(
        self, structures: Sequence[LabeledStructure], staging: Path
    ) -> int | None:
        """Fewer functions per element when pace_activeset found its projection matrix
        singular: the training atoms of an element had fewer distinct environments than
        functions (a perfect crystal's atoms are all alike, its strained anchors nearly so).
        None when that was not the failure or no smaller basis is left."""
        log = staging / "pace_activeset.log"
        if "singular" not in (log.read_text(errors="replace") if log.is_file() else ""):
            return None
        functions = self.training.number_of_functions_per_element
        distinct = min(distinct_environments(structures, self.training.cutoff).values(), default=0)
        smaller = min(int(ACTIVE_SET_ATOM_SHARE * distinct), functions * 3 // 4)
        if smaller < 1:
            return None
        logger.warning(
            "pace_activeset: singular projections with %d functions per element (%d distinct "
            "training environments of the scarcest element): fitting again with %d",
            functions,
            distinct,
            smaller,
        )
        return smaller

    def _run_helper(self, name: str, argv: list[str], staging: Path) -> None:
        stdout, stderr = f"{name}.out", f"{name}.log"
        returncode, _ = run_process(
            argv, staging, self.profile.timeout, stdout, stderr, env=QUIET_TENSORFLOW
        )
        if returncode != 0:
            raise TrainingError(
                f"{name} failed (exit code {returncode}); no potential was replaced, the "
                f"finished fit stays in {staging} for a rerun; see {staging / stderr}"
                f"{_tail(staging / stderr)}"
            )

    def _metrics(
        self,
        staging: Path,
        start: FitStart,
        fit_seconds: float,
        builder: DatasetBuilder,
        previous: TrainingResult | None,
    ) -> FitMetrics:
        try:
            train = read_predictions(staging / TRAIN_PREDICTIONS)
            has_test = (staging / TEST_DATA).is_file()
            test = read_predictions(staging / TEST_PREDICTIONS) if has_test else None
            history = read_loss_history(staging / LOSS_HISTORY)
            train_summary = summarize(train)
            test_summary = summarize(test) if test is not None else None
        except MetricsError as error:
            raise TrainingError(f"{error}; see {staging / PACEMAKER_LOG}") from None
        plot_fit({"train": train, **({"test": test} if test is not None else {})}, staging)
        upfit = previous is not None and start.mode != "scratch"
        return FitMetrics(
            train=train_summary,
            test=test_summary,
            initial_loss=history[0][1],
            final_loss=history[-1][1],
            n_iterations=history[-1][0],
            fit_seconds=round(fit_seconds, 3),
            start_mode=start.mode,
            start_reason=start.reason,
            previous_potential=str(previous.potential) if upfit and previous else None,
            reference_energies=dict(builder.reference_energies),
            potential_section=potential_section(self.training, self.elements),
        )


def finished_fit(staging: Path, fingerprint: str) -> tuple[Path, FitStart, float] | None:
    """A pacemaker fit of this very data that finished before the run was stopped: in the
    staging folder, or in its scratch twin when the fit from scratch was the one kept."""
    for folder in (staging, staging.with_name(staging.name + SCRATCH_SUFFIX)):
        marker = folder / FIT_DONE
        if folder.is_symlink() or not marker.is_file() or not (folder / POTENTIAL).is_file():
            continue
        try:
            done = json.loads(marker.read_text())
            if done["fingerprint"] != fingerprint:
                continue
            if done["mode"] not in get_args(StartMode):
                continue
            start = FitStart(done["mode"], done["previous"], done["reason"])
            return folder, start, float(done["seconds"])
        except (ValueError, KeyError, TypeError):
            continue  # a marker we cannot read: fit again
    return None


def _mark_done(folder: Path, fingerprint: str, start: FitStart, seconds: float) -> None:
    document = {
        "fingerprint": fingerprint,
        "mode": start.mode,
        "previous": start.previous,
        "reason": start.reason,
        "seconds": seconds,
    }
    (folder / FIT_DONE).write_text(json.dumps(document))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _final_loss(staging: Path) -> float:
    try:
        return read_loss_history(staging / LOSS_HISTORY)[-1][1]
    except MetricsError as error:
        raise TrainingError(f"{error}; see {staging / PACEMAKER_LOG}") from None


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return ("\n  " + "\n  ".join(text)) if text else ""


def reference_energies(potential: Path) -> dict[str, float]:
    """pacemaker's `reference_energy` metadata of a B-basis potential.yaml ({} if absent)."""
    try:
        metadata = yaml.safe_load(potential.read_text()).get("metadata", {})
        found = json.loads(metadata.get("reference_energy", "{}"))
        return {str(element): float(energy) for element, energy in found.items()}
    except (OSError, ValueError, AttributeError, TypeError, yaml.YAMLError):
        return {}
