"""All structures and their state live in one SQLite ase.db; this is the only module opening it."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import ase.db
import numpy as np
from ase import Atoms
from ase.data import chemical_symbols
from ase.db.sqlite import SQLite3Database
from ase.neighborlist import neighbor_list

from mlip_autopipec.core import keys
from mlip_autopipec.core.label import Label, LabelError
from mlip_autopipec.errors import UserError


class StructureError(UserError, ValueError):
    """A structure is not fit to be stored; the message names the problem."""


class StatusTransitionError(ValueError):
    """A row was asked to move to a status its current status may not lead to."""


class DatabaseError(UserError):
    """The database file cannot be used: corrupt, not an ase.db, or not writable."""


@dataclass(frozen=True)
class StructureRecord:
    id: int
    atoms: Atoms
    status: str
    iteration: int
    origin: str
    key_value_pairs: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


def validate_structure(
    atoms: Atoms, min_distance: float, allowed_elements: Sequence[str] | None = None
) -> None:
    """Raise StructureError naming the first problem that makes `atoms` unfit for the database."""
    if len(atoms) == 0:
        raise StructureError("structure has no atoms")
    if not np.all(np.isfinite(atoms.positions)):
        raise StructureError("structure has non-finite positions")
    if not np.all(np.isfinite(atoms.cell.array)):
        raise StructureError("structure has a non-finite cell")
    _check_cell(atoms)
    _check_elements(atoms, allowed_elements)
    _check_distances(atoms, min_distance)


def _check_cell(atoms: Atoms) -> None:
    periodic = atoms.cell.array[atoms.pbc]
    if len(periodic) == 0:
        return
    gram = periodic @ periodic.T
    scale = max(float(np.max(np.abs(periodic))), 1e-12) ** (2 * len(periodic))
    if np.any(np.linalg.norm(periodic, axis=1) < 1e-6) or np.linalg.det(gram) / scale < 1e-10:
        raise StructureError("cell is degenerate along its periodic directions")


def _check_elements(atoms: Atoms, allowed_elements: Sequence[str] | None) -> None:
    numbers = atoms.numbers
    if np.any(numbers < 1) or np.any(numbers >= len(chemical_symbols)):
        raise StructureError("structure contains an unknown element (atomic number 0 or too large)")
    if allowed_elements is not None:
        unexpected = sorted(set(atoms.get_chemical_symbols()) - set(allowed_elements))
        if unexpected:
            raise StructureError(
                f"element(s) {', '.join(unexpected)} not in the configured elements "
                f"{', '.join(allowed_elements)}"
            )


def _check_distances(atoms: Atoms, min_distance: float) -> None:
    if len(atoms) == 1 and not atoms.pbc.any():
        return
    i, j, d = neighbor_list("ijd", atoms, min_distance, self_interaction=False)
    if len(d):
        k = int(np.argmin(d))
        raise StructureError(
            f"atoms {i[k]} and {j[k]} are {d[k]:.3f} Å apart, closer than {min_distance} Å"
        )


def structure_hash(atoms: Atoms) -> str:
    """A fingerprint of numbers, cell and positions (rounded), to refuse exact duplicates."""
    digest = hashlib.sha1()
    digest.update(atoms.numbers.astype(np.int64).tobytes())
    digest.update(np.round(atoms.cell.array, 4).astype(np.float64).tobytes())
    digest.update(np.round(atoms.positions, 4).astype(np.float64).tobytes())
    digest.update(atoms.pbc.astype(np.int8).tobytes())
    return _as_text(digest.hexdigest()[:20])


def _as_text(hexdigest: str) -> str:
    """ase.db refuses a string value that reads as a number, and about 1 in 4000 hex digests
    does ("26908e57447369877175", "04930778..."); those get a non-hex first character, which
    cannot collide with any other digest. Every other digest is unchanged, as stored before."""
    try:
        float(hexdigest)
    except ValueError:
        return hexdigest
    return "x" + hexdigest[1:]


def check_transition(current: str, new: str) -> None:
    if new not in keys.STATUSES:
        raise StatusTransitionError(f"unknown status {new!r}")
    if new not in keys.ALLOWED_TRANSITIONS[current]:
        raise StatusTransitionError(f"a {current!r} structure cannot become {new!r}")


def check_existing_database(path: Path) -> None:
    """Raise DatabaseError when `path` holds something other than an ase.db database.

    Opened read-only, so a foreign SQLite file is never given ase.db's tables.
    """
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return
    if not path.is_file():
        raise DatabaseError(f"the database {path} is not a regular file")
    # Where this process cannot write (a read-only mount) SQLite could not create the -shm
    # file a WAL database needs: read the file as it is (only its table names are read here).
    frozen = "" if _writable(path) else "&immutable=1"
    uri = f"file:{quote(str(path.resolve()))}?mode=ro{frozen}"
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=20)) as connection:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            tables = {str(row[0]) for row in rows}
    except sqlite3.Error as error:
        raise DatabaseError(f"{path} is not a readable SQLite database ({error})") from None
    if tables and "systems" not in tables:  # no table at all: a new, empty database
        raise DatabaseError(
            f"{path} is an SQLite file but not an ase.db database of a campaign; "
            "refusing to write into it (choose another workflow.database)"
        )


def _writable(path: Path) -> bool:
    """SQLite writes the file and, beside it, its -wal and -shm files."""
    folder_ok = os.access(path.parent, os.W_OK | os.X_OK)
    return folder_ok and (not path.exists() or os.access(path, os.W_OK))


class DatabaseConnector:
    """Opens the ase.db SQLite file in WAL mode, so readers never meet a lock held by a writer."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        check_existing_database(self.path)
        if not _writable(self.path):
            raise DatabaseError(
                f"the database {self.path} is not writable (read-only file or mount)"
            )
        try:
            with closing(sqlite3.connect(self.path, timeout=20)) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as error:
            raise DatabaseError(f"cannot open the database {self.path}: {error}") from None
        self._db = cast(SQLite3Database, ase.db.connect(str(self.path), type="db", append=True))

    @property
    def db(self) -> SQLite3Database:
        return self._db

    @contextmanager
    def transaction(self) -> Iterator[SQLite3Database]:
        """All writes inside happen in one SQLite transaction; an exception rolls them all back."""
        with self._db as db:
            yield db


