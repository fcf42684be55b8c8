"""pacemaker's input.yaml: built from TrainingConfig (pure), written, and checked by pyace itself.

Three ways to start a fit:
- `scratch`: a new basis from the config.
- `continue`: the previous iteration's potential has the very basis the config asks for, so its
  coefficients are the starting point (pacemaker's `potential: previous.yaml`, as with `-p`).
- `extend`: the config asks for more functions than the previous potential has; pacemaker grows
  the previous potential towards the new basis (its `initial_potential`, as with `-ip`).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from mlip_autopipec.config import TrainingConfig
from mlip_autopipec.core.quiet_imports import pyace_logging_untouched
from mlip_autopipec.errors import UserError

StartMode = Literal["scratch", "continue", "extend"]
DISPLAY_STEP = 50


class InputError(UserError, ValueError):
    """pacemaker would reject the input; the message names the section of input.yaml."""


@dataclass(frozen=True)
class FitStart:
    """Where a fit starts: from scratch or from a previous potential (file name or path)."""

    mode: StartMode = "scratch"
    previous: str | None = None
    reason: str = "no previous potential"


@dataclass(frozen=True)
class DataFiles:
    """Data file names as pacemaker should read them (relative to its working folder)."""

    train: str
    test: str | None
    reference_energies: Mapping[str, float]


def potential_section(training: TrainingConfig, elements: Sequence[str]) -> dict[str, Any]:
    """The basis pacemaker builds: elements, embedding, radial basis and functions."""
    return {
        "deltaSplineBins": 0.001,
        "elements": sorted(elements),
        "embeddings": {
            "ALL": {
                "npot": training.embedding_npot,
                "fs_parameters": list(training.embedding_fs_parameters),
                "ndensity": training.embedding_ndensity,
            }
        },
        "bonds": {
            "ALL": {
                "radbase": training.radial_basis,
                "radparameters": list(training.radial_parameters),
                "rcut": training.cutoff,
                "dcut": 0.01,
                "NameOfCutoffFunction": "cos",
            }
        },
        "functions": {
            "number_of_functions_per_element": training.number_of_functions_per_element,
            "ALL": {
                "nradmax_by_orders": list(training.nradmax_by_orders),
                "lmax_by_orders": list(training.lmax_by_orders),
            },
        },
    }


def choose_start(
    current: Mapping[str, Any], previous_section: Mapping[str, Any] | None, previous: str | None
) -> FitStart:
    """Continue from the previous potential when the basis is unchanged, grow it when only the
    number of functions went up, and start from scratch otherwise."""
    if previous is None or previous_section is None:
        return FitStart()
    if dict(current) == dict(previous_section):
        return FitStart("continue", previous, "same basis as the previous potential")
    grown = functions_of(current) > functions_of(previous_section)
    if grown and same_shape(current, previous_section):
        return FitStart("extend", previous, "more functions than the previous potential")
    return FitStart(reason="basis settings changed since the previous potential")


def same_shape(section: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether two potential sections differ at most in their number of functions per element
    (same elements, cutoff, radial basis, orders, embedding)."""

    def shape(of: Mapping[str, Any]) -> dict[str, Any]:
        shaped = copy.deepcopy(dict(of))
        shaped.get("functions", {}).pop("number_of_functions_per_element", None)
        return shaped

    return shape(section) == shape(other)


def check_basis_shape(training: TrainingConfig, elements: Sequence[str]) -> None:
    """Raise InputError, naming the settings, when pyace has no basis of the configured shape
    for this many elements (its precomputed white-list of function shapes is smaller for
    several elements): the error pacemaker would otherwise give after DFT was spent."""
    error = _basis_error(training, elements)
    if error is None:
        return
    orders = len(training.nradmax_by_orders)
    fits = next(
        (
            n
            for n in range(orders - 1, 0, -1)
            if _basis_error(_first_orders(training, n), elements) is None
        ),
        None,
    )
    what = (
        f"training.nradmax_by_orders / lmax_by_orders: pyace has no basis of this shape "
        f"({orders} orders) for {len(elements)} element(s) {', '.join(elements)} ({error})"
    )
    if fits is None:
        raise InputError(what)
    shorter = _first_orders(training, fits)
    raise InputError(
        f"{what}; {fits} orders work, e.g. nradmax_by_orders: {shorter.nradmax_by_orders}, "
        f"lmax_by_orders: {shorter.lmax_by_orders}"
    )


