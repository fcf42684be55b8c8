"""Read a YAML file into an MLIPConfig; every problem becomes one `field.path: message` line.

The file is read safely (a regular file, at most MAX_CONFIG_BYTES, UTF-8, never blocking) and
parsed strictly: a key given twice in one mapping, nesting deeper than MAX_DEPTH and aliases
that expand past MAX_NODES are errors rather than silent surprises.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mlip_autopipec.config.files import read_bounded
from mlip_autopipec.config.models import MLIPConfig

MAX_CONFIG_BYTES = 1 << 20
MAX_DEPTH = 24  # the config itself needs 6
MAX_NODES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


def one_line(text: str) -> str:
    """Line breaks and other control characters become visible escapes (`\\n`, `\\x00`)."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class ConfigError(Exception):
    """The configuration is invalid; `problems` holds one `field.path: message` per issue.

    Every problem is a single printable line, even when a key or a value held a line break.
    """

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = [one_line(p) for p in problems]
        self.source = one_line(source)
        super().__init__(
            f"{self.source} is invalid:\n" + "\n".join(f"  {p}" for p in self.problems)
        )


class _YamlProblem(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _format_location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def format_validation_error(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{_format_location(item['loc'])}: {message}")
    return problems


def config_from_dict(
    data: Any, base_dir: Path | None = None, source: str = "config", read_only: bool = False
) -> MLIPConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(
            [f"(top level): expected a mapping of sections, got {type(data).__name__}"], source
        )
    # Absent sections are validated from {} so their default paths resolve against base_dir.
    sections = {name: {} for name in MLIPConfig.model_fields} | dict(data)
    try:
        context = {"base_dir": base_dir, "read_only": read_only}
        return MLIPConfig.model_validate(sections, context=context)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error), source) from None
    except RecursionError:
        raise ConfigError(["(top level): values are nested too deeply"], source) from None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and runaway nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise _YamlProblem(f"nested more than {MAX_DEPTH} levels deep at line {line}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            _refuse_duplicate_keys(self, node)
        return super().construct_mapping(node, deep=deep)


def _refuse_duplicate_keys(loader: _StrictLoader, node: yaml.MappingNode) -> None:
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            seen = first_line.get(key)
        except TypeError:  # an unhashable key: the base class reports it
            continue
        line = key_node.start_mark.line + 1
        if seen is not None:
            raise _YamlProblem(
                f"duplicate key {str(key)!r} at line {line} (first given at line {seen}); "
                "the second would silently replace the first"
            )
        first_line[key] = line


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse recursive aliases and aliases that expand past MAX_NODES or MAX_DEPTH."""
    measured: dict[int, tuple[int, int]] = {}  # id -> (expanded size, depth)
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            on_path.discard(id(node))
            kids = [measured[id(kid)] for kid in _children(node)]
            size = min(1 + sum(k[0] for k in kids), MAX_NODES + 1)
            depth = 1 + max((k[1] for k in kids), default=0)
            if size > MAX_NODES or depth > MAX_DEPTH:
                raise _YamlProblem(
                    f"aliases expand to more than {MAX_NODES} values or {MAX_DEPTH} levels"
                )
            measured[id(node)] = (size, depth)
        elif id(node) in on_path:
            raise _YamlProblem(f"recursive alias at line {node.start_mark.line + 1}")
        elif id(node) not in measured:
            on_path.add(id(node))
            stack.append((node, True))
            stack.extend((kid, False) for kid in _children(node))


def parse_yaml(text: str) -> Any:
    """The YAML document in `text`; _YamlProblem or yaml.YAMLError describe what is wrong."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _yaml_problem(error: Exception) -> str:
    if isinstance(error, _YamlProblem):
        return f"(yaml): {error.message}"
    where = getattr(error, "problem_mark", None)
    line = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
    problem = getattr(error, "problem", None) or str(error)
    return f"(yaml): malformed YAML{line}: {problem}"


def read_config_text(path: Path) -> str:
    """The text of a config file: a regular UTF-8 file of bounded size, read without blocking."""
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ValueError(f"{path} is {size} bytes; a config file may have at most 1 MiB")
        data = read_bounded(path, MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise ConfigError([f"(file): cannot read {path}: {error.strerror}"], str(path)) from None
    except ValueError as error:
        raise ConfigError([f"(file): {error}"], str(path)) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([f"(file): {path} has more than 1 MiB"], str(path))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(
            [
                f"(file): {path} is not UTF-8 text (byte {data[error.start]:#04x} at offset "
                f"{error.start})"
            ],
            str(path),
        ) from None


def load_config(path: str | Path, read_only: bool = False) -> MLIPConfig:
    """The checked config; with `read_only`, work_dir and database need not be writable (for
    commands that only read a campaign)."""
    path = Path(path)
    text = read_config_text(path)
    try:
        data = parse_yaml(text)
    except (_YamlProblem, yaml.YAMLError, ValueError, OverflowError, RecursionError) as error:
        raise ConfigError([_yaml_problem(error)], str(path)) from None
    return config_from_dict(data, path.resolve().parent, str(path), read_only)
