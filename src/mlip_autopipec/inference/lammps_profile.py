"""How to run LAMMPS: the resolved executable and its extra arguments, checked once for ML-PACE.

The profile is plain, picklable data: the orchestrating process builds it once per phase
(which runs `lmp -h`), and Dask workers receive it with every MD run and only launch `lmp`.
What LAMMPS computes (the input script, the parsing of its output) lives in `lammps.py`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from mlip_autopipec.core.process import ExecutableNotFoundError, resolve_executable
from mlip_autopipec.errors import UserError

REQUIRED_PACKAGE = "ML-PACE"
HELP_TIMEOUT = 60.0


class LammpsError(UserError):
    """LAMMPS is missing, lacks ML-PACE, or a value is unsafe to write into its input."""


@dataclass(frozen=True)
class LammpsHelp:
    """What `lmp -h` says about a build."""

    version: str
    packages: frozenset[str]


def parse_help(text: str) -> LammpsHelp:
    """Version (the first line's tail) and the "Installed packages:" section of `lmp -h`."""
    lines = [line.strip() for line in text.splitlines()]
    first = next((line for line in lines if line), "")
    version = first.rsplit(" - ", 1)[-1] if " - " in first else ""
    packages: set[str] = set()
    if "Installed packages:" in lines:
        section = lines[lines.index("Installed packages:") + 1 :]
        while section and not section[0]:
            section = section[1:]
        for line in section:
            if not line:
                break
            packages.update(line.split())
    return LammpsHelp(version=version, packages=frozenset(packages))


def read_help(lmp: str) -> LammpsHelp:
    """Run `lmp -h` (the only time a session runs it) and parse what it says."""
    try:
        completed = subprocess.run(  # noqa: S603 - a resolved path, an argument list
            [lmp, "-h"], capture_output=True, text=True, timeout=HELP_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LammpsError(f"could not run {lmp} -h: {error}") from error
    return parse_help(completed.stdout)


@dataclass(frozen=True)
class LammpsProfile:
    """A LAMMPS with ML-PACE: the executable's absolute path, extra arguments and version."""

    executable: str
    extra_args: tuple[str, ...] = ()
    version: str = ""

    @classmethod
    def from_command(cls, command: Sequence[str]) -> LammpsProfile:
        """`command` is [lmp, *extra arguments]; raises LammpsError unless lmp has ML-PACE."""
        try:
            lmp = resolve_executable(command[0])
        except ExecutableNotFoundError as error:
            raise LammpsError(f"LAMMPS not found: {error}") from error
        about = read_help(lmp)
        if REQUIRED_PACKAGE not in about.packages:
            raise LammpsError(
                f"{lmp} has no {REQUIRED_PACKAGE} package (needed for pair_style "
                "pace/extrapolation); use a LAMMPS built with ML-PACE (e.g. conda-forge's "
                "lammps) or inference.engine: ase"
            )
        return cls(executable=lmp, extra_args=tuple(command[1:]), version=about.version)

    def argv(self, input_name: str, log_name: str) -> list[str]:
        return [self.executable, *self.extra_args, "-nocite", "-in", input_name, "-log", log_name]

    def describe(self) -> str:
        return f"{self.executable} (LAMMPS {self.version or 'unknown version'}, ML-PACE)"


def lammps_has_ml_pace(lmp: str) -> bool:
    """Whether the program at `lmp` is a LAMMPS with ML-PACE (False when it cannot be run)."""
    try:
        return REQUIRED_PACKAGE in read_help(lmp).packages
    except LammpsError:
        return False
