"""QEOutputParser on real pw.x 6.7 outputs (tests/data/qe, see its README for what was spliced)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from ase.io.espresso import read_espresso_out

from mlip_autopipec.dft.errors import PRIORITY, ErrorCode
from mlip_autopipec.dft.parser import parse_pw_output, read_numbers_directly

QE_DATA = Path(__file__).resolve().parents[1] / "data" / "qe"
BAR = " " + "%" * 78


def read(name: str) -> str:
    return (QE_DATA / name).read_text()


def error_block(routine: str, number: int, message: str) -> str:
    """An `errore` report exactly as pw.x prints it (UtilXlib/error_handler.f90)."""
    return f"\n{BAR}\n     Error in routine {routine} ({number}):\n     {message}\n{BAR}\n\n"


def cut_in_scf() -> str:
    """Real stdout up to the middle of SCF iteration 2 (where an aborted run stops)."""
    text = read("si2_converged_6.7.out")
    return text[: text.index("     iteration #  2")]


def test_converged_run_is_a_label() -> None:
    result = parse_pw_output(read("si2_converged_6.7.out"))
    assert result.is_label and result.converged and not result.errors
    assert result.failure_kind is None and result.codes == []
    assert result.energy == pytest.approx(-15.72318378 * 13.605693, rel=1e-6)
    assert result.forces is not None and result.forces.shape == (2, 3)
    np.testing.assert_allclose(result.forces.sum(axis=0), 0.0, atol=1e-3)
    assert result.stress is not None and result.stress.shape == (6,)
    assert result.scf_iterations == 6
    assert result.wall_time == pytest.approx(2.69)


def test_unconverged_scf_is_never_a_label_despite_job_done() -> None:
    text = read("si2_scf_not_converged_6.7.out")
    assert "JOB DONE" in text
    result = parse_pw_output(text, returncode=2)  # pw.x 6.7 exits with 2 here
    assert not result.is_label and not result.converged
    assert result.codes == ["scf_not_converged", "nonzero_exit"]
    assert result.failure_kind == "scf_not_converged"
    assert "convergence NOT achieved after   1 iterations" in result.message
    assert result.energy is None
    assert result.scf_iterations == 1


def test_missing_pseudopotential_is_classified_from_stdout_and_crash() -> None:
    result = parse_pw_output(
        read("si2_missing_pseudo_6.7.out"), returncode=1, crash=read("si2_missing_pseudo_6.7.CRASH")
    )
    assert result.codes == ["pseudopotential", "nonzero_exit"]
    assert result.message == "readpp (1): file /usr/share/espresso/pseudo/Si.missing.UPF not found"


def test_error_only_in_crash_file_is_classified() -> None:
    """An error on MPI rank 1 reaches only CRASH; rank 0's stdout just stops mid-SCF."""
    result = parse_pw_output(
        read("si2_cdiaghg_rank1_spliced.out"),
        returncode=1,
        crash=read("si2_cdiaghg_rank1_spliced.CRASH"),
    )
    assert result.failure_kind == "diagonalization"
    assert ErrorCode.INTERRUPTED not in result.errors
    assert result.message == "cdiaghg (207): problems computing cholesky [CRASH]"
    alone = parse_pw_output(read("si2_cdiaghg_rank1_spliced.out"), returncode=1)
    assert alone.failure_kind == "interrupted"  # what the same run looked like without CRASH


def test_max_seconds_is_out_of_walltime() -> None:
    result = parse_pw_output(read("si8_max_seconds_6.7.out"), returncode=255)
    assert result.failure_kind == "out_of_walltime"
    assert "Maximum CPU time exceeded" in result.message
    assert not result.is_label


def test_exit_file_is_stopped_by_user_not_unparsable() -> None:
    result = parse_pw_output(read("si2_exit_file_6.7.out"), returncode=255)
    assert result.codes == ["stopped_by_user", "nonzero_exit"]
    assert result.message == "Program stopped by user request"


@pytest.mark.parametrize(
    ("name", "routine", "message"),
    [
        ("c2_atoms_overlap_6.7", "check_atoms", "atoms #   1 and #   2 overlap!"),
        ("si_more_bands_than_pws_6.7", "memory_report", "more bands than PWs!"),
    ],
)
def test_unknown_routine_is_a_fatal_error_with_routine_and_message(
    name: str, routine: str, message: str
) -> None:
    result = parse_pw_output(read(f"{name}.out"), returncode=1, crash=read(f"{name}.CRASH"))
    assert result.codes == ["fatal_error", "nonzero_exit"]
    assert result.message == f"{routine} (1): {message}"


