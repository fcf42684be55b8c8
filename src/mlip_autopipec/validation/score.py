"""One number per candidate potential, for choosing which one to hand over.

Three tiers, lower is better: failed checks first, then targets missed, then the mean error.

    score = failures + (missed + m / (1 + m)) / (rows + 1)

- failures: failed checks of the potential side, counting a property DFT has but the
  potential could not give as one;
- missed: table rows whose error is above their target;
- m: the mean over the rows of |error| / target (relative error over the row's relative
  target, or absolute error over an absolute target);
- rows: the rows that count (both values present, not two zeros, not an unscored row).

The second term lies in [0, 1), so any failed check ranks a candidate below every candidate
that passes all of them; among equal failures, fewer missed targets win (a potential that
meets every target beats one with a smaller mean that misses two); then the smaller mean.
The targets are the issues' "done when" tolerances: a0 0.5 %, B 10 %, elastic constants
15 %, vacancy 0.2 eV, surface energies 10 %, highest phonon frequencies 5 %; the lowest
phonon frequencies at a zone-boundary point 20 % (not an issue's target: they weigh, but
less); for alloys a0 1 % and mixing energies 15 meV/atom.
"""

from __future__ import annotations

from typing import Any

from mlip_autopipec.validation.checks import Check
from mlip_autopipec.validation.evaluate import row_label

RELATIVE_TARGETS = {
    "a0": 0.005,
    "a0 (alloy)": 0.01,
    "B (EOS)": 0.10,
    "B (from C11, C12)": 0.10,
    "C11": 0.15,
    "C12": 0.15,
    "C44 (relaxed ions)": 0.15,
    "C44 (clamped ions)": 0.15,
    "gamma_": 0.10,
    "phonon min ": 0.20,
    "phonon ": 0.05,
}
ABSOLUTE_TARGETS = {"E_vac": 0.2, "E_mix": 15.0}  # eV, meV/atom: in the row's unit
NOT_SCORED = ("Vegard deviation",)  # shown beside the alloy a0, which is scored
# Read as potential - DFT in the row's unit: an absolute target, or a small difference itself
# (a Vegard deviation of -0.05 against -0.006 Å is no "-758 %").
DIFFERENCE_ROWS = (*ABSOLUTE_TARGETS, *NOT_SCORED)


def error_text(row: dict[str, Any]) -> str:
    """The row's error as shown to the user: potential - DFT with the unit for E_vac, E_mix
    and the Vegard deviation, else the relative error in %; "" when a side is missing."""
    potential, dft = row.get("potential"), row.get("dft")
    if potential is None or dft is None:
        return ""
    if str(row["name"]).startswith(DIFFERENCE_ROWS):
        return f"{potential - dft:+.3g} {row['unit']}"
    error = row.get("relative_error")
    return "" if error is None else f"{100 * error:+.1f} %"


def row_error(row: dict[str, Any]) -> float | None:
    """|error| in units of the row's target; None when the row does not count."""
    name = row["name"]
    if row.get("potential") is None or row.get("dft") is None or name in NOT_SCORED:
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
    errors = {row_label(r): e for r in rows if (e := row_error(r)) is not None}
    mean = sum(errors.values()) / len(errors) if errors else 0.0
    missed = sorted(name for name, error in errors.items() if error > 1)
    failures = len(failed) + len(missing)
    return {
        "score": failures + (len(missed) + mean / (1 + mean)) / (len(errors) + 1),
        "failed_checks": failures,
        "missed_targets": missed,
        "mean_error_over_target": mean,
        "failed": [c.name for c in failed] + [f"{name} missing" for name in missing],
    }


def with_failed_check(score: dict[str, Any], name: str) -> None:
    """Count one more failed check into a `candidate_score` result, as it counts its own."""
    score["score"] += 1
    score["failed_checks"] += 1
    score["failed"].append(name)
