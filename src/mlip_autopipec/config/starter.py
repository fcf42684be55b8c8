"""A starting config for the user's material (`mlip-autopipe init DIR --elements ...`).

Everything the bundled Si example fixes by hand is chosen here from the material: the
pseudopotentials (found by element in the pseudo directory), cutoffs at least what their
headers suggest, k-point density and smearing for a metal or a semiconductor, per-element
lattice constants from ASE's reference data, alloy compositions across the range and a basis
that pyace accepts for this many elements. `run` then checks the DFT settings before any
label (the DFT check), so a starting value that is too coarse is refused, not used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlip_autopipec.config.dft import AUGMENTED_ECUTRHO_FACTOR
from mlip_autopipec.config.example import EXAMPLE_CONFIG
from mlip_autopipec.config.fields import check_element
from mlip_autopipec.config.files import upf_cutoffs, upf_element

PROTOTYPES = ("diamond", "fcc", "bcc", "hcp", "sc", "rocksalt", "zincblende")
FUNCTIONALS = ("pbe", "pbesol", "pz", "lda", "blyp", "pw91", "revpbe", "tpss")
# Elements that are not metals in their elemental solid (nonmetals and the semiconducting
# metalloids); a material of metals only gets a metal's k-points and smearing.
NON_METALS = frozenset(
    {"H", "He", "B", "C", "N", "O", "F", "Ne", "Si", "P", "S", "Cl", "Ar", "Ge", "As", "Se"}
    | {"Br", "Kr", "Sb", "Te", "I", "Xe", "At", "Rn"}
)
METAL_KSPACING = 0.15  # 1/Å including 2π: a metal's Fermi surface needs a dense mesh
SEMICONDUCTOR_KSPACING = 0.3  # the Si example's value, which passes its DFT check
MIN_ECUTWFC = 24.0  # Ry, when a header suggests less or nothing
MULTI_ELEMENT_ORDERS = ([15, 6, 4, 3, 2], [0, 3, 3, 2, 2])  # pyace's white-list: five orders


class StarterError(ValueError):
    """The material cannot be set up from what was given; the message says what to add."""


@dataclass(frozen=True)
class Material:
    elements: list[str]
    prototype: str
    pseudo_dir: Path
    pseudopotentials: dict[str, str]
    lattice_constants: dict[str, float]
    metal: bool


def material(
    elements: Sequence[str],
    prototype: str | None,
    pseudo_dir: Path,
    chosen: Mapping[str, str],
    functional: str | None,
) -> Material:
    for element in elements:
        check_element(element)
    if len(set(elements)) != len(elements):
        raise StarterError("an element is listed more than once")
    unknown = sorted(set(chosen) - set(elements))
    if unknown:
        raise StarterError(f"--pseudo for {', '.join(unknown)}, which is not in --elements")
    prototype = prototype or reference_prototype(elements[0])
    return Material(
        elements=list(elements),
        prototype=prototype,
        pseudo_dir=pseudo_dir,
        pseudopotentials=pseudopotentials(elements, pseudo_dir, chosen, functional),
        lattice_constants={el: reference_lattice_constant(el, prototype) for el in elements},
        metal=all(element not in NON_METALS for element in elements),
    )


def reference_prototype(element: str) -> str:
    from ase.data import atomic_numbers, reference_states

    state = reference_states[atomic_numbers[element]] or {}
    symmetry = str(state.get("symmetry", ""))
    if symmetry not in PROTOTYPES:
        raise StarterError(
            f"ASE knows no cubic or hcp crystal of {element} ({symmetry or 'no reference'}); "
            "give --prototype"
        )
    return symmetry


def reference_lattice_constant(element: str, prototype: str) -> float:
    """ASE's reference lattice constant (Å) of `element` in `prototype`."""
    from ase.build import bulk

    if prototype in ("rocksalt", "zincblende"):
        raise StarterError(f"{prototype}: give the compound's lattice constant in the config")
    try:
        crystal = bulk(element, prototype, cubic=prototype != "hcp")
    except (ValueError, KeyError, RuntimeError) as error:
        raise StarterError(
            f"ASE has no reference lattice constant of {element} as {prototype} ({error}); "
            f"give system.lattice_constants: {{{element}: ...}} in the written config"
        ) from None
    return round(float(crystal.cell.lengths()[0]), 4)


def pseudopotentials(
    elements: Sequence[str],
    pseudo_dir: Path,
    chosen: Mapping[str, str],
    functional: str | None,
) -> dict[str, str]:
    """One file per element: the one chosen, else the only one in `pseudo_dir` of that
    element and functional (default: PBE when every element has one, else the functional all
    share). Several candidates are refused with the choice spelt out."""
    if not pseudo_dir.is_dir():
        raise StarterError(f"pseudopotential folder {pseudo_dir} not found; give --pseudo-dir")
    found = {el: candidates(pseudo_dir, el) for el in elements if el not in chosen}
    for element, name in chosen.items():
        if not (pseudo_dir / name).is_file():
            raise StarterError(f"--pseudo {element}={name}: no such file in {pseudo_dir}")
    functional = functional or common_functional(found)
    result = dict(chosen)
    for element, files in found.items():
        matching = sorted(name for name, kind in files.items() if kind == functional)
        if len(matching) == 1:
            result[element] = matching[0]
            continue
        listed = ", ".join(sorted(files)) or "none"
        if not matching:
            raise StarterError(
                f"no {functional} pseudopotential for {element} in {pseudo_dir} (found: "
                f"{listed}); give --pseudo {element}=FILE or --functional"
            )
        raise StarterError(
            f"several {functional} pseudopotentials for {element} in {pseudo_dir}: "
            f"{', '.join(matching)}; choose one with --pseudo {element}=FILE"
        )
    return {element: result[element] for element in elements}


