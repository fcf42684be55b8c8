"""File checks done at validate time: bounded non-blocking reads, writable places, UPF headers.

Nothing here creates a file or a folder, and nothing can block: the kind of a path is checked
with stat before it is opened, and files are opened non-blocking and read up to a bound.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sqlite3
import stat
import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

UPF_HEAD_BYTES = 512 * 1024  # the header sits after PP_INFO, well within this

_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}
_UPF2_HEADER = re.compile(r"<PP_HEADER\b([^>]*)>", re.IGNORECASE)
_UPF2_ELEMENT = re.compile(r"\belement\s*=\s*[\"']\s*([A-Za-z]{1,3})\s*[\"']", re.IGNORECASE)
_UPF1_HEADER = re.compile(r"<PP_HEADER>(.*?)</PP_HEADER>", re.IGNORECASE | re.DOTALL)
_UPF1_ELEMENT = re.compile(r"^\s*([A-Za-z]{1,3})\s+Element\b", re.MULTILINE)


def not_a_regular_file(path: Path) -> str | None:
    """What `path` is when it is not a regular file ('a FIFO', ...); None for a regular file.

    Raises OSError when it cannot be inspected (missing, permission denied).
    """
    mode = os.stat(path).st_mode
    if stat.S_ISREG(mode):
        return None
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def read_bounded(path: Path, limit: int) -> bytes:
    """At most `limit` bytes from the start of a regular file, never blocking.

    Raises ValueError naming the kind of a path that is not a regular file, OSError otherwise.
    """
    kind = not_a_regular_file(path)
    if kind is not None:
        raise ValueError(f"{path} is {kind}, not a regular file")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    descriptor = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):  # swapped since the stat above
            raise ValueError(f"{path} is not a regular file")
        chunks: list[bytes] = []
        remaining = limit
        while remaining > 0:
            chunk = os.read(descriptor, min(remaining, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def upf_element(path: Path) -> str | None:
    """The element named in a UPF file's header (v2 `element="Si"` or the v1 `Element` line)."""
    text = read_bounded(path, UPF_HEAD_BYTES).decode("latin-1")
    header = _UPF2_HEADER.search(text)
    if header is not None and (match := _UPF2_ELEMENT.search(header.group(1))) is not None:
        return match.group(1).capitalize()
    block = _UPF1_HEADER.search(text)
    if block is not None and (match := _UPF1_ELEMENT.search(block.group(1))) is not None:
        return match.group(1).capitalize()
    return None


_SUGGESTED = {
    "wfc": re.compile(r"Suggested minimum cutoff for wavefunctions:\s*([0-9.EeDd+-]+)"),
    "rho": re.compile(r"Suggested minimum cutoff for charge density:\s*([0-9.EeDd+-]+)"),
}
_UPF2_ATTRIBUTE = r"\b{}\s*=\s*[\"']\s*([^\"']*?)\s*[\"']"
_UPF1_TYPE = re.compile(r"^\s*(US|PAW|NC|SL)\b", re.MULTILINE)


@dataclass(frozen=True)
class UpfCutoffs:
    """What a UPF file's header suggests: minimum cutoffs (Ry, 0 when it gives none) and
    whether it is ultrasoft or PAW (which need ecutrho well above 4 x ecutwfc)."""

    wfc: float = 0.0
    rho: float = 0.0
    augmented: bool = False


def upf_cutoffs(path: Path) -> UpfCutoffs:
    """The suggested cutoffs and kind of a UPF file (v1 or v2); raises OSError/ValueError."""
    text = read_bounded(path, UPF_HEAD_BYTES).decode("latin-1")
    header = _UPF2_HEADER.search(text)
    if header is not None and header.group(1).strip():  # v1 has a bare <PP_HEADER>
        attributes = header.group(1)
        wfc, rho = _attribute(attributes, "wfc_cutoff"), _attribute(attributes, "rho_cutoff")
        kind = _attribute_text(attributes, "pseudo_type").upper()
        flags = _attribute_text(attributes, "is_ultrasoft") + _attribute_text(attributes, "is_paw")
        augmented = kind in ("US", "USPP", "PAW") or "T" in flags.upper()
        return UpfCutoffs(wfc, rho, augmented)
    block = _UPF1_HEADER.search(text)
    kind_line = _UPF1_TYPE.search(block.group(1)) if block is not None else None
    augmented = kind_line is not None and kind_line.group(1) != "NC"
    return UpfCutoffs(_suggested(text, "wfc"), _suggested(text, "rho"), augmented)