@pytest.mark.parametrize(
    ("routine", "message"),
    [
        (" cdiaghg ", "problems computing cholesky"),  # 7.x: "Error in routine  cdiaghg (207)"
        ("rdiaghg", "S matrix not positive definite"),
        ("pcdiaghg", "problems computing cholesky"),
        ("laxlib_cdiaghg", "info =/= 0"),
        ("cdiaghg", "eigenvectors failed to converge"),
        (" cegterg ", "nbase > nvecx"),
        ("regterg", "problems"),
        ("pcegterg", "h_diag"),
        ("ppcg_k", "[Q, R] = qr(X, 0) failed"),
        ("ppcg_gamma", "cholQR"),
        ("paro_k", "error in paro"),
        ("rotate_wfc_k", "problems"),
        ("ccgdiagg", "problems"),
        ("something", "zhegvd failed"),
        ("something", "dsyevd failed"),
        ("c_bands", "eigenvalues not converged"),
    ],
)
def test_every_eigensolver_failure_is_diagonalization(routine: str, message: str) -> None:
    text = cut_in_scf() + error_block(routine, 207, message)
    result = parse_pw_output(text, returncode=1)
    assert result.failure_kind == "diagonalization"
    assert ErrorCode.INTERRUPTED not in result.errors


def test_same_failure_in_crash_only_with_two_spaces() -> None:
    crash = (
        f"\n{BAR}\n     task #         3\n     from  regterg  : error #         1\n"
        f"     S matrix not positive definite\n{BAR}\n"
    )
    result = parse_pw_output(cut_in_scf(), returncode=1, crash=crash)
    assert result.failure_kind == "diagonalization"
    assert result.message.startswith("regterg (1): S matrix not positive definite")


def test_broyden_failure_is_charge_mixing() -> None:
    result = parse_pw_output(read("si2_broyden_spliced.out"), returncode=1)
    assert result.codes == ["charge_mixing", "nonzero_exit"]
    assert result.message == "broyden (1): factorization"


@pytest.mark.parametrize(
    ("snippet", "code"),
    [
        (
            error_block("c_bands", 1, "too many bands are not converged"),
            "too_many_bands_not_converged",
        ),
        (error_block("electrons", 1, "charge is wrong: smearing is needed"), "charge_wrong"),
        (error_block("read_upf_v1", 1, "file not readable"), "pseudopotential"),
        (error_block(" cegterg ", 1, " cannot allocate psi "), "out_of_memory"),
        (error_block("something", 1, "unexpected"), "fatal_error"),
        ("\n Fatal error in routine `gen_us_dj': ylm not converged\n", "fatal_error"),
    ],
)
def test_error_table(snippet: str, code: str) -> None:
    result = parse_pw_output(cut_in_scf() + snippet, returncode=1)
    assert result.failure_kind == code
    assert not result.is_label


@pytest.mark.parametrize(
    ("stderr", "returncode", "code", "message"),
    [
        ("\nProgram received signal SIGSEGV: Segmentation fault.\n", -11, "crashed", "SIGSEGV"),
        ("", -9, "crashed", "killed by signal SIGKILL"),
        ("forrtl: severe (174): SIGSEGV, segmentation fault occurred\n", 174, "crashed", "SIGSEGV"),
        (
            "At line 12 of file a.f90\nFortran runtime error: End of file\n",
            2,
            "fatal_error",
            "End of file",
        ),
        (
            "slurmstepd: error: Detected 1 oom-kill event; out of memory\n",
            137,
            "out_of_memory",
            "oom",
        ),
    ],
)
def test_plain_text_fatal_lines_are_not_interrupted(
    stderr: str, returncode: int, code: str, message: str
) -> None:
    result = parse_pw_output(cut_in_scf(), returncode, stderr=stderr)
    assert result.failure_kind == code
    assert message in result.message
    assert ErrorCode.INTERRUPTED not in result.errors


def test_unknown_stopping_line_is_fatal_not_interrupted() -> None:
    text = cut_in_scf() + "\n     Something new went wrong: stopping\n"
    result = parse_pw_output(text, returncode=1)
    assert result.failure_kind == "fatal_error"
    assert result.message == "Something new went wrong: stopping"


def test_truncated_output_is_interrupted_with_its_last_line() -> None:
    result = parse_pw_output(cut_in_scf(), returncode=0)
    assert result.codes == ["interrupted"]
    assert result.message.startswith("output ends without JOB DONE after: ")


