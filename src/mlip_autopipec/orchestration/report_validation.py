"""The report's "Validation" section, read from work_dir/validation/iter_NNN.json (no compute)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.validation import newest_validation
from mlip_autopipec.orchestration.validation_dft import VALIDATION_DATABASE, VALIDATION_FOLDER
from mlip_autopipec.validation.evaluate import row_label
from mlip_autopipec.validation.score import error_text


def validation_section(campaign: Campaign) -> str:
    """An HTML fragment: potential vs DFT table, DFT cost, MD check and the plots."""
    document = newest_validation(campaign)
    if document is None:
        return (
            "<h2>Validation</h2><p>No validation yet "
            "(<code>mlip-autopipe validate-potential CONFIG</code>).</p>"
        )
    folder = Path(document["folder"])
    parts = [
        "<h2>Validation</h2>",
        f"<p>Potential {html.escape(fit_name(document))}: "
        f"{html.escape(str(document['potential']))}. Each side at its own equilibrium: a0 "
        "from its own E-V scan, everything else at that a0 (C44 with relaxed ions, clamped "
        "beside it; surfaces unrelaxed).</p>",
        _checks(document.get("checks", [])),
        _table(document["comparisons"]),
        _notes(document),
        _cost(document["dft_cost"]),
        _md(document.get("md")),
        *(_md(run) for run in document.get("md_other_compositions") or []),
    ]
    parts.extend(_figure(folder / name) for name in document.get("plots", []))
    return "\n".join(parts)


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "<table><tr><th>property</th><th>unit</th><th>potential</th><th>DFT</th><th>error</th></tr>"
    ]
    for row in rows:
        share = html.escape(error_text(row) or "-")
        lines.append(
            f"<tr><td>{html.escape(row_label(row))}</td><td>{html.escape(row['unit'])}</td>"
            f"<td>{_number(row['potential'], 4)}</td><td>{_number(row['dft'], 4)}</td>"
            f"<td>{share}</td></tr>"
        )
    return "\n".join(lines) + "</table>"


def failed_check_lines(document: dict[str, Any]) -> list[str]:
    """One line per failed check: never averaged into the table, always shown."""
    return [
        f"FAILED {check['side']}: {check['name']}: {check['detail']}"
        for check in document.get("checks", [])
        if not check["passed"]
    ]


def dft_failure_line(document: dict[str, Any]) -> str | None:
    """Why a DFT column shows "-": some of the validation's pw.x runs failed (a timeout on a
    loaded machine, an SCF that never converged); None when none did."""
    cost = document.get("dft_cost") or {}
    if not cost.get("failed"):
        return None
    return (
        f"DFT side: {cost['failed']} of {cost['structures']} pw.x calculations failed; the "
        f"properties that need them show - (their reasons: {VALIDATION_FOLDER}/"
        f"{VALIDATION_DATABASE}, rows with status failed)"
    )


def _checks(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return ""
    failed = failed_check_lines({"checks": checks})
    lines = "".join(f'<p style="color:#c00"><b>{html.escape(line)}</b></p>' for line in failed)
    passed = sum(check["passed"] for check in checks)
    return lines + f"<p>Checks: {passed} of {len(checks)} passed.</p>"


def _notes(document: dict[str, Any]) -> str:
    notes = []
    for material in [document, *document.get("materials", [])]:
        name = material.get("composition")
        for side in ("potential", "DFT"):
            for note in material.get(f"{side.lower()}_side", {}).get("notes", []):
                notes.append(f"{side}: {name}: {note}" if name else f"{side}: {note}")
    items = "".join(f"<li>{html.escape(note)}</li>" for note in notes)
    return f"<ul>{items}</ul>" if notes else ""


def _cost(cost: dict[str, Any]) -> str:
    return (
        f"<p>DFT cost: {cost['structures']} structures ({cost['labeled']} labeled, "
        f"{cost['failed']} failed), {cost['wall_time']:.0f} s of pw.x; "
        f"{cost['new_calculations']} pw.x labels run by the last validation.</p>"
    )


def _md(md: dict[str, Any] | None) -> str:
    if not md:
        return ""
    verdict = "stays inside its domain" if md["in_domain"] else "leaves its domain"
    peaks = ", ".join(f"{r:.2f}" for r in md.get("rdf_peaks", [])) or "-"
    name = f"{html.escape(md['composition'])}, " if md.get("composition") else ""
    return (
        f"<p>MD check ({name}{md['atoms']} atoms, {md['temperature']:g} K, {md['steps_done']} of "
        f"{md['steps']} steps): max gamma {_number(md['max_gamma'])} (gamma_upper "
        f"{md['gamma_upper']:g}): the potential {verdict}. g(r) peaks at {peaks} Å.</p>"
    )


def _figure(path: Path) -> str:
    if not path.is_file():
        return ""
    encoded = base64.b64encode(path.read_bytes()).decode()
    caption = html.escape(path.name)
    return (
        f'<figure><img src="data:image/png;base64,{encoded}"><figcaption>{caption}'
        "</figcaption></figure>"
    )


def fit_name(document: dict[str, Any]) -> str:
    """Which fit a validation document is of: the final fit (final_NNN) or
    "iteration 2" (documents written before final fits name only the iteration)."""
    name, iteration = document.get("fit"), int(document["iteration"])
    if isinstance(name, str) and name.startswith("final_"):
        return f"the final fit ({name}, every label up to iteration {iteration})"
    return f"iteration {iteration}"


def validation_lines(campaign: Campaign) -> list[str]:
    """Plain lines for `status`: potential vs DFT per property of the newest validation."""
    document = newest_validation(campaign)
    if document is None:
        return []
    lines = [f"validation of {fit_name(document)} (potential vs DFT):"]
    lines += [f"  {line}" for line in failed_check_lines(document)]
    for row in document["comparisons"]:
        error = error_text(row)
        share = f" ({error})" if error else ""
        lines.append(
            f"  {row_label(row)}: {_number(row['potential'], 4)} vs {_number(row['dft'], 4)} "
            f"{row['unit']}{share}"
        )
    failure = dft_failure_line(document)
    if failure:
        lines.append(f"  {failure}")
    score = document.get("score")
    if score:
        lines.append(
            f"  score {score['score']:.3f} ({score['failed_checks']} failed checks, "
            f"{len(score.get('missed_targets', []))} targets missed, mean error "
            f"{score['mean_error_over_target']:.2f} x target; lower is better)"
        )
    return lines + md_lines(document)


def md_lines(document: dict[str, Any]) -> list[str]:
    """The validation MD of the main crystal, then of each other composition."""
    md = document.get("md")
    lines = []
    for run in ([md] if md else []) + (document.get("md_other_compositions") or []):
        name = f" {run['composition']}" if run is not md else ""
        lines.append(
            f"  MD{name} {run['temperature']:g} K: {run['steps_done']} of {run['steps']} steps, "
            f"max gamma {_number(run['max_gamma'])}"
            + ("" if run["in_domain"] else " (left its domain)")
        )
    return lines
