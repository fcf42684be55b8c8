"""The DFT check's verdict: tolerances, which setting to blame, the one line, the document.

A failed check names, per setting to blame, a value that passes: for k-points the intermediate
spacing when it was tried and passed, else the dense reference; for the cutoff the reference.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from mlip_autopipec.config import DFTCheckConfig, DFTConfig
from mlip_autopipec.dft.check import Difference

QUANTITIES = {  # name: (what the line calls it, unit)
    "force_rms": ("forces", "meV/Å RMS"),
    "force_max": ("the largest force change", "meV/Å"),
    "energy": ("relative energies", "meV/atom"),
    "stress": ("stress", "GPa"),
}


def tolerances(check: DFTCheckConfig) -> dict[str, float]:
    return {
        "force_rms": check.force_rms,
        "force_max": check.force_max,
        "energy": check.energy,
        "stress": check.stress,
    }


def over_tolerance(difference: Difference, check: DFTCheckConfig) -> list[str]:
    """The quantities of `difference` above their tolerance, in a fixed order."""
    limits = tolerances(check)
    values = difference.quantities()
    return [q for q, v in values.items() if v is not None and v > limits[q]]


@dataclass(frozen=True)
class CheckOutcome:
    """The check's result: the differences, the verdict and its one line."""

    kpoints: Difference  # configured vs dense k-points (same cutoff)
    cutoff: Difference  # configured vs higher cutoff (same k-points)
    total: Difference  # configured vs the converged estimate
    intermediate: Difference | None  # an intermediate k-spacing vs the converged estimate
    passed: bool
    blamed: tuple[str, ...]  # "kpoints" and/or "cutoff"
    message: str


def judge(
    dft: DFTConfig,
    check: DFTCheckConfig,
    differences: tuple[Difference, Difference, Difference],
    intermediate: tuple[float, Difference] | None = None,
) -> CheckOutcome:
    """Pass when the configured settings are within tolerance of converged; otherwise one line
    with a part per setting to blame (joined by "; "), each naming a value that passes."""
    kpoints, cutoff, total = differences
    passing_kspacing = dft.kspacing * check.kspacing_factor
    if intermediate is not None and not over_tolerance(intermediate[1], check):
        passing_kspacing = intermediate[0]
    blamed = blame(over_tolerance(total, check), kpoints, cutoff)
    parts = [
        _part(setting, quantities, dft, check, total, passing_kspacing)
        for setting, quantities in blamed.items()
    ]
    message = "; ".join(parts) if parts else _passed_line(dft, check, total)
    later = intermediate[1] if intermediate is not None else None
    return CheckOutcome(kpoints, cutoff, total, later, not parts, tuple(blamed), message)


def blame(over: list[str], kpoints: Difference, cutoff: Difference) -> dict[str, list[str]]:
    """{setting: the failing quantities it contributes most to}, "kpoints" first."""
    blamed: dict[str, list[str]] = {}
    for quantity in over:
        k, c = kpoints.quantities()[quantity] or 0.0, cutoff.quantities()[quantity] or 0.0
        blamed.setdefault("kpoints" if k >= c else "cutoff", []).append(quantity)
    return {setting: blamed[setting] for setting in ("kpoints", "cutoff") if setting in blamed}


def _part(
    setting: str,
    quantities: list[str],
    dft: DFTConfig,
    check: DFTCheckConfig,
    total: Difference,
    passing_kspacing: float,
) -> str:
    """e.g. "dft.kspacing 0.6 gives forces 84 meV/Å RMS (tolerance 30) off converged, from
    the k-points; use kspacing <= 0.46"."""
    values, limits = total.quantities(), tolerances(check)
    figures = [
        f"{QUANTITIES[q][0]} {_g(values[q] or 0.0)} {QUANTITIES[q][1]} (tolerance {_g(limits[q])})"
        for q in quantities
    ]
    listed = ", ".join(figures[:-1]) + " and " + figures[-1] if len(figures) > 1 else figures[0]
    if setting == "kpoints":
        name, advice = f"dft.kspacing {_g(dft.kspacing)}", _kspacing_advice(passing_kspacing)
    else:
        name, advice = f"dft.ecutwfc {_g(dft.ecutwfc)}", _cutoff_advice(dft, check)
    source = "the k-points" if setting == "kpoints" else "the cutoff"
    return f"{name} gives {listed} off converged, mostly from {source}; use {advice}"


def _kspacing_advice(kspacing: float) -> str:
    return f"kspacing <= {math.floor(kspacing * 100 + 1e-6) / 100:g}"


def _cutoff_advice(dft: DFTConfig, check: DFTCheckConfig) -> str:
    ecutwfc = math.ceil(dft.ecutwfc * check.cutoff_factor)
    if dft.ecutrho is None:
        return f"ecutwfc >= {ecutwfc}"
    ratio = dft.ecutrho / dft.ecutwfc
    return f"ecutwfc >= {ecutwfc} (ecutrho {_g(ecutwfc * ratio)})"


def _passed_line(dft: DFTConfig, check: DFTCheckConfig, total: Difference) -> str:
    values = total.quantities()
    stress = values["stress"]
    return (
        f"dft settings pass (kspacing {_g(dft.kspacing)}, ecutwfc {_g(dft.ecutwfc)}): "
        f"forces {_g(values['force_rms'] or 0.0)} meV/Å RMS (tolerance {_g(check.force_rms)}), "
        f"relative energies {_g(values['energy'] or 0.0)} meV/atom ({_g(check.energy)})"
        + (f", stress {_g(stress)} GPa ({_g(check.stress)})" if stress is not None else "")
        + " off converged"
    )


def _g(value: float) -> str:
    """Numbers in messages: 3 significant figures, no exponent for everyday values."""
    return f"{value:.3g}" if abs(value) >= 0.01 or value == 0 else f"{value:.1g}"


def difference_document(difference: Difference) -> dict[str, Any]:
    """JSON-ready: the summary figures and the per-structure rows."""
    return {
        "effect": difference.effect,
        "compared": difference.compared,
        **{name: _rounded(value) for name, value in difference.quantities().items()},
        "structures": [
            {key: _rounded(value) for key, value in asdict(row).items()}
            for row in difference.structures
        ],
    }


def outcome_document(outcome: CheckOutcome, check: DFTCheckConfig) -> dict[str, Any]:
    differences = [outcome.kpoints, outcome.cutoff, outcome.total]
    if outcome.intermediate is not None:
        differences.append(outcome.intermediate)
    return {
        "passed": outcome.passed,
        "message": outcome.message,
        "tolerances": tolerances(check),
        "differences": [difference_document(d) for d in differences],
    }


def _rounded(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value
