"""Compose the README's picture from a finished campaign's report and validation PNGs.

    .venv/bin/python scripts/report-picture.py WORK_DIR docs/example-report.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402


def newest(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(pattern))
    return found[-1] if found else None


def main(work_dir: Path, out: Path) -> None:
    panels = [
        newest(work_dir / "report", "learning_curve.png"),
        newest(work_dir / "potentials", "iter_*/force_parity.png"),
        newest(work_dir / "validation", "iter_*_eos.png"),
        newest(work_dir / "validation", "iter_*_phonons.png"),
    ]
    panels = [p for p in panels if p is not None]
    figure, axes = plt.subplots(2, 2, figsize=(12, 9))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, path in zip(axes.ravel(), panels, strict=False):
        ax.imshow(mpimg.imread(path))
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80)
    print(f"{out}: {', '.join(str(p.relative_to(work_dir)) for p in panels)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