def _attribute_text(attributes: str, name: str) -> str:
    match = re.search(_UPF2_ATTRIBUTE.format(name), attributes, re.IGNORECASE)
    return match.group(1) if match else ""


def _attribute(attributes: str, name: str) -> float:
    return _number(_attribute_text(attributes, name))


def _suggested(text: str, which: str) -> float:
    match = _SUGGESTED[which].search(text)
    return _number(match.group(1)) if match else 0.0


def _number(text: str) -> float:
    try:
        value = float(text.replace("D", "E").replace("d", "e"))
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0


def pseudopotential_problem(path: Path, symbol: str) -> str | None:
    """Why `path` cannot serve as the pseudopotential of `symbol`, or None when it can."""
    try:
        kind = not_a_regular_file(path)
    except FileNotFoundError:
        return f"{path} not found"
    except OSError as error:
        return f"{path}: cannot read it ({error.strerror})"
    if kind is not None:
        return f"{path} is {kind}, not a pseudopotential file"
    try:
        if path.stat().st_size == 0:
            return f"{path} is empty"
        element = upf_element(path)
    except (OSError, ValueError) as error:
        return f"{path}: cannot read it ({getattr(error, 'strerror', None) or error})"
    if element is None:
        return f"{path} is not a UPF file (no PP_HEADER naming an element)"
    if element != symbol:
        return f"{path} is a pseudopotential for {element}, not {symbol}"
    return None


SQLITE_MAGIC = b"SQLite format 3\x00"


class UnreadableInput(ValueError):
    """An input file that is not read at all: a FIFO or device, or a foreign SQLite file."""


def read_frames(path: Path) -> list[Any]:
    """Every structure ASE reads from `path`, with no side effect on it: a FIFO, a device or a
    link to one is refused before it is opened (a read could block forever), and an SQLite
    file is read from a private copy, only when it is an ase.db database (ASE would otherwise
    add its tables to it). Raises UnreadableInput naming the problem, OSError when unreadable,
    and whatever ASE raises for a file it cannot parse."""
    kind = not_a_regular_file(path)  # follows links: a link to /dev/zero is a device
    if kind is not None:
        raise UnreadableInput(f"{path} is {kind}, not a file of structures")
    import ase.io

    if read_bounded(path, len(SQLITE_MAGIC)) == SQLITE_MAGIC:
        if "systems" not in sqlite_tables(path):
            raise UnreadableInput(f"{path} is an SQLite file but not an ase.db database")
        with tempfile.TemporaryDirectory(prefix="mlip-autopipe-read-") as folder:
            copy = Path(folder) / "copy.db"
            shutil.copyfile(path, copy)
            frames = ase.io.read(copy, index=":", format="db")
    else:
        frames = ase.io.read(path, index=":")
    return frames if isinstance(frames, list) else [frames]


def sqlite_tables(path: Path) -> set[str]:
    """The table names of an SQLite file, read without writing anything (immutable)."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro&immutable=1"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as connection:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            return {str(row[0]) for row in rows}
    except sqlite3.Error as error:
        raise UnreadableInput(f"{path} is not a readable SQLite database ({error})") from None


def _nearest_existing(path: Path) -> Path:
    current = path
    while not os.path.lexists(current) and current != current.parent:
        current = current.parent
    return current


def _writable(path: Path, folder: bool) -> bool:
    return os.access(path, os.W_OK | os.X_OK if folder else os.W_OK)


def creatable_problem(path: Path, want_folder: bool) -> str | None:
    """Why `path` (a folder or a file) cannot be created or written, or None when it can.

    Checks without creating anything: an existing path must be of the right kind and
    writable; otherwise its nearest existing parent must be a writable folder.
    """
    what = "folder" if want_folder else "file"
    if os.path.lexists(path):
        kind = _kind_of(path) or "a file"
        if want_folder and kind != "a folder":
            return f"{path} exists and is {kind}, not a folder"
        if not want_folder and kind != "a file":
            return f"{path} exists and is {kind}, not a file"
        if not _writable(path, want_folder):
            return f"{path} is not writable"
        return None
    parent = _nearest_existing(path.parent)
    kind = _kind_of(parent) or "a file"
    if kind != "a folder":
        return f"cannot create the {what} {path}: {parent} is {kind}, not a folder"
    if not _writable(parent, folder=True):
        return f"cannot create the {what} {path}: {parent} is not writable"
    return None


def _kind_of(path: Path) -> str | None:
    try:
        return not_a_regular_file(path)
    except OSError as error:
        return f"unreachable ({error.strerror})"
