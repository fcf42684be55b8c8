"""A config that cannot lie: each problem of issue 11 item 7, with the line the user sees."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlip_autopipec.config import ConfigError, config_from_dict, load_config
from mlip_autopipec.config import files as config_files
from mlip_autopipec.config.loader import MAX_CONFIG_BYTES, MAX_DEPTH
from tests.conftest import PSEUDO_DIR

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = (REPO / "examples/si/config.yaml").read_text()


def problems_of(data: Any, base_dir: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data, base_dir=base_dir)
    return caught.value.problems


def load_problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert all("\n" not in p for p in caught.value.problems)
    return caught.value.problems


def write(tmp_path: Path, text: str | bytes, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


# --- duplicate keys -------------------------------------------------------------------------


def test_a_second_dft_section_is_an_error_naming_key_and_lines(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE + "\ndft:\n  ecutwfc: 10\n")
    first = EXAMPLE.splitlines().index("dft:") + 1
    second = len(EXAMPLE.splitlines()) + 2
    assert load_problems(path) == [
        f"(yaml): duplicate key 'dft' at line {second} (first given at line {first}); "
        "the second would silently replace the first"
    ]


def test_duplicate_nested_key_and_merge_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "system:\n  elements: [Si]\n  elements: [Ge]\n")
    assert load_problems(path)[0].startswith("(yaml): duplicate key 'elements' at line 3 (first")
    # A YAML merge (<<) followed by an explicit key is an override, not a duplicate.
    merged = EXAMPLE.replace("training:\n", "training: &t\n") + "extra: {<<: *t, maxiter: 5}\n"
    assert load_problems(write(tmp_path, merged)) == ["extra: Extra inputs are not permitted"]


# --- booleans are not numbers, numbers are not booleans ---------------------------------------


@pytest.mark.parametrize(
    ("section", "change", "problem"),
    [
        ("dft", {"ecutwfc": True}, "dft.ecutwfc: expected a number, got the boolean true"),
        (
            "dft",
            {"max_retries": False},
            "dft.max_retries: expected a number, got the boolean false",
        ),
        (
            "exploration",
            {"generation": {"supercells": [[True, 1, 1]]}},
            "exploration.generation.supercells.0.0: expected a number, got the boolean true",
        ),
        (
            "training",
            {"reference_energies": {"Si": True}},
            "training.reference_energies.Si: expected a number, got the boolean true",
        ),
        ("dft", {"recovery": 1}, "dft.recovery: Input should be a valid boolean"),
        ("dft", {"ecutwfc": float("nan")}, "dft.ecutwfc: Input should be a finite number"),
    ],
)
def test_booleans_and_numbers_do_not_stand_in_for_each_other(
    config_dict: dict[str, Any], section: str, change: dict[str, Any], problem: str
) -> None:
    config_dict.setdefault(section, {}).update(change)
    assert problem in problems_of(config_dict)


def test_yaml_true_for_a_cutoff_is_reported_from_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE.replace("ecutwfc: 24.0", "ecutwfc: yes"))
    assert load_problems(path) == ["dft.ecutwfc: expected a number, got the boolean true"]


# --- pseudopotentials ---------------------------------------------------------------------------


def pseudo_config(config_dict: dict[str, Any], folder: Path, name: str) -> dict[str, Any]:
    config_dict["dft"].update(pseudo_dir=str(folder), pseudopotentials={"Si": name})
    return config_dict


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty"),
        (
            b"<html>not a pseudopotential</html>\n",
            "is not a UPF file (no PP_HEADER naming an element)",
        ),
        ((PSEUDO_DIR / "Ge.pbe-kjpaw.UPF").read_bytes(), "is a pseudopotential for Ge, not Si"),
        ((PSEUDO_DIR / "C.UPF").read_bytes(), "is a pseudopotential for C, not Si"),  # UPF v1
    ],
)
def test_pseudopotential_must_be_a_nonempty_upf_for_its_element(
    tmp_path: Path, config_dict: dict[str, Any], content: bytes, problem: str
) -> None:
    (tmp_path / "Si.UPF").write_bytes(content)
    problems = problems_of(pseudo_config(config_dict, tmp_path, "Si.UPF"))
    assert problems == [f"dft.pseudopotentials: Si: {tmp_path / 'Si.UPF'} {problem}"]


@pytest.mark.parametrize("name", ["Si.pbe-rrkj.UPF", "Si.rel-pbe-rrkj.UPF", "Si_r.upf"])
def test_real_upf_v1_and_v2_files_are_accepted(config_dict: dict[str, Any], name: str) -> None:
    config_dict["dft"]["pseudopotentials"] = {"Si": name}
    assert config_from_dict(config_dict).dft.pseudopotentials == {"Si": name}


def test_a_fifo_as_pseudopotential_does_not_block(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    os.mkfifo(tmp_path / "Si.UPF")
    problems = problems_of(pseudo_config(config_dict, tmp_path, "Si.UPF"))
    assert problems == [
        f"dft.pseudopotentials: Si: {tmp_path / 'Si.UPF'} is a FIFO (named pipe), "
        "not a pseudopotential file"
    ]


# --- filters and pacemaker options ----------------------------------------------------------------


@pytest.mark.parametrize("ratio", [1, 1.0, 0.5])
def test_max_aspect_ratio_must_exceed_one(config_dict: dict[str, Any], ratio: float) -> None:
    config_dict["exploration"] = {"generation": {"filters": {"max_aspect_ratio": ratio}}}
    assert problems_of(config_dict) == [
        "exploration.generation.filters.max_aspect_ratio: Input should be greater than 1"
    ]


@pytest.mark.parametrize(
    ("training", "problem"),
    [
        (
            {"lmax_by_orders": [0, 3, 3]},
            "training.lmax_by_orders: needs one value per order like nradmax_by_orders (6), got 3",
        ),
        (
            {"nradmax_by_orders": [10, 4]},  # the default six lmax values no longer fit
            "training.lmax_by_orders: needs one value per order like nradmax_by_orders (2), got 6",
        ),
        (
            {"embedding_ndensity": 1},  # the default four fs parameters no longer fit
            "training.embedding_fs_parameters: needs 2 x embedding_ndensity = 2 values "
            "(pacemaker's two parameters per density), got 4",
        ),
        (
            {"embedding_fs_parameters": [1.0, float("nan"), 1.0, 0.5]},
            "training.embedding_fs_parameters.1: Input should be a finite number",
        ),
        (
            {"radial_parameters": [float("nan")]},
            "training.radial_parameters.0: Input should be a finite number",
        ),
    ],
)
def test_pacemaker_lists_are_checked_against_each_other(
    config_dict: dict[str, Any], training: dict[str, Any], problem: str
) -> None:
    config_dict["training"] = training
    assert problems_of(config_dict) == [problem]


def test_matching_pacemaker_lists_are_accepted(config_dict: dict[str, Any]) -> None:
    config_dict["training"] = {
        "embedding_ndensity": 1,
        "embedding_fs_parameters": [1.0, 1.0],
        "nradmax_by_orders": [10, 4],
        "lmax_by_orders": [0, 2],
    }
    assert config_from_dict(config_dict).training.lmax_by_orders == [0, 2]


# --- work_dir and database ------------------------------------------------------------------------


def test_work_dir_under_a_file_cannot_be_created(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    (tmp_path / "afile").write_text("x")
    config_dict["workflow"] = {"work_dir": "afile/work"}
    assert problems_of(config_dict, base_dir=tmp_path) == [
        f"workflow.work_dir: cannot create the folder {tmp_path}/afile/work: "
        f"{tmp_path}/afile is a file, not a folder"
    ]
    assert not (tmp_path / "afile").is_dir()


def test_work_dir_that_is_a_file_and_database_that_is_a_folder(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    (tmp_path / "afile").write_text("x")
    (tmp_path / "db").mkdir()
    config_dict["workflow"] = {"work_dir": "afile"}
    assert problems_of(config_dict, base_dir=tmp_path) == [
        f"workflow.work_dir: {tmp_path}/afile exists and is a file, not a folder"
    ]
    config_dict["workflow"] = {"work_dir": "w", "database": "db"}
    assert problems_of(config_dict, base_dir=tmp_path) == [
        f"workflow.database: {tmp_path}/db exists and is a folder, not a file"
    ]


def test_not_writable_parent_is_reported_without_creating_anything(
    tmp_path: Path, config_dict: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As root every folder is writable to os.access, so the check is made to see a read-only one.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        config_files.os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode)
    )
    config_dict["workflow"] = {"work_dir": "locked/a/b"}
    assert problems_of(config_dict, base_dir=tmp_path) == [
        f"workflow.work_dir: cannot create the folder {locked}/a/b: {locked} is not writable"
    ]
    assert list(locked.iterdir()) == []


def test_validation_creates_nothing(tmp_path: Path, config_dict: dict[str, Any]) -> None:
    config_dict["workflow"] = {"work_dir": "new/work", "database": "other/x.db"}
    config = config_from_dict(config_dict, base_dir=tmp_path)
    assert config.workflow.database_path == tmp_path / "other/x.db"
    assert list(tmp_path.iterdir()) == []


# --- the file itself ------------------------------------------------------------------------------


def test_config_that_is_not_utf8(tmp_path: Path) -> None:
    latin1 = EXAMPLE.encode().replace("Å".encode(), "Å".encode("latin-1"))  # an old editor's save
    path = write(tmp_path, latin1)
    offset = latin1.index(b"\xc5")
    assert load_problems(path) == [
        f"(file): {path} is not UTF-8 text (byte 0xc5 at offset {offset})"
    ]


def test_a_fifo_or_a_device_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)  # nobody writes to it: opening it for reading would block forever
    assert load_problems(fifo) == [f"(file): {fifo} is a FIFO (named pipe), not a regular file"]
    assert load_problems(Path("/dev/zero")) == [
        "(file): /dev/zero is a character device, not a regular file"
    ]
    assert load_problems(tmp_path) == [f"(file): {tmp_path} is a folder, not a regular file"]


def test_too_big_a_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE + "#" * MAX_CONFIG_BYTES)
    size = path.stat().st_size
    assert load_problems(path) == [
        f"(file): {path} is {size} bytes; a config file may have at most 1 MiB"
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: " + "[" * 5000 + "]" * 5000, f"(yaml): nested more than {MAX_DEPTH} levels deep"),
        ("a: &a [*a]\n", "(yaml): recursive alias at line 1"),
        (
            "a: &a [1,1,1,1,1,1,1,1,1,1]\n"
            + "".join(
                f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n"
                for p, n in zip("abcdef", "bcdefg", strict=True)
            ),
            "(yaml): aliases expand to more than 100000 values or 24 levels",
        ),
        ("a: " + "9" * 5000, "(yaml): malformed YAML: Exceeds the limit (4300 digits)"),
        ("a: 2001-13-45", "(yaml): malformed YAML: month must be in 1..12"),
    ],
)
def test_hostile_yaml_gets_one_clear_line(tmp_path: Path, text: str, problem: str) -> None:
    problems = load_problems(write(tmp_path, text))
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_every_problem_is_one_line_even_with_newlines_in_keys_and_values(
    tmp_path: Path, config_dict: dict[str, Any]
) -> None:
    config_dict["dft"]["bad\nkey"] = 1
    config_dict["system"]["elements"] = ["Si", "X\ny"]
    config_dict["system"]["seed_structures"] = ["no\nsuch.cif"]
    path = write(tmp_path, yaml.safe_dump(config_dict), name="we\nird.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.source == f"{tmp_path}/we\\nird.yaml"
    assert "dft.bad\\nkey: Extra inputs are not permitted" in caught.value.problems
    assert "system.elements: 'X\\ny' is not a chemical symbol" in caught.value.problems
    assert (
        f"system.seed_structures: seed structure file(s) not found: {tmp_path}/no\\nsuch.cif"
        in caught.value.problems
    )
    assert str(caught.value).count("\n") == len(caught.value.problems)


def test_the_example_still_validates_from_a_copy(tmp_path: Path) -> None:
    shutil.copy(REPO / "examples/si/config.yaml", tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml").dft.ecutwfc == 24.0