def blocks_per_element(elements: int) -> int:
    """Basis blocks pyace builds per element: one for each set of other elements that can sit
    around it, its own pure block included (2^(n-1)). It shares number_of_functions_per_element
    equally among them (pyace's `create_multispecies_basis_config`), so in a binary fit each
    element's pure environments get half the functions a one-element fit would give them."""
    return 2 ** (max(elements, 1) - 1)


def functions_per_block(training: TrainingConfig, elements: int) -> int:
    """Functions of each block, e.g. of an element's pure environments (see blocks_per_element)."""
    return training.number_of_functions_per_element // blocks_per_element(elements)


def _first_orders(training: TrainingConfig, orders: int) -> TrainingConfig:
    return training.model_copy(
        update={
            "nradmax_by_orders": training.nradmax_by_orders[:orders],
            "lmax_by_orders": training.lmax_by_orders[:orders],
        }
    )


def _basis_error(training: TrainingConfig, elements: Sequence[str]) -> str | None:
    try:
        _check_potential(potential_section(training, elements), Path("."))
    except InputError as error:
        return " ".join(str(error).split())[:200]
    return None


# pace_activeset leaves out atoms whose force error is an outlier (above Q3 + 1.5 IQR): a few
# per cent of them, more on a small, uneven training set.
ACTIVE_SET_ATOM_SHARE = 0.75


def determined_basis(training: TrainingConfig, atoms_per_element: Mapping[str, int]) -> int:
    """Functions per element this fit can use: pace_activeset needs at least as many training
    atoms of each element as functions (else its MaxVol problem is under-determined), so the
    basis is capped by the scarcest element and grows (an "extend" up-fit) as data arrive."""
    scarcest = min(atoms_per_element.values(), default=0)
    usable = int(ACTIVE_SET_ATOM_SHARE * scarcest)
    return max(1, min(training.number_of_functions_per_element, usable))


def grown_too_much(previous_train: int, current_train: int, max_growth: float) -> bool:
    """Whether the training set grew by more than `max_growth` (a fraction) since the previous
    fit, so that its potential is a poor starting point and a fit from scratch is better."""
    return current_train > (1.0 + max_growth) * previous_train


def functions_of(section: Mapping[str, Any]) -> int:
    """Functions per element of a potential section (0 when it names none)."""
    return int(section.get("functions", {}).get("number_of_functions_per_element", 0))


def build_input(
    training: TrainingConfig, elements: Sequence[str], data: DataFiles, start: FitStart
) -> dict[str, Any]:
    """The whole input.yaml as a dict (no test_size: we pass our own test file)."""
    potential: dict[str, Any] | str = potential_section(training, elements)
    fit: dict[str, Any] = {
        "loss": {
            "kappa": training.kappa,
            "L1_coeffs": training.l1_reg,
            "L2_coeffs": training.l2_reg,
        },
        "optimizer": training.optimizer,
        "maxiter": training.maxiter,
        "repulsion": "auto",
    }
    if start.mode == "continue" and start.previous is not None:
        potential = start.previous
    else:
        if start.mode == "extend" and isinstance(potential, dict):
            potential["initial_potential"] = start.previous
        if training.ladder_step:
            fit["ladder_step"] = _ladder_step(training.ladder_step)
            fit["ladder_type"] = training.ladder_type
    data_section: dict[str, Any] = {
        "filename": data.train,
        "reference_energy": {el: float(e) for el, e in sorted(data.reference_energies.items())},
        # Our data files carry w_energy/w_forces (see dataset.py); pacemaker must use them.
        "ignore_weights": False,
    }
    if data.test is not None:
        data_section["test_filename"] = data.test
    return {
        "seed": training.seed,
        "metadata": {"origin": "mlip-autopipec", "start": start.mode},
        "potential": potential,
        "data": data_section,
        "fit": fit,
        "backend": {
            "evaluator": "tensorpot",
            "batch_size": training.batch_size,
            "display_step": min(DISPLAY_STEP, training.maxiter),
        },
    }


