"""The final fit: from scratch or a long up-fit of the loop's newest potential? Side by side.

On a finished campaign (default: the bundled example, after `make run`), with its labels, its
splits and its stored DFT validation side (no new DFT):
  newest      the loop's newest fit, as it is;
  up-fit      continued from it on every label, training.final_maxiter steps at final_kappa;
  scratch     a new basis on every label, the same steps and kappa (what `run` does).
Prints each arm's validation table (errors vs DFT), its score, its test-split RMSE and the
fit's wall time. About 6 minutes on 2 cores for the example:

    .venv/bin/python benchmarks/final_fit.py [CONFIG]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mlip_autopipec.config import load_config
from mlip_autopipec.orchestration.campaign import Campaign
from mlip_autopipec.orchestration.training import (
    final_settings,
    labeled_records,
    latest_fit,
    training_structures,
)
from mlip_autopipec.orchestration.validation import validate_candidate
from mlip_autopipec.orchestration.validation_dft import dft_reference
from mlip_autopipec.training.dataset import DatasetBuilder
from mlip_autopipec.training.pacemaker import PacemakerWrapper, TrainingResult

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "si" / "config.yaml"
ROWS = [
    "a0", "B (EOS)", "C11", "C12", "C44 (relaxed ions)", "C44 (clamped ions)",
    "E_vac (unrelaxed)", "E_vac (relaxed)", "gamma_111 (unrelaxed)",
    "phonon max at G", "phonon max at X", "phonon max at L",
]  # fmt: skip


def fit_arm(
    campaign: Campaign, folder: Path, newest: TrainingResult, upfit: bool
) -> tuple[TrainingResult, float]:
    settings = final_settings(campaign.config.training).model_copy(
        update={
            "upfit": upfit,
            "upfit_max_growth": 1e9,  # the arms differ only in their start
            "upfit_fallback_ratio": 1e9,
        }
    )
    structures, _ = training_structures(campaign, labeled_records(campaign))
    builder = DatasetBuilder(newest.metrics.reference_energies)
    wrapper = PacemakerWrapper(settings, campaign.config.system.elements)
    start = time.perf_counter()
    fit = wrapper.fit(structures, builder, folder, newest if upfit else None)
    return fit, time.perf_counter() - start


def errors(campaign: Campaign, fit: TrainingResult, reference: Any) -> dict[str, Any]:
    document = validate_candidate(campaign, fit, reference)
    rows = {row["name"]: row for row in document["comparisons"]}
    failed = [c["name"] for c in document["checks"] if not c["passed"] and c["side"] != "DFT"]
    return {"rows": rows, "score": document["score"]["score"], "failed": failed}


def main() -> None:
    config = load_config(Path(sys.argv[1]) if len(sys.argv) > 1 else EXAMPLE)
    campaign = Campaign.open(config)
    newest = latest_fit(campaign)
    if newest is None:
        raise SystemExit("no finished fit: run the campaign first")
    reference = dft_reference(campaign, compute=False)
    arms: dict[str, tuple[TrainingResult, float | None]] = {"newest": (newest, None)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, upfit in (("up-fit", True), ("scratch", False)):
            print(f"fitting: {name} ...", flush=True)
            arms[name] = fit_arm(campaign, Path(tmp) / name, newest, upfit)
        results = {name: errors(campaign, fit, reference) for name, (fit, _) in arms.items()}
    training = config.training
    print(
        f"\n{newest.folder.name} and two final fits on every label "
        f"({training.final_maxiter} steps, kappa {training.final_kappa or training.kappa}); "
        "error vs DFT:"
    )
    print(f"{'':>24}" + "".join(f"{name:>12}" for name in arms))
    for row in ROWS:
        cells = []
        for result in results.values():
            value = result["rows"].get(row, {})
            error = value.get("relative_error")
            cells.append("-" if error is None else f"{100 * error:+.1f} %")
        print(f"{row:>24}" + "".join(f"{cell:>12}" for cell in cells))
    print(
        f"{'score (lower is better)':>24}"
        + "".join(f"{r['score']:>12.3f}" for r in results.values())
    )
    for label, attribute in (
        ("test F RMSE meV/Å", "rmse_forces"),
        ("test E meV/atom", "rmse_energy"),
    ):
        values = [
            getattr(fit.metrics.test, attribute) if fit.metrics.test else None
            for fit, _ in arms.values()
        ]
        print(
            f"{label:>24}" + "".join("-".rjust(12) if v is None else f"{v:>12.1f}" for v in values)
        )
    print(
        f"{'fit wall time s':>24}"
        + "".join("-".rjust(12) if s is None else f"{s:>12.0f}" for _, s in arms.values())
    )
    for name, result in results.items():
        if result["failed"]:
            print(f"{name}: FAILED checks {', '.join(result['failed'])}")


if __name__ == "__main__":
    main()
