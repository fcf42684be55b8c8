from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlip_autopipec.dft.parser import ErrorCode, parse_pw_output

QE_DATA = Path(__file__).resolve().parents[1] / "data" / "qe"


def read(name: str) -> str:
    return (QE_DATA / name).read_text()


def test_converged_run_is_a_label() -> None:
    result = parse_pw_output(read("si2_converged_6.7.out"))
    assert result.is_label and result.converged and not result.errors
    assert result.energy == pytest.approx(-15.72318378 * 13.605693, rel=1e-6)
    assert result.forces is not None and result.forces.shape == (2, 3)
    np.testing.assert_allclose(result.forces.sum(axis=0), 0.0, atol=1e-3)
    assert result.stress is not None and result.stress.shape == (6,)
    assert result.scf_iterations == 6
    assert result.wall_time == pytest.approx(2.69)


def test_unconverged_scf_is_never_a_label_despite_job_done() -> None:
    text = read("si2_scf_not_converged_6.7.out")
    assert "JOB DONE" in text
    result = parse_pw_output(text, returncode=0)
    assert not result.is_label and not result.converged
    assert result.errors == {ErrorCode.SCF_NOT_CONVERGED}
    assert result.energy is None
    assert result.scf_iterations == 1


def test_missing_pseudopotential_is_classified() -> None:
    result = parse_pw_output(read("si2_missing_pseudo_6.7.out"), returncode=1)
    assert ErrorCode.PSEUDOPOTENTIAL in result.errors
    assert ErrorCode.NONZERO_EXIT in result.errors
    assert "Si.missing.UPF not found" in result.message


def test_max_seconds_is_out_of_walltime() -> None:
    result = parse_pw_output(read("si8_max_seconds_6.7.out"), returncode=255)
    assert ErrorCode.OUT_OF_WALLTIME in result.errors
    assert not result.is_label


def test_truncated_output_is_interrupted() -> None:
    text = read("si2_converged_6.7.out")
    truncated = text[: text.index("convergence has been achieved")]
    result = parse_pw_output(truncated, returncode=None)
    assert ErrorCode.INTERRUPTED in result.errors and not result.is_label


def test_converged_text_with_nonzero_exit_is_not_a_label() -> None:
    result = parse_pw_output(read("si2_converged_6.7.out"), returncode=139)
    assert ErrorCode.NONZERO_EXIT in result.errors and not result.is_label


def test_garbage_is_not_a_label() -> None:
    result = parse_pw_output("\x00\x01 random bytes JOB DONE? no\n" * 50)
    assert not result.is_label
    assert ErrorCode.INTERRUPTED in result.errors


@pytest.mark.parametrize(
    ("snippet", "code"),
    [
        (
            "     Error in routine cdiaghg (12):\n     problems computing cholesky\n",
            ErrorCode.DIAGONALIZATION,
        ),
        (
            "     Error in routine rdiaghg (3):\n     S matrix not positive definite\n",
            ErrorCode.DIAGONALIZATION,
        ),
        (
            "     Error in routine c_bands (1):\n     too many bands are not converged\n",
            ErrorCode.TOO_MANY_BANDS_NOT_CONVERGED,
        ),
        ("     Error in routine electrons (1):\n     charge is wrong\n", ErrorCode.CHARGE_WRONG),
        (
            "     Error in routine read_upf (1):\n     file not readable\n",
            ErrorCode.PSEUDOPOTENTIAL,
        ),
        ("     Error in routine something (1):\n     unexpected\n", ErrorCode.OTHER_ERROR),
    ],
)
def test_error_table(snippet: str, code: ErrorCode) -> None:
    """pw.x 6.x and 7.x print errors in the same `Error in routine X (n):` block."""
    text = read("si2_converged_6.7.out").replace("     JOB DONE.", "") + snippet
    result = parse_pw_output(text, returncode=1)
    assert code in result.errors
    assert not result.is_label


def test_wall_time_in_minutes_and_hours() -> None:
    text = "     PWSCF        :   1h 2m CPU      1h 3m30.50s WALL\n   JOB DONE.\n"
    assert parse_pw_output(text).wall_time == pytest.approx(3600 + 180 + 30.5)
