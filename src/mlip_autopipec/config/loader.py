"""Read a YAML file into an MLIPConfig; every problem becomes one `field.path: message` line."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mlip_autopipec.config.models import MLIPConfig


class ConfigError(Exception):
    """The configuration is invalid; `problems` holds one `field.path: message` per issue."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source} is invalid:\n" + "\n".join(f"  {p}" for p in problems))


def _format_location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def format_validation_error(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{_format_location(item['loc'])}: {message}")
    return problems


def config_from_dict(data: Any, base_dir: Path | None = None, source: str = "config") -> MLIPConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(
            [f"(top level): expected a mapping of sections, got {type(data).__name__}"], source
        )
    # Absent sections are validated from {} so their default paths resolve against base_dir.
    sections = {name: {} for name in MLIPConfig.model_fields} | dict(data)
    try:
        return MLIPConfig.model_validate(sections, context={"base_dir": base_dir})
    except ValidationError as error:
        raise ConfigError(format_validation_error(error), source) from None


def load_config(path: str | Path) -> MLIPConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError([f"(file): cannot read {path}: {error.strerror}"], str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError([f"(yaml): malformed YAML{line}: {problem}"], str(path)) from None
    return config_from_dict(data, base_dir=path.resolve().parent, source=str(path))