def _ladder_step(steps: Sequence[float]) -> int | float | list[int | float]:
    values: list[int | float] = [int(s) if s >= 1 else float(s) for s in steps]
    return values[0] if len(values) == 1 else values


def write_input(data: Mapping[str, Any], path: Path) -> None:
    path.write_text(yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=None))


def read_input(path: Path) -> dict[str, Any]:
    """Read input.yaml the way pacemaker does (ruamel's safe pure loader)."""
    from ruamel.yaml import YAML

    with open(path) as handle:
        loaded = YAML(typ="safe", pure=True).load(handle)
    if not isinstance(loaded, dict):
        raise InputError(f"{path}: not a mapping")
    return loaded


def validate_input(data: Mapping[str, Any], base_dir: Path) -> None:
    """Check an input the way pacemaker will, with pyace's own constructors; raise InputError."""
    for section in ("potential", "data", "fit", "backend"):
        if section not in data:
            raise InputError(f"{section}: section missing")
    _check_potential(data["potential"], base_dir)
    _check_data(data["data"], base_dir)
    _check_fit(data["fit"])
    if data["backend"].get("evaluator") not in ("tensorpot", "pyace"):
        raise InputError("backend.evaluator: must be tensorpot or pyace")


def _check_potential(potential: Any, base_dir: Path) -> None:
    with pyace_logging_untouched():
        from pyace.basis import BBasisConfiguration
        from pyace.basisextension import construct_bbasisconfiguration

    try:
        if isinstance(potential, str):
            _existing(potential, base_dir, "potential")
            BBasisConfiguration(str(base_dir / potential))
            return
        section = copy.deepcopy(dict(potential))
        initial = section.pop("initial_potential", None)
        if initial is not None:
            _existing(initial, base_dir, "potential.initial_potential")
            BBasisConfiguration(str(base_dir / initial))
        basis = construct_bbasisconfiguration(section)
    except InputError:
        raise
    except Exception as error:  # pyace raises ValueError, RuntimeError, KeyError, ...
        raise InputError(f"potential: pyace rejects it ({type(error).__name__}: {error})") from None
    if basis.total_number_of_functions == 0:
        raise InputError("potential.functions: the basis has no functions")


def _check_data(data: Mapping[str, Any], base_dir: Path) -> None:
    if "test_size" in data:
        raise InputError("data.test_size: we pass our own test file, not a fraction")
    _existing(data.get("filename"), base_dir, "data.filename")
    if "test_filename" in data:
        _existing(data["test_filename"], base_dir, "data.test_filename")


def _check_fit(fit: Mapping[str, Any]) -> None:
    with pyace_logging_untouched():
        from pyace.basisextension import get_actual_ladder_step
        from pyace.lossfuncspec import LossFunctionSpecification

    loss = dict(fit.get("loss", {}))
    known = set(inspect.signature(LossFunctionSpecification).parameters) - {"kwargs"}
    unknown = sorted(set(loss) - known)
    if unknown:  # pacemaker would silently ignore a misspelt weight
        raise InputError(f"fit.loss: unknown key(s) {', '.join(unknown)}; known: {sorted(known)}")
    LossFunctionSpecification(**loss)
    if "ladder_step" in fit:
        try:
            get_actual_ladder_step(fit["ladder_step"], 1, 100)
        except Exception as error:
            raise InputError(f"fit.ladder_step: {error}") from None
    if int(fit.get("maxiter", 0)) < 1:
        raise InputError("fit.maxiter: must be at least 1")


def _existing(name: Any, base_dir: Path, where: str) -> None:
    if not isinstance(name, str) or not (base_dir / name).is_file():
        raise InputError(f"{where}: file {name!r} not found in {base_dir}")
