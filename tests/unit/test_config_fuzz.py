"""Fuzz of the config loader: whatever the file holds, the user gets a config or ConfigError
whose problems are clean one-line `where: what` strings; never another exception."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlip_autopipec.config import ConfigError, MLIPConfig, config_from_dict, load_config
from tests.conftest import MINIMAL_CONFIG

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = (REPO / "examples/si/config.yaml").read_text()
LINES = EXAMPLE.splitlines()
KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[a-z_]+):(?P<value>[^#]*)")
VALUES = {i: m["value"] for i, line in enumerate(LINES) if (m := KEY_LINE.match(line))}
KEYED = list(VALUES)
LEAVES = [i for i, value in VALUES.items() if value.strip()]
SECTIONS = [i for i, line in enumerate(LINES) if re.match(r"^[a-z]+:\s*$", line)]
NUMBER = r"-?\d+(\.\d+)?(e-?\d+)?"
NUMERIC = [i for i, value in VALUES.items() if re.fullmatch(rf"\s*{NUMBER}\s*", value)]

HOSTILE = [
    "true", "false", "yes", "no", "on", "null", "~", ".nan", ".inf", "-.inf", "1e400", "0", "-1",
    "1e-8", "0x1F", "0o17", "1_000", "+.5", "9" * 60, "2001-12-14", "2001-13-45", "[]", "{}",
    "[1, 2]", "{a: 1}", "[[1, 1, 1]]", "&a 1", "*a", "!!binary aGVsbG8=", "!!float x",
    "!!python/object/apply:os.system [ls]", "'a\\nb'", '"x\\ny"', '"\\u2028"', '"\\0"', "'[/]'",
    '"=\\"q\\""', "'\\t'", "|\n  multi\n  line", "? x", "- a", ": :", "@", "`", "%", "'", '"',
]  # fmt: skip
hostile_values = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=12).map(json.dumps),  # any string, as a double-quoted YAML scalar
    st.floats(allow_nan=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)
hostile_keys = st.one_of(
    st.sampled_from(["dft", "system", "ecutwfc", "elements", "'a\\nb'", '"k\\u2028"', "<<", "?"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=8).map(json.dumps),
)


def _set_value(lines: list[str], i: int, value: str) -> None:
    match = KEY_LINE.match(lines[i]) if i < len(lines) else None
    if match:
        lines[i] = f"{match['indent']}{match['key']}: {value}"


def _set_key(lines: list[str], i: int, key: str) -> None:
    match = KEY_LINE.match(lines[i]) if i < len(lines) else None
    if match:
        lines[i] = f"{match['indent']}{key}:{match['value']}"


# Mostly edits that keep the YAML well-formed, so that most examples reach validation.
OPS = ["value"] * 5 + ["number"] * 3 + ["key", "drop"] * 2 + ["dup", "insert", "section"]


@st.composite
def mutated_example(draw: st.DrawFn) -> str:
    """The example with 1-3 edits: hostile values or keys, repeated or lost lines and sections."""
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(OPS))
        i = draw(st.sampled_from(KEYED))
        if op == "value":
            _set_value(lines, draw(st.sampled_from(LEAVES)), draw(hostile_values))
        elif op == "number":  # a boolean (or null) where a number goes
            _set_value(lines, draw(st.sampled_from(NUMERIC)), draw(st.sampled_from(HOSTILE[:6])))
        elif op == "key":
            _set_key(lines, i, draw(hostile_keys))
        elif op == "dup" and i < len(lines):
            lines.insert(i + 1, lines[i])
        elif op == "drop" and i < len(lines):
            del lines[i]
        elif op == "insert":
            lines.insert(min(i, len(lines)), draw(st.text(max_size=30)))
        elif op == "section":
            start = draw(st.sampled_from(SECTIONS))
            end = next((s for s in SECTIONS if s > start), len(LINES))
            lines.extend(LINES[start:end])
    return "\n".join(lines) + "\n"


yaml_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20)
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
section_names = st.sampled_from(
    ["system", "exploration", "dft", "training", "inference", "workflow", "compute", "other"]
)
duplicate_keys = st.tuples(section_names, st.integers(0, 3)).map(
    lambda pair: EXAMPLE + f"\n{pair[0]}:\n" + "  x: 1\n" * pair[1]
)
config_texts = st.one_of(
    st.text(max_size=200),
    mutated_example(),
    duplicate_keys,
    st.dictionaries(section_names, yaml_values, max_size=7).map(yaml.safe_dump),
)


def assert_clean(error: ConfigError) -> None:
    assert error.problems
    for problem in error.problems:
        assert isinstance(problem, str) and ": " in problem, problem
        assert all(ch.isprintable() for ch in problem), problem
    assert all(ch.isprintable() for ch in error.source)


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "config.yaml"


@settings(
    max_examples=2200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(text=config_texts)
def test_loader_gives_a_config_or_clean_one_line_problems(fuzz_file: Path, text: str) -> None:
    fuzz_file.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        config = load_config(fuzz_file)
    except ConfigError as error:
        assert_clean(error)
    else:
        assert isinstance(config, MLIPConfig)


@pytest.mark.parametrize("line", NUMERIC, ids=[LINES[i].split(":")[0].strip() for i in NUMERIC])
@pytest.mark.parametrize("boolean", ["true", "no"])
def test_a_boolean_for_any_number_of_the_example_is_an_error(
    tmp_path: Path, line: int, boolean: str
) -> None:
    lines = list(LINES)
    key = lines[line].split(":")[0].strip()
    _set_value(lines, line, boolean)
    path = tmp_path / "config.yaml"
    path.write_text("\n".join(lines))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = caught.value.problems
    assert re.match(rf"[a-z_.]*\b{key}: expected a number, got the boolean", problem), problem


@pytest.mark.parametrize("line", SECTIONS, ids=[LINES[i].rstrip(":") for i in SECTIONS])
def test_every_repeated_section_is_an_error(tmp_path: Path, line: int) -> None:
    end = next((s for s in SECTIONS if s > line), len(LINES))
    path = tmp_path / "config.yaml"
    path.write_text(EXAMPLE + "\n".join(LINES[line:end]) + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    name = LINES[line].rstrip(":")
    assert caught.value.problems == [
        f"(yaml): duplicate key '{name}' at line {len(LINES) + 1} (first given at line "
        f"{line + 1}); the second would silently replace the first"
    ]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(yaml_values, st.dictionaries(section_names, yaml_values, max_size=7)))
def test_fuzzed_input_gives_only_clean_validation_errors(data: Any) -> None:
    try:
        config_from_dict(data)
    except ConfigError as error:
        assert_clean(error)


FIELDS = [
    (section, name)
    for section, info in MLIPConfig.model_fields.items()
    for name in getattr(info.annotation, "model_fields", {})
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FIELDS), yaml_values)
def test_valid_config_with_one_field_fuzzed(field: tuple[str, str], value: Any) -> None:
    data = copy.deepcopy(MINIMAL_CONFIG)
    section, name = field
    data.setdefault(section, {})[name] = value
    try:
        config_from_dict(data)
    except ConfigError as error:
        assert_clean(error)
        assert any(p.startswith(section) for p in error.problems), error.problems
