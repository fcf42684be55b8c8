"""Surrogate plumbing that needs no model: pre-screening, pooling, the registry, imports."""

from __future__ import annotations

import numpy as np
import pytest

from mlip_autopipec.surrogate import (
    SurrogateError,
    pool_by_element,
    prescreen,
    reference_energy,
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
    assert reference_energy(energies, forces, max_force=20.0) == pytest.approx(-5.3)
    verdicts = prescreen(energies, forces, max_force=20.0, max_energy_above_min=0.5)
    assert kinds(verdicts) == [MAX_FORCE, None, None]


def test_an_explicit_reference_energy_is_used() -> None:
    verdicts = prescreen(
        np.array([-5.0]), np.array([1.0]), 20.0, max_energy_above_min=0.2, reference=-5.5
    )
    assert kinds(verdicts) == [ENERGY_ABOVE_MIN]


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
