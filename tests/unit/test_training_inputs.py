"""pacemaker's input.yaml: built from the config, read back with pacemaker's loader, checked by
pyace's own constructors; and the config refusing invalid training settings by field name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlip_autopipec.config import ConfigError, TrainingConfig, config_from_dict
from mlip_autopipec.training.inputs import (
    DataFiles,
    FitStart,
    InputError,
    blocks_per_element,
    build_input,
    choose_start,
    functions_per_block,
    grown_too_much,
    potential_section,
    read_input,
    validate_input,
    write_input,
)

CONFIGS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "defaults": ({}, ["Si"]),
    "small_sbessel": ({"number_of_functions_per_element": 12, "maxiter": 5}, ["Si"]),
    "chebexpcos_fs_one_density": (
        {
            "radial_basis": "ChebExpCos",
            "embedding_npot": "FinnisSinclair",
            "embedding_ndensity": 1,
            "embedding_fs_parameters": [1.0, 1.0],
            "cutoff": 6.5,
        },
        ["Si"],
    ),
    "ladder_power_order": (
        {"ladder_step": [10, 0.2], "ladder_type": "power_order", "optimizer": "L-BFGS-B"},
        ["Si"],
    ),
    "binary_short_orders": (
        {
            "nradmax_by_orders": [8, 4, 2],
            "lmax_by_orders": [0, 2, 1],
            "number_of_functions_per_element": 30,
            "kappa": 0.8,
            "l2_reg": 1e-5,
        },
        ["Si", "Ge"],
    ),
}


def data_files(folder: Path, elements: list[str], test: bool = True) -> DataFiles:
    (folder / "train.pckl.gzip").write_bytes(b"")
    if test:
        (folder / "test.pckl.gzip").write_bytes(b"")
    references = {el: -100.0 - index for index, el in enumerate(elements)}
    return DataFiles("train.pckl.gzip", "test.pckl.gzip" if test else None, references)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_input_round_trips_through_pacemakers_loader(name: str, tmp_path: Path) -> None:
    settings, elements = CONFIGS[name]
    training = TrainingConfig(**settings)
    built = build_input(training, elements, data_files(tmp_path, elements), FitStart())
    write_input(built, tmp_path / "input.yaml")
    loaded = read_input(tmp_path / "input.yaml")
    assert loaded == built
    validate_input(loaded, tmp_path)
    assert "test_size" not in loaded["data"]
    assert loaded["data"]["test_filename"] == "test.pckl.gzip"
    assert loaded["potential"]["bonds"]["ALL"]["rcut"] == training.cutoff
    assert loaded["fit"]["maxiter"] == training.maxiter
    assert loaded["backend"]["batch_size"] == training.batch_size


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_pyace_builds_the_requested_number_of_functions(name: str) -> None:
    from pyace.basisextension import construct_bbasisconfiguration

    settings, elements = CONFIGS[name]
    training = TrainingConfig(**settings)
    basis = construct_bbasisconfiguration(potential_section(training, elements))
    per_element = training.number_of_functions_per_element
    assert 0 < basis.total_number_of_functions <= per_element * len(elements) ** 2


@pytest.mark.parametrize("elements", [["Si"], ["Si", "Ge"], ["Si", "Ge", "C"]])
def test_pyace_shares_the_functions_of_an_element_among_its_blocks(elements: list[str]) -> None:
    """The pure Si block of a binary gets half the functions per element, of a ternary a
    quarter: what blocks_per_element and functions_per_block say."""
    from pyace.multispecies_basisextension import create_multispecies_basis_config

    training = TrainingConfig(
        nradmax_by_orders=[15, 6, 4], lmax_by_orders=[0, 3, 3], number_of_functions_per_element=120
    )
    basis = create_multispecies_basis_config(potential_section(training, elements))
    blocks = [block.block_name.split() for block in basis.funcspecs_blocks]
    assert sum(names[0] == "Si" for names in blocks) == blocks_per_element(len(elements))
    (pure_si,) = [b for b in basis.funcspecs_blocks if b.block_name == "Si"]
    assert len(pure_si.funcspecs) == functions_per_block(training, len(elements))
    assert functions_per_block(training, len(elements)) == 120 // 2 ** (len(elements) - 1)


def test_ladder_and_loss_are_written_as_pacemaker_expects(tmp_path: Path) -> None:
    training = TrainingConfig(ladder_step=[10, 0.2], kappa=0.5, l1_reg=1e-6, l2_reg=0)
    built = build_input(training, ["Si"], data_files(tmp_path, ["Si"], test=False), FitStart())
    assert built["fit"]["ladder_step"] == [10, 0.2]
    assert isinstance(built["fit"]["ladder_step"][0], int)
    assert built["fit"]["loss"] == {"kappa": 0.5, "L1_coeffs": 1e-6, "L2_coeffs": 0.0}
    assert "test_filename" not in built["data"]
    single = build_input(
        TrainingConfig(ladder_step=[25]), ["Si"], data_files(tmp_path, ["Si"]), FitStart()
    )
    assert single["fit"]["ladder_step"] == 25


@pytest.fixture
def previous_potential(tmp_path: Path) -> Path:
    """A real B-basis file, made by pyace from a small basis."""
    from pyace.basisextension import construct_bbasisconfiguration

    section = potential_section(TrainingConfig(number_of_functions_per_element=10), ["Si"])
    path = tmp_path / "previous_potential.yaml"
    construct_bbasisconfiguration(section).save(str(path))
    return path


def test_continue_and_extend_inputs_validate(tmp_path: Path, previous_potential: Path) -> None:
    training = TrainingConfig(number_of_functions_per_element=10, ladder_step=[5])
    files = data_files(tmp_path, ["Si"])
    resume = build_input(training, ["Si"], files, FitStart("continue", previous_potential.name))
    assert resume["potential"] == previous_potential.name
    assert "ladder_step" not in resume["fit"]  # a ladder would restart from an empty basis
    validate_input(resume, tmp_path)
    grow = build_input(training, ["Si"], files, FitStart("extend", previous_potential.name))
    assert grow["potential"]["initial_potential"] == previous_potential.name
    validate_input(grow, tmp_path)
    grow["potential"]["initial_potential"] = "nowhere.yaml"
    with pytest.raises(InputError, match="potential.initial_potential: file 'nowhere.yaml'"):
        validate_input(grow, tmp_path)


def test_choose_start() -> None:
    base = potential_section(TrainingConfig(number_of_functions_per_element=20), ["Si"])
    more = potential_section(TrainingConfig(number_of_functions_per_element=40), ["Si"])
    fewer = potential_section(TrainingConfig(number_of_functions_per_element=10), ["Si"])
    other_cutoff = potential_section(
        TrainingConfig(number_of_functions_per_element=40, cutoff=6), ["Si"]
    )
    assert choose_start(base, None, None).mode == "scratch"
    assert choose_start(base, base, "p.yaml") == FitStart(
        "continue", "p.yaml", "same basis as the previous potential"
    )
    assert choose_start(more, base, "p.yaml").mode == "extend"
    assert choose_start(fewer, base, "p.yaml").mode == "scratch"
    assert choose_start(other_cutoff, base, "p.yaml").mode == "scratch"


def test_growth_limit_for_upfitting() -> None:
    assert not grown_too_much(previous_train=20, current_train=30, max_growth=0.5)
    assert grown_too_much(previous_train=20, current_train=31, max_growth=0.5)
    assert grown_too_much(previous_train=9, current_train=17, max_growth=0.5)
    assert not grown_too_much(previous_train=17, current_train=21, max_growth=0.5)
    assert not grown_too_much(previous_train=20, current_train=20, max_growth=0.0)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d["data"].update(filename="missing.pckl.gzip"), "data.filename: file"),
        (lambda d: d["data"].update(test_size=0.1), "data.test_size"),
        (lambda d: d["fit"]["loss"].update(kapa=0.3), "fit.loss"),
        (lambda d: d["fit"].update(ladder_step=-3), "fit.ladder_step"),
        (lambda d: d["potential"]["bonds"]["ALL"].update(radbase="Nonsense"), "potential: pyace"),
        (lambda d: d["backend"].update(evaluator="torch"), "backend.evaluator"),
        (lambda d: d.pop("fit"), "fit: section missing"),
    ],
)
def test_validation_names_the_bad_section(change: Any, match: str, tmp_path: Path) -> None:
    built = build_input(TrainingConfig(), ["Si"], data_files(tmp_path, ["Si"]), FitStart())
    change(built)
    with pytest.raises(InputError, match=match):
        validate_input(built, tmp_path)


MINIMAL = {
    "system": {"elements": ["Si"]},
    "dft": {"pseudopotentials": {"Si": "Si.pbe-rrkj.UPF"}},
}


@pytest.mark.parametrize(
    ("training", "message"),
    [
        ({"embedding_fs_parameters": [1, 1, 1]}, "training.embedding_fs_parameters: needs 2 x"),
        ({"lmax_by_orders": [0, 2]}, "training.lmax_by_orders: needs one value per order"),
        ({"lmax_by_orders": [1, 3, 3, 2, 2, 1]}, "training.lmax_by_orders: the first"),
        ({"nradmax_by_orders": [1, 2, 3, 4, 5, 6, 7]}, "training.nradmax_by_orders"),
        ({"ladder_step": [1.5]}, "training.ladder_step: 1.5 is neither"),
        ({"ladder_step": [1, 2, 3]}, "training.ladder_step"),
        ({"cutoff": 0.5}, "training.cutoff"),
        ({"kappa": 1.2}, "training.kappa"),
        ({"maxiter": 0}, "training.maxiter"),
        ({"optimizer": "Adam"}, "training.optimizer"),
        ({"radial_basis": "Gaussian"}, "training.radial_basis"),
        ({"test_fraction": 1.0}, "training.test_fraction"),
        ({"command": [""]}, "training.command: arguments must be non-empty"),
        ({"reference_energies": {"Xx": 1.0}}, "training.reference_energies: 'Xx' is not"),
        ({"reference_energies": {"Si": float("nan")}}, "training.reference_energies: Si"),
        (
            {"reference_energies": {"Ge": -100.0}},
            "training: reference_energies has no entry for Si",
        ),
        ({"ladder": 3}, "training.ladder: Extra inputs are not permitted"),
    ],
)
def test_config_rejects_invalid_training_by_field(training: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({**MINIMAL, "training": training})
    assert any(problem.startswith(message) for problem in caught.value.problems), (
        caught.value.problems
    )


def test_the_basis_is_capped_by_the_scarcest_elements_training_atoms() -> None:
    from mlip_autopipec.config import TrainingConfig
    from mlip_autopipec.training.inputs import determined_basis

    training = TrainingConfig(number_of_functions_per_element=300)
    assert determined_basis(training, {"Si": 200}) == 150  # 3/4: pace_activeset drops outliers
    assert determined_basis(training, {"Si": 800, "Ge": 120}) == 90
    assert determined_basis(training, {"Si": 5000}) == 300
