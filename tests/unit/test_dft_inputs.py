from __future__ import annotations

from typing import Any

import pytest
from ase import Atoms
from ase.build import bulk, fcc111

from mlip_autopipec.config import config_from_dict
from mlip_autopipec.dft.errors import ErrorCode
from mlip_autopipec.dft.inputs import (
    Restart,
    SCFParameters,
    kpoint_mesh,
    max_seconds_for,
    write_pw_input,
)
from mlip_autopipec.dft.recovery import RecoveryHandler


def test_kpoint_mesh_from_spacing_includes_two_pi() -> None:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    # |b| = 2π / 5.43 = 1.157 1/Å -> ceil(1.157 / 0.4) = 3
    assert kpoint_mesh(atoms, 0.4) == (3, 3, 3)
    assert kpoint_mesh(atoms.repeat((2, 1, 1)), 0.4) == (2, 3, 3)


def test_vacuum_and_non_periodic_directions_get_one_kpoint() -> None:
    slab = fcc111("Cu", size=(1, 1, 3), vacuum=10.0)
    assert kpoint_mesh(slab, 0.3)[2] == 1
    molecule = Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]], cell=[10, 10, 10], pbc=False)
    assert kpoint_mesh(molecule, 0.3) == (1, 1, 1)


def test_max_seconds_stays_below_the_hard_timeout() -> None:
    for timeout in (5, 8, 60, 600, 7200):
        assert 0.8 * timeout <= max_seconds_for(timeout) < timeout


def test_input_has_forces_stress_and_pseudopotentials(config_dict: dict[str, Any]) -> None:
    config = config_from_dict(config_dict)
    text = write_pw_input(
        bulk("Si", "diamond", a=5.43), config.dft, SCFParameters.from_config(config.dft)
    ).text
    assert "tprnfor          = .true." in text and "tstress          = .true." in text
    assert "Si.pbe-rrkj.UPF" in text
    assert "max_seconds      = 108" in text
    assert "K_POINTS automatic\n5 5 5  0 0 0" in text


def test_injection_through_pseudopotential_name_is_rejected(config_dict: dict[str, Any]) -> None:
    from mlip_autopipec.config import ConfigError

    config_dict["dft"]["pseudopotentials"] = {"Si": "Si.UPF'\n/\n&SYSTEM nat=99"}
    with pytest.raises(ConfigError, match="not a plain file name"):
        config_from_dict(config_dict)


def test_recovery_ladder_for_scf(config_dict: dict[str, Any]) -> None:
    config = config_from_dict(config_dict)
    handler = RecoveryHandler(config.dft)
    scf = SCFParameters.from_config(config.dft)
    steps = []
    errors = frozenset({ErrorCode.SCF_NOT_CONVERGED})
    while (correction := handler.correct(errors, scf)) is not None:
        steps.append(correction.description)
        scf = correction.parameters
    assert steps[0].startswith("mixing_beta 0.7 -> 0.35")
    assert steps[-1] == "mixing_mode plain -> local-TF"
    assert scf.mixing_beta >= 0.1 and scf.electron_maxstep > config.dft.electron_maxstep


def test_recovery_ladder_for_diagonalization(config_dict: dict[str, Any]) -> None:
    config = config_from_dict(config_dict)
    handler = RecoveryHandler(config.dft)
    scf = SCFParameters.from_config(config.dft)
    errors = frozenset({ErrorCode.DIAGONALIZATION, ErrorCode.NONZERO_EXIT})
    seen = []
    while (correction := handler.correct(errors, scf)) is not None:
        scf = correction.parameters
        seen.append(scf.diagonalization)
    assert seen == ["ppcg", "paro", "cg"]  # cg, slowest and most stable, last