class DatabaseManager:
    """The structures of a campaign: insert with validation, move through statuses, store labels."""

    def __init__(
        self,
        path: str | Path,
        min_distance: float = 0.5,
        allowed_elements: Sequence[str] | None = None,
    ) -> None:
        self.connector = DatabaseConnector(path)
        self.min_distance = min_distance
        self.allowed_elements = list(allowed_elements) if allowed_elements else None

    @property
    def path(self) -> Path:
        return self.connector.path

    def validate(self, atoms: Atoms) -> None:
        validate_structure(atoms, self.min_distance, self.allowed_elements)

    def add_structures(
        self,
        structures: Sequence[Atoms],
        status: str,
        iteration: int,
        origins: str | Sequence[str],
        extra_keys: Sequence[dict[str, Any]] | None = None,
        data: Sequence[dict[str, Any]] | None = None,
        skip_duplicates: bool = True,
    ) -> list[int]:
        """Validate every structure, then insert all in one transaction. Returns the new ids.

        With `skip_duplicates`, a structure identical to one already stored is not inserted
        again (its id is not returned), which makes re-running a phase harmless.
        """
        if status not in keys.STATUSES:
            raise StatusTransitionError(f"unknown status {status!r}")
        origin_list = [origins] * len(structures) if isinstance(origins, str) else list(origins)
        for index, atoms in enumerate(structures):
            where = f"structure {index} ({origin_list[index]})"
            try:
                if status == keys.LABELED:
                    Label.from_atoms(atoms, where)
                self.validate(atoms)
            except LabelError as error:
                raise StructureError(str(error)) from None
            except StructureError as error:
                raise StructureError(f"{where}: {error}") from None
        known = self._known_hashes() if skip_duplicates else set()
        ids: list[int] = []
        with self.connector.transaction() as db:
            for index, atoms in enumerate(structures):
                fingerprint = structure_hash(atoms)
                if fingerprint in known:
                    continue
                known.add(fingerprint)
                kvp = dict(extra_keys[index]) if extra_keys else {}
                kvp.update(
                    {
                        keys.STATUS: status,
                        keys.ITERATION: int(iteration),
                        keys.ORIGIN: origin_list[index],
                        keys.STRUCTURE_HASH: fingerprint,
                    }
                )
                row_data = dict(data[index]) if data else {}
                if keys.KPOINT_CELL in atoms.info:
                    row_data[keys.KPOINT_CELL] = np.asarray(atoms.info[keys.KPOINT_CELL])
                stored = atoms if status == keys.LABELED else _without_calculator(atoms)
                ids.append(db.write(stored, key_value_pairs=kvp, data=row_data or None))
        return ids

    def _known_hashes(self) -> set[str]:
        return {
            row.get(keys.STRUCTURE_HASH)
            for row in self.connector.db.select(columns=["key_value_pairs"])
        }  # noqa: E501

    def set_status(
        self,
        ids: Sequence[int],
        new_status: str,
        extra_keys: dict[str, Any] | None = None,
    ) -> None:
        """Move rows to `new_status` in one transaction, refusing any illegal transition."""
        with self.connector.transaction() as db:
            for row_id in ids:
                current = db.get(id=row_id).get(keys.STATUS)
                check_transition(current, new_status)
                db.update(row_id, **{keys.STATUS: new_status, **(extra_keys or {})})

    def annotate(
        self,
        key_values: Mapping[int, dict[str, Any]] | None = None,
        data: Mapping[int, dict[str, Any]] | None = None,
    ) -> None:
        """Set keys and merge data entries per row, in one transaction; statuses are untouched."""
        key_values = key_values or {}
        data = data or {}
        with self.connector.transaction() as db:
            for row_id in sorted(set(key_values) | set(data)):
                new_keys = key_values.get(row_id, {})
                if keys.STATUS in new_keys:
                    raise StatusTransitionError("annotate does not change statuses; use set_status")
                if row_id in data:
                    merged = {**db.get(id=row_id).get("data", {}), **data[row_id]}
                    db.update(row_id, data=merged, **new_keys)
                else:
                    db.update(row_id, **new_keys)

    def set_keys(self, updates: dict[int, dict[str, Any]]) -> None:
        """Set plain keys (e.g. the train/test split) on rows in one transaction.

        Status, iteration, origin and the structure hash are not plain keys: they change only
        through the methods that keep their rules.
        """
        protected = {keys.STATUS, keys.ITERATION, keys.ORIGIN, keys.STRUCTURE_HASH}
        for row_id, values in updates.items():
            if protected & set(values):
                raise ValueError(f"row {row_id}: {', '.join(protected & set(values))} not settable")
        with self.connector.transaction() as db:
            for row_id, values in updates.items():
                db.update(row_id, **values)

    def store_results(self, results: Sequence[LabelUpdate]) -> None:
        """Write a batch of finished DFT outcomes (labels or failures) in one transaction."""
        with self.connector.transaction() as db:
            for result in results:
                row = db.get(id=result.id)
                check_transition(row.get(keys.STATUS), result.status)
                update_keys = {keys.STATUS: result.status, **result.extra_keys}
                data = {**row.get("data", {}), **result.data}
                if result.status == keys.LABELED:
                    atoms = _labeled_atoms(row.toatoms(), result)
                    db.update(result.id, atoms=atoms, data=data, **update_keys)
                else:
                    db.update(result.id, data=data, **update_keys)

    def get(self, row_id: int) -> StructureRecord:
        return _record(self.connector.db.get(id=row_id))

    def select(self, **filters: Any) -> list[StructureRecord]:
        return [_record(row) for row in self.connector.db.select(**filters)]

    def ids(self, **filters: Any) -> list[int]:
        return [row.id for row in self.connector.db.select(columns=["id"], **filters)]

    def count(self, **filters: Any) -> int:
        return int(self.connector.db.count(**filters))

    def status_counts(self) -> Counter[tuple[int, str]]:
        """Number of rows per (iteration, status)."""
        counts: Counter[tuple[int, str]] = Counter()
        for row in self.connector.db.select(columns=["key_value_pairs"]):
            counts[(int(row.get(keys.ITERATION, -1)), str(row.get(keys.STATUS)))] += 1
        return counts


@dataclass(frozen=True)
class LabelUpdate:
    """The outcome of labeling one row: `labeled` with energy/forces(/stress), or `failed`."""

    id: int
    status: str
    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    extra_keys: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


def _labeled_atoms(atoms: Atoms, result: LabelUpdate) -> Atoms:
    results = {"energy": result.energy, "forces": result.forces, "stress": result.stress}
    present = {key: value for key, value in results.items() if value is not None}
    return Label.from_results(present, len(atoms), f"row {result.id}").attach(atoms)


def _without_calculator(atoms: Atoms) -> Atoms:
    copy = atoms.copy()
    copy.calc = None
    return copy


def _record(row: Any) -> StructureRecord:
    data = dict(row.get("data", {}))
    atoms = row.toatoms()
    if keys.KPOINT_CELL in data:
        atoms.info[keys.KPOINT_CELL] = np.asarray(data[keys.KPOINT_CELL], dtype=float)
    return StructureRecord(
        id=row.id,
        atoms=atoms,
        status=row.get(keys.STATUS),
        iteration=int(row.get(keys.ITERATION, -1)),
        origin=str(row.get(keys.ORIGIN, "")),
        key_value_pairs=dict(row.key_value_pairs),
        data=data,
    )
