"""Surrogate plumbing that needs no model: pre-screening, pooling, the registry, imports."""

from __future__ import annotations

import numpy as np
import pytest

from mlip_autopipec.core.composition import EnergyReference, composition
from mlip_autopipec.surrogate import (
    SurrogateError,
    energy_reference,
    pool_by_element,
    prescreen,
)
from mlip_autopipec.surrogate.prescreen import ENERGY_ABOVE_MIN, MAX_FORCE
from mlip_autopipec.surrogate.registry import SURROGATES, surrogate_class


def kinds(verdicts: list) -> list[str | None]:
    return [None if verdict is None else verdict.kind for verdict in verdicts]


def test_prescreen_rejects_large_forces_and_high_energies_with_reasons() -> None:
    energies = np.array([-5.3, -5.2, -4.0, -5.25])
    forces = np.array([1.0, 25.0, 2.0, 19.9])
    verdicts = prescreen(energies, forces, max_force=20.0, max_energy_above_min=1.0)
    assert kinds(verdicts) == [None, MAX_FORCE, ENERGY_ABOVE_MIN, None]
    assert str(verdicts[1]) == "max_force: predicted 25.00 eV/Å > 20.0 eV/Å"
    assert "1.300 eV/atom above the lowest" in str(verdicts[2])


def test_an_exploding_structure_does_not_set_the_energy_reference() -> None:
    energies = np.array([-9.0, -5.3, -5.0])
    forces = np.array([500.0, 1.0, 1.0])
    reference = energy_reference(energies, forces, max_force=20.0)
    assert list(reference.compositions.values()) == [pytest.approx(-5.3)]
    verdicts = prescreen(energies, forces, max_force=20.0, max_energy_above_min=0.5)
    assert kinds(verdicts) == [MAX_FORCE, None, None]


def test_an_explicit_reference_energy_is_used() -> None:
    si = composition(["Si"])
    reference = EnergyReference({"Si": -5.5}, {si: -5.5})
    verdicts = prescreen(np.array([-5.0]), np.array([1.0]), 20.0, 0.2, [si], reference)
    assert kinds(verdicts) == [ENERGY_ABOVE_MIN]


def test_energies_are_compared_within_a_composition_or_against_the_pure_elements() -> None:
    """A binary pool whose energies per atom differ by about 2000 eV between the elements (as
    with Ge PAW and Si pseudopotentials): lightly rattled Ge cells pass; what lies too high
    above its own composition's lowest, or above the pure-element line, is turned away."""
    si, ge = composition(["Si"] * 8), composition(["Ge"] * 8)
    sige = composition(["Si"] * 4 + ["Ge"] * 4)
    e_si, e_ge = -107.0, -2233.0
    mix = (e_si + e_ge) / 2
    rows = [
        (si, e_si), (si, e_si + 0.3), (si, e_si + 1.2),  # 1.2 above Si's lowest
        (ge, e_ge), (ge, e_ge + 0.2), (ge, e_ge + 0.4),  # rattled Ge: all fine
        (sige, mix - 0.05), (sige, mix + 0.5),  # 0.5 above the lower of line and own lowest
        (sige, mix + 1.3),  # 1.35 above its composition's lowest
    ]  # fmt: skip
    keys = [key for key, _ in rows]
    energies = np.array([energy for _, energy in rows])
    verdicts = prescreen(energies, np.ones(len(rows)), 20.0, 1.0, keys)
    assert kinds(verdicts) == [
        None, None, ENERGY_ABOVE_MIN, None, None, None, None, None, ENERGY_ABOVE_MIN
    ]  # fmt: skip
    assert "1.350 eV/atom above the lowest" in str(verdicts[8])
    # an alloy composition high above the pure-element line is turned away as a whole
    verdicts = prescreen(np.array([e_si, e_ge, mix + 1.5]), np.ones(3), 20.0, 1.0, [si, ge, sige])
    assert kinds(verdicts) == [None, None, ENERGY_ABOVE_MIN]
    # without a pure reference for Ge, the alloy is compared within its own composition
    verdicts = prescreen(np.array([e_si, mix, mix + 0.5]), np.ones(3), 20.0, 1.0, [si, sige, sige])
    assert kinds(verdicts) == [None, None, None]


def test_nan_predictions_are_rejected() -> None:
    verdicts = prescreen(np.array([-5.0, -5.0]), np.array([np.nan, 1.0]), 20.0, 1.0)
    assert kinds(verdicts) == [MAX_FORCE, None]


def test_pooling_averages_per_element_in_config_order() -> None:
    numbers = np.array([14, 32, 14, 32, 32])
    features = np.array([[1.0, 0.0], [0.0, 3.0], [3.0, 2.0], [0.0, 6.0], [3.0, 0.0]])
    descriptor = pool_by_element(numbers, features, ["Ge", "Si", "Sn"])
    assert descriptor.tolist() == [1.0, 3.0, 2.0, 1.0, 0.0, 0.0]


def test_pooling_is_independent_of_atom_order_and_count() -> None:
    rng = np.random.default_rng(0)
    numbers = np.array([14, 14, 32, 32])
    features = rng.normal(size=(4, 3))
    order = rng.permutation(4)
    doubled = pool_by_element(np.tile(numbers, 2), np.tile(features, (2, 1)), ["Si", "Ge"])
    shuffled = pool_by_element(numbers[order], features[order], ["Si", "Ge"])
    assert np.allclose(doubled, pool_by_element(numbers, features, ["Si", "Ge"]))
    assert np.allclose(shuffled, doubled)


def test_registry_knows_both_surrogates_and_refuses_others() -> None:
    assert set(SURROGATES) == {"chgnet", "mace"}
    assert surrogate_class("chgnet").__name__ == "CHGNetWrapper"
    assert surrogate_class("mace").__name__ == "MaceWrapper"
    with pytest.raises(SurrogateError, match="unknown surrogate 'sevenn'"):
        surrogate_class("sevenn")