def candidates(pseudo_dir: Path, element: str) -> dict[str, str | None]:
    """UPF files of `element` (by their header), each with the functional its name gives."""
    result: dict[str, str | None] = {}
    for path in sorted(pseudo_dir.iterdir()):
        if not path.is_file() or path.suffix.lower() != ".upf":
            continue
        try:
            if upf_element(path) != element:
                continue
        except (OSError, ValueError):
            continue
        tokens = re.split(r"[._-]", path.name.lower())
        if "rel" in tokens:  # fully relativistic: needs noncollinear spin-orbit runs
            continue
        result[path.name] = next((t for t in tokens if t in FUNCTIONALS), None)
    return result


def common_functional(found: Mapping[str, Mapping[str, str | None]]) -> str:
    shared = set(FUNCTIONALS)
    for files in found.values():
        shared &= {kind for kind in files.values() if kind is not None}
    if "pbe" in shared or not shared:
        return "pbe"
    return sorted(shared)[0]


def starter_config(material: Material) -> str:
    """The config text: the Si example's settings, with everything material-specific chosen
    for `material`, and a header that says what was chosen and why."""
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG)
    elements = material.elements
    data["system"] = {
        "elements": elements,
        "prototype": material.prototype,
        "lattice_constants": material.lattice_constants,
        "min_distance": 1.0,
    }
    data["dft"].update(_dft_settings(material))
    generation = data["exploration"]["generation"]
    generation["alloy_compositions"] = alloy_compositions(elements)
    generation["surfaces"] = [_surface(material)]
    training = data["training"]
    if len(elements) > 1:
        training["nradmax_by_orders"], training["lmax_by_orders"] = MULTI_ELEMENT_ORDERS
        training["number_of_functions_per_element"] = 150
    data["inference"]["temperatures"] = [300, 800, 1200]
    return _header(material, data) + yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def alloy_compositions(elements: Sequence[str]) -> list[dict[str, float]]:
    """x = 0.25, 0.5, 0.75 for a binary; the equiatomic alloy for more elements."""
    if len(elements) == 1:
        return []
    if len(elements) == 2:
        first, second = elements
        return [{first: 1 - x, second: x} for x in (0.25, 0.5, 0.75)]
    share = round(1 / len(elements), 6)
    composition = {element: share for element in elements}
    composition[elements[-1]] = round(1 - share * (len(elements) - 1), 6)
    return [composition]


def _dft_settings(material: Material) -> dict[str, Any]:
    headers = [
        upf_cutoffs(material.pseudo_dir / name) for name in material.pseudopotentials.values()
    ]
    ecutwfc = max([MIN_ECUTWFC, *(h.wfc for h in headers)])
    augmented = any(h.augmented for h in headers)
    factor = AUGMENTED_ECUTRHO_FACTOR if augmented else 4
    ecutrho = max([factor * ecutwfc, *(h.rho for h in headers)])
    return {
        "pseudo_dir": str(material.pseudo_dir),
        "pseudopotentials": material.pseudopotentials,
        "ecutwfc": float(ecutwfc),
        "ecutrho": float(ecutrho),
        "kspacing": METAL_KSPACING if material.metal else SEMICONDUCTOR_KSPACING,
        "occupations": "smearing",
        "smearing": "mv",
        "degauss": 0.02,
    }


def _surface(material: Material) -> dict[str, Any]:
    """The close-packed (or the example's) surface, repeated in-plane when its 1x1 cell is a
    column narrower than a bond's environment."""
    miller = {"hcp": [0, 0, 1], "bcc": [1, 1, 0]}.get(material.prototype, [1, 1, 1])
    narrow = material.prototype in ("fcc", "bcc", "hcp", "sc")
    return {"miller": miller, "layers": 4, "vacuum": 6.0, "repeat": [2, 2] if narrow else [1, 1]}


def _header(material: Material, data: Mapping[str, Any]) -> str:
    dft = data["dft"]
    kind = "metal" if material.metal else "semiconductor or insulator"
    pseudos = ", ".join(f"{el}: {name}" for el, name in material.pseudopotentials.items())
    lines = [
        f"MLIP-AutoPipe campaign: {'-'.join(material.elements)}, {material.prototype}.",
        "Written by `mlip-autopipe init`; check it with: mlip-autopipe validate config.yaml",
        f"Pseudopotentials: {pseudos}.",
        f"Cutoffs: ecutwfc {dft['ecutwfc']:g} Ry, ecutrho {dft['ecutrho']:g} Ry (at least "
        "what the pseudopotential headers suggest).",
        f"k-points and smearing for a {kind}: kspacing {dft['kspacing']:g} 1/Å (mesh "
        "ceil(|b_i| / kspacing) of each structure's unstrained cell), Marzari-Vanderbilt "
        "smearing 0.02 Ry. `run` checks them against denser settings before any label.",
        "Lattice constants: ASE's reference values; alloys sit at Vegard's law.",
        "Everything else is the bundled Si example's; the README's configuration reference "
        "explains every key.",
    ]
    return "".join(f"# {line}\n" for line in lines)