def test_killed_at_the_time_limit_is_timeout_not_interrupted() -> None:
    result = parse_pw_output(cut_in_scf(), returncode=None, killed_after=8)
    assert result.codes == ["timeout_killed"]
    assert result.message == "killed after 8 s"


def test_converged_text_with_nonzero_exit_is_not_a_label() -> None:
    result = parse_pw_output(read("si2_converged_6.7.out"), returncode=139)
    assert result.codes == ["nonzero_exit"] and not result.is_label


def test_garbage_is_not_a_label() -> None:
    result = parse_pw_output("\x00\x01 random bytes JOB DONE? no\n" * 50)
    assert not result.is_label
    assert result.codes == ["interrupted"]


@pytest.mark.parametrize(
    ("name", "returncode", "shows"),
    [
        ("si2_relax_nstep2_6.7.out", 3, "BFGS Geometry Optimization"),
        ("si2_relax_converged_6.7.out", 0, "BFGS Geometry Optimization"),
        ("si2_relax_one_scf_6.7.out", 0, "BFGS Geometry Optimization"),
        ("si2_md_2steps_6.7.out", 0, "Molecular Dynamics Calculation"),
    ],
)
def test_relaxation_and_md_are_never_labels(name: str, returncode: int, shows: str) -> None:
    result = parse_pw_output(read(name), returncode)
    assert result.failure_kind == "not_single_point"
    assert result.message == f"not a single-point SCF: output shows '{shows}'"
    assert not result.is_label and result.energy is None


def test_several_final_energies_without_other_markers_are_not_a_label() -> None:
    text = read("si2_relax_converged_6.7.out")
    markers = ("BFGS Geometry", "bfgs converged in", "Begin final coordinates", "Final energy")
    for marker in markers:
        text = text.replace(marker, "")
    result = parse_pw_output(text)
    assert result.failure_kind == "not_single_point"
    assert result.message == "not a single-point SCF: 6 final ('!') total energies"


def test_converged_scf_without_forces_and_stress_has_its_own_code() -> None:
    result = parse_pw_output(read("si2_no_forces_no_stress_6.7.out"))
    assert result.converged and not result.is_label
    assert result.codes == ["missing_forces_or_stress"]
    assert result.message == (
        "converged SCF without forces and stress (the input must set tprnfor and tstress)"
    )


def test_ase_failing_on_a_converged_output_does_not_veto_it() -> None:
    text = read("si2_converged_no_positions_spliced.out")
    with pytest.raises(KeyError):
        list(read_espresso_out(io.StringIO(text), index=slice(None)))
    result = parse_pw_output(text)
    reference = parse_pw_output(read("si2_converged_6.7.out"))
    assert result.is_label
    assert result.energy == pytest.approx(reference.energy, abs=1e-9)
    assert result.forces is not None and reference.forces is not None
    assert result.stress is not None and reference.stress is not None
    np.testing.assert_allclose(result.forces, reference.forces, atol=1e-9)
    np.testing.assert_allclose(result.stress, reference.stress, atol=1e-12)


def test_ase_failure_and_no_energy_keeps_ases_reason() -> None:
    text = read("si2_converged_no_positions_spliced.out").replace("!    total energy", "total")
    result = parse_pw_output(text)
    assert result.codes == ["unparsable"]
    assert result.message == (
        "converged, but no final total energy: ASE could not read the output (KeyError: 'symbols')"
    )


def test_direct_reader_matches_ase_on_real_outputs() -> None:
    for name in ("si2_converged_6.7.out", "si2_relax_converged_6.7.out"):
        text = read(name)
        image = list(read_espresso_out(io.StringIO(text), index=slice(None)))[-1]
        energy, forces, stress = read_numbers_directly(text)
        assert forces is not None and stress is not None
        assert energy == pytest.approx(image.get_potential_energy(), abs=1e-9)
        np.testing.assert_allclose(forces, image.get_forces(), atol=1e-9)
        np.testing.assert_allclose(stress, image.get_stress(), atol=1e-12)


def test_every_code_is_ordered_and_documented() -> None:
    assert len(PRIORITY) == len(set(PRIORITY)) == len(ErrorCode)
    assert PRIORITY[0] == ErrorCode.NOT_SINGLE_POINT and PRIORITY[-1] == ErrorCode.UNPARSABLE


def test_wall_time_in_minutes_and_hours() -> None:
    text = "     PWSCF        :   1h 2m CPU      1h 3m30.50s WALL\n   JOB DONE.\n"
    assert parse_pw_output(text).wall_time == pytest.approx(3600 + 180 + 30.5)
