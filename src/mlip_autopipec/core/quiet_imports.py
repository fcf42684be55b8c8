"""Importing pyace without letting it configure logging for the whole process."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def pyace_logging_untouched() -> Iterator[None]:
    """Import pyace inside this: its __init__ calls logging.basicConfig, which would make every
    library log line of ours appear on the terminal. The root logger is restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def pyace_calculator(potential: str, active_set: str | None = None) -> Any:
    """A pyace.PyACECalculator on a B-basis .yaml potential, with the active set when given."""
    with pyace_logging_untouched():
        from pyace import PyACECalculator

    calculator = PyACECalculator(potential)
    if active_set is not None:
        calculator.set_active_set(active_set)
    return calculator