def test_restart_writes_starting_files_only_when_asked(config_dict: dict[str, Any]) -> None:
    config = config_from_dict(config_dict)
    scf = SCFParameters.from_config(config.dft)
    si = bulk("Si", "diamond", a=5.43)
    scratch = write_pw_input(si, config.dft, scf).text
    density = write_pw_input(si, config.dft, scf, Restart.CHARGE_DENSITY).text
    full = write_pw_input(si, config.dft, scf, Restart.FULL).text
    assert "startingpot" not in scratch and "startingwfc" not in scratch
    assert "startingpot      = 'file'" in density and "startingwfc" not in density
    assert "startingpot      = 'file'" in full and "startingwfc      = 'file'" in full


def test_ladder_falls_through_to_the_next_code(config_dict: dict[str, Any]) -> None:
    """Every solver tried, the SCF still unconverged: the mixing ladder comes next."""
    config = config_from_dict(config_dict)
    scf = SCFParameters.from_config(config.dft).changed(diagonalization="cg")
    errors = frozenset({ErrorCode.DIAGONALIZATION, ErrorCode.SCF_NOT_CONVERGED})
    correction = RecoveryHandler(config.dft).correct(errors, scf)
    assert correction is not None and correction.code == ErrorCode.SCF_NOT_CONVERGED
    assert correction.description == "mixing_beta 0.7 -> 0.35, electron_maxstep 100 -> 200"
    assert correction.restart == Restart.CHARGE_DENSITY


def test_each_correction_says_what_it_restarts_from(config_dict: dict[str, Any]) -> None:
    config_dict["dft"]["max_timeout"] = 300
    config = config_from_dict(config_dict)
    handler = RecoveryHandler(config.dft)
    scf = SCFParameters.from_config(config.dft)
    expected = {
        ErrorCode.SCF_NOT_CONVERGED: Restart.CHARGE_DENSITY,
        ErrorCode.OUT_OF_WALLTIME: Restart.FULL,
        ErrorCode.TIMEOUT_KILLED: Restart.SCRATCH,
        ErrorCode.DIAGONALIZATION: Restart.SCRATCH,
        ErrorCode.CHARGE_MIXING: Restart.SCRATCH,
    }
    for code, restart in expected.items():
        correction = handler.correct(frozenset({code}), scf)
        assert correction is not None and correction.code == code
        assert correction.restart == restart, code


def test_charge_mixer_failure_is_recoverable(config_dict: dict[str, Any]) -> None:
    config = config_from_dict(config_dict)
    handler = RecoveryHandler(config.dft)
    scf = SCFParameters.from_config(config.dft)
    errors = frozenset({ErrorCode.CHARGE_MIXING, ErrorCode.NONZERO_EXIT})
    steps = []
    while (correction := handler.correct(errors, scf)) is not None:
        steps.append(correction.description)
        scf = correction.parameters
    assert steps[0].startswith("mixing_beta 0.7 -> 0.35") and steps[-1].endswith("-> local-TF")


def test_walltime_retry_only_when_allowed(config_dict: dict[str, Any]) -> None:
    errors = frozenset({ErrorCode.OUT_OF_WALLTIME})
    config = config_from_dict(config_dict)
    scf = SCFParameters.from_config(config.dft)
    assert RecoveryHandler(config.dft).correct(errors, scf) is None
    config_dict["dft"]["max_timeout"] = 300
    config = config_from_dict(config_dict)
    correction = RecoveryHandler(config.dft).correct(errors, scf)
    assert correction is not None and correction.parameters.timeout == 240


def test_unrecoverable_errors_get_no_correction(config_dict: dict[str, Any]) -> None:
    config = config_from_dict(config_dict)
    scf = SCFParameters.from_config(config.dft)
    for code in (ErrorCode.PSEUDOPOTENTIAL, ErrorCode.UNPARSABLE, ErrorCode.INTERRUPTED):
        assert RecoveryHandler(config.dft).correct(frozenset({code}), scf) is None
    for code in (ErrorCode.NOT_SINGLE_POINT, ErrorCode.CHARGE_WRONG, ErrorCode.OUT_OF_MEMORY):
        errors = frozenset({code, ErrorCode.SCF_NOT_CONVERGED})
        assert RecoveryHandler(config.dft).correct(errors, scf) is None, code
