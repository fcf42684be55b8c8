"""The DFT check for people: lines for `status` and `check-dft`, a section for the report.

Read from work_dir/dft_check/result.json only (no pw.x); a result made for other dft settings
is shown as out of date.
"""

from __future__ import annotations

import html
from typing import Any

from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.dft_check import check_plan, stored_result

EFFECTS = ("kpoints", "cutoff", "total")
COLUMNS = ("force_rms", "force_max", "energy", "stress")


def current_result(campaign: Campaign) -> tuple[dict[str, Any] | None, bool]:
    """The stored check and whether it was made for the campaign's present settings."""
    document = stored_result(campaign)
    if document is None:
        return None, False
    try:
        fingerprint = check_plan(campaign.config).fingerprint
    except (OSError, ValueError):  # a structure the builder cannot make: show what is stored
        return document, False
    return document, document.get("fingerprint") == fingerprint


def status_lines(campaign: Campaign) -> list[str]:
    """One line: the verdict, or why there is none."""
    document, current = current_result(campaign)
    if document is None:
        enabled = campaign.config.dft_check.enabled
        return ["DFT check: not run yet (`run` or `check-dft` runs it)"] if enabled else []
    verdict = "passed" if document.get("passed") else "FAILED"
    stale = "" if current else " [made for other dft settings; `check-dft` redoes it]"
    return [f"DFT check {verdict}{stale}: {document.get('message', '')}"]


def table_lines(document: dict[str, Any]) -> list[str]:
    """Per structure and effect: forces, relative energy, stress (text, fixed width)."""
    settings = document.get("settings", {})
    lines = [
        "settings: "
        + "; ".join(
            f"{name} kspacing {row['kspacing']:g}, ecutwfc {row['ecutwfc']:g}, "
            f"ecutrho {row['ecutrho']:g}"
            for name, row in settings.items()
        ),
        f"{'effect':<13}{'structure':<10}{'atoms':>6}{'F RMS':>9}{'F max':>9}"
        f"{'rel. E':>9}{'stress':>9}   (meV/Å, meV/Å, meV/atom, GPa)",
    ]
    for difference in document.get("differences", []):
        for row in difference["structures"]:
            lines.append(_row(difference["effect"], row["name"], row["atoms"], row))
        lines.append(_row(difference["effect"], "all", "", difference))
    return lines


def _row(effect: str, name: str, atoms: Any, values: dict[str, Any]) -> str:
    cells = "".join(f"{_number(values.get(column)):>9}" for column in COLUMNS)
    return f"{effect:<13}{name:<10}{atoms!s:>6}{cells}"


def _number(value: Any) -> str:
    return "-" if value is None else f"{abs(float(value)):.1f}"


def dft_check_section(campaign: Campaign) -> str:
    """An HTML fragment: the verdict, the settings compared and the per-structure table."""
    document, current = current_result(campaign)
    if document is None:
        return "<h2>DFT check</h2><p>Not run yet (<code>mlip-autopipe check-dft CONFIG</code>).</p>"
    verdict = "passed" if document.get("passed") else "failed"
    stale = "" if current else " (made for other dft settings than the present ones)"
    structures = ", ".join(
        f"{s['name']} ({s['atoms']} atoms, {s['origin']})" for s in document.get("structures", [])
    )
    rows = [
        f"<tr><td>{html.escape(d['effect'])}</td><td>{html.escape(d['compared'])}</td>"
        + "".join(f"<td>{_number(d.get(column))}</td>" for column in COLUMNS)
        + "</tr>"
        for d in document.get("differences", [])
    ]
    return (
        f"<h2>DFT check</h2><p><b>{verdict}</b>{html.escape(stale)}: "
        f"{html.escape(str(document.get('message', '')))}</p>"
        f"<p>Structures: {html.escape(structures)}. Energies are compared relative to each "
        "other (the shift common to all structures drops out, as in training).</p>"
        "<table><tr><th>effect</th><th>compared</th><th>forces RMS (meV/Å)</th>"
        "<th>largest force change (meV/Å)</th><th>relative energy (meV/atom)</th>"
        "<th>stress (GPa)</th></tr>" + "\n".join(rows) + "</table>"
    )
