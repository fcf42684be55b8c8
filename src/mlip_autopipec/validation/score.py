"""One number per candidate potential, for choosing which one to hand over.

score = (number of failed checks of the potential side, counting a property DFT has but the
potential could not give as one) + m / (1 + m), where m is the mean over the table's rows of
|error| / target: the relative error over the row's target below, or for vacancy formation
energies the absolute error over 0.2 eV. Lower is better. m / (1 + m) lies in [0, 1), so any
failed check ranks a candidate below every candidate that passes all of them, and among equal
numbers of failed checks the smaller mean error wins. A row without both values, or comparing
two zeros, does not count. The targets are the issue's "done when" tolerances: a0 0.5 %,
B 10 %, elastic constants 15 %, vacancy 0.2 eV, surface energies 10 %, phonons 5 %.
"""

from __future__ import annotations

from typing import Any

from mlip_autopipec.validation.checks import Check

RELATIVE_TARGETS = {
    "a0": 0.005,
    "B (EOS)": 0.10,
    "B (from C11, C12)": 0.10,
    "C11": 0.15,
    "C12": 0.15,
    "C44 (relaxed ions)": 0.15,
    "C44 (clamped ions)": 0.15,
    "gamma_": 0.10,
    "phonon ": 0.05,
}
ABSOLUTE_TARGETS = {"E_vac": 0.2}  # eV


def row_error(row: dict[str, Any]) -> float | None:
    """|error| in units of the row's target; None when the row does not count."""
    name = row["name"]
    if row.get("potential") is None or row.get("dft") is None:
        return None
    for prefix, target in ABSOLUTE_TARGETS.items():
        if name.startswith(prefix):
            return abs(row["potential"] - row["dft"]) / target
    if row.get("relative_error") is None:
        return None
    for prefix, target in RELATIVE_TARGETS.items():
        if name == prefix or name.startswith(prefix) and prefix.endswith(("_", " ")):
            return abs(row["relative_error"]) / target
    return abs(row["relative_error"]) / 0.10


def candidate_score(rows: list[dict[str, Any]], checks: list[Check]) -> dict[str, Any]:
    """The score of one potential from its table rows (`Comparison.as_dict`) and checks."""
    failed = [c for c in checks if c.side == "potential" and not c.passed]
    missing = [r["name"] for r in rows if r.get("dft") is not None and r.get("potential") is None]
    errors = [e for e in (row_error(row) for row in rows) if e is not None]
    mean = sum(errors) / len(errors) if errors else 0.0
    failures = len(failed) + len(missing)
    return {
        "score": failures + mean / (1 + mean),
        "failed_checks": failures,
        "mean_error_over_target": mean,
        "failed": [c.name for c in failed] + [f"{name} missing" for name in missing],
    }
