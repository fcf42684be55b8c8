"""Validation plots as PNG files (headless: Agg canvas, no pyplot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mlip_autopipec.validation.phonons import PhononResult
from mlip_autopipec.validation.properties import EOSResult

COLORS = {"potential": "tab:blue", "DFT": "tab:red"}


def _new_axes() -> tuple[Figure, Axes]:
    figure = Figure(figsize=(5, 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot(1, 1, 1)


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path


def eos_plot(curves: dict[str, EOSResult | None], path: Path) -> Path | None:
    """E(V) per atom of both sides, each relative to its own minimum, with its fitted B."""
    if not any(curves.values()):
        return None
    figure, axes = _new_axes()
    for side, eos in curves.items():
        if eos is None:
            continue
        energies = np.array(eos.energies) - eos.e0
        label = f"{side}: a0 {eos.a0:.3f} Å, B {eos.bulk_modulus:.0f} GPa"
        axes.plot(eos.volumes, energies, "o-", color=COLORS.get(side), label=label)
    axes.set_xlabel("volume (Å$^3$/atom)")
    axes.set_ylabel("E - E$_0$ (eV/atom)")
    axes.set_title("Equation of state")
    axes.legend(fontsize=7)
    return _save(figure, path)


def phonon_plot(bands: dict[str, PhononResult | None], path: Path) -> Path | None:
    """Phonon dispersion of both sides along ASE's band path of the primitive cell."""
    present = {side: result for side, result in bands.items() if result is not None}
    if not present:
        return None
    figure, axes = _new_axes()
    for side, result in present.items():
        frequencies = np.array(result.band_frequencies)
        for branch, column in enumerate(frequencies.T):
            label = side if branch == 0 else None
            axes.plot(result.band_x, column, color=COLORS.get(side), lw=1, label=label)
    reference = next(iter(present.values()))
    for x in reference.special_x:
        axes.axvline(x, color="0.8", lw=0.5)
    axes.set_xticks(reference.special_x, [_greek(n) for n in reference.special_labels])
    axes.set_ylabel("frequency (THz)")
    axes.set_title("Phonon dispersion")
    axes.legend(fontsize=7)
    return _save(figure, path)


def rdf_plot(r: list[float], g: list[float], title: str, path: Path) -> Path:
    figure, axes = _new_axes()
    axes.plot(r, g, color=COLORS["potential"])
    axes.set_xlabel("r (Å)")
    axes.set_ylabel("g(r)")
    axes.set_title(title)
    return _save(figure, path)


def _greek(name: str) -> str:
    return "Γ" if name == "G" else name
