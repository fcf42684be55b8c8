"""Building blocks of the configuration tree: the section base, strict scalar types, path helpers.

Numbers are numbers: a YAML boolean where a number is expected (`ecutwfc: true`) is an error,
never 1.0; NaN and infinity are refused everywhere; booleans accept only true/false.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from ase.data import chemical_symbols
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
)


def _not_a_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
    return value


Number = Annotated[float, BeforeValidator(_not_a_boolean)]  # may be NaN: check it yourself
Float = Annotated[Number, Field(allow_inf_nan=False)]
Int = Annotated[int, BeforeValidator(_not_a_boolean)]
Bool = Annotated[bool, Strict()]
PositiveFloat = Annotated[Float, Field(gt=0)]
NonNegativeFloat = Annotated[Float, Field(ge=0)]
PositiveInt = Annotated[Int, Field(gt=0)]
NonNegativeInt = Annotated[Int, Field(ge=0)]


def _plain_arguments(value: list[str]) -> list[str]:
    if any(not arg or "\x00" in arg for arg in value):
        raise ValueError("arguments must be non-empty strings")
    return value


# A program and its arguments as an argument list (never a shell string).
ArgumentList = Annotated[list[str], AfterValidator(_plain_arguments)]

# A value that is written verbatim into a pw.x or LAMMPS input must be a plain token:
# no quotes, newlines, '&', '/', '!' or spaces that could open a new namelist or command.
SAFE_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
SAFE_PATH = re.compile(r"^[A-Za-z0-9_./+-]+$")


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def resolve_path(value: Path | None, info: ValidationInfo) -> Path | None:
    """Resolve a relative path against the config file's folder (given as context)."""
    if value is None:
        return None
    if "\x00" in str(value):
        raise ValueError("a path cannot contain a NUL byte")
    try:
        value = Path(value).expanduser()
    except RuntimeError as error:  # "~unknownuser/..."
        raise ValueError(str(error)) from None
    base_dir = (info.context or {}).get("base_dir")
    if not value.is_absolute() and base_dir is not None:
        value = Path(base_dir) / value
    return value


def check_element(symbol: str) -> str:
    if symbol not in chemical_symbols[1:]:
        raise ValueError(f"{symbol!r} is not a chemical symbol")
    return symbol
