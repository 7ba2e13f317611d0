"""The library's source of truth: one SQLite database (WAL, foreign keys, versioned schema).

Persons, their phones and cases, the recordings enrolled, the voiceprint vectors themselves
and an audit trail all live here. The FAISS index is derived from the ``voiceprints`` table
and can always be rebuilt from it.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import json
import os
import pwd
import re
import sqlite3
import time
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import LIBRARY_DISK_FULL, DataError, LibraryError, NotFound, sqlite_disk_full
from ..phones import normalize_number, number_refusal
from ._sql import _rowid, _Transaction
from .audit import (
    AUDIT_GENESIS,
    ROLES,
    _chain_insert,
    audit_chain_head,
    audit_row_hash,
    four_eyes,
    pending_voiceprints,
    seal_audit,
    verify_audit_chain,
)
from .casefile import add_case_call, case_calls, ensure_casefile_schema, keep_case_voice_vector
from .integrity import (
    KEY_NAME,
    SEAL_SCHEME,
    SEAL_TRIGGERS,
    allow_lost_key,
    assert_sealed,
    audit_failure,
    check_model_fingerprint,
    describe_failure,
    erase_checkpoint,
    expired_persons,
    integrity_attach,
    key_path,
    person_seal,
    record_failure,
    rekey_and_reseal,
    reseal_all,
    set_retention,
    update_person,
    verify_seals,
    voiceprint_seal,
)
from .linking import LinkingRows
from .schema import (
    CASEFILE_SCHEMA,
    CASEFILE_TABLES,
    CATEGORIES,
    CATEGORY_ALIASES,
    CHAIN_SCHEMA,
    INTEGRITY_SCHEMA,
    MIGRATIONS,
    case_field_problem,
    id_key,
    normalise_category,
)

__all__ = [
    "AUDIT_GENESIS", "CASEFILE_SCHEMA", "CASEFILE_TABLES", "CATEGORIES", "CATEGORY_ALIASES", "CHAIN_SCHEMA", "INTEGRITY_SCHEMA",
    "KEY_NAME", "MIGRATIONS", "ROLES", "SEAL_SCHEME", "SEAL_TRIGGERS", "Store", "add_case_call", "allow_lost_key", "assert_sealed",
    "audit_chain_head", "audit_failure", "audit_row_hash", "case_calls", "check_model_fingerprint", "default_operator",
    "describe_failure", "ensure_casefile_schema", "erase_checkpoint", "expired_persons", "four_eyes", "integrity_attach",
    "keep_case_voice_vector", "key_path", "normalise_category", "os_account", "pending_voiceprints", "person_seal", "record_failure",
    "rekey_and_reseal", "reseal_all", "seal_audit", "set_retention", "update_person", "verify_audit_chain", "verify_seals",
    "voiceprint_seal",
]


def default_operator() -> str:
    """The OS user running the command (the audit trail's default operator)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return str(os.getuid())


@functools.cache
def os_account() -> str:
    """The OS account this process runs as, from its user id (not ``$USER``, which anyone can set)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # no passwd entry in some containers
        return str(os.getuid())


MAX_CASE_NUMBER = 64
#: an ID number as a person record keeps it: a resident ID card (18 characters, the last may be X), an old
#: 15-digit card, or a passport or other document number
ID_NUMBER = re.compile(r"[0-9A-Z][0-9A-Z-]{0,31}")


def _open_failure(path: Path, err: sqlite3.DatabaseError) -> str:
    """What to do about a library database SQLite cannot open or read."""
    text = str(err)
    if sqlite_disk_full(err, path.parent):
        return f"{path}: {LIBRARY_DISK_FULL}"
    if "not a database" in text or "malformed" in text:
        return f"{path} is not a readable library database ({text}) - restore library.sqlite from the backup made with the folder"
    if "readonly" in text or "unable to open" in text:
        return (f"cannot open {path} for writing ({text}) - the disk or folder is read-only, or this account may not write it: "
                "check the mount and the folder's owner")
    return f"cannot open library database {path}: {text}"


def case_key(case_number: str) -> str:
    """What makes two case numbers the same case: typed with a Chinese input method's full-width letters, digits and
    brackets (ＡＪ２０２６－０８１５, （反诈）) or in other letter case, a case number is still that case."""
    return " ".join(unicodedata.normalize("NFKC", case_number or "").split()).upper()


def refuse_id_number_of_another(store: Store, id_number: str, name: str) -> None:
    """DataError when a person of another name holds ``id_number`` (already :func:`id_key`-ed): an ID number identifies
    one person, and a second record under it would split that person's samples (or file a stranger under their number)."""
    holder = store.db.execute("SELECT id, name FROM persons WHERE id_number = ? AND name != ? ORDER BY id", (id_number, name)).fetchone()
    if holder is not None:
        raise DataError(f"ID number {id_number} already belongs to person {holder['id']} ({holder['name']!r}), not {name!r} - check the name "
                        f"and the number: a sample of that person is enrolled under the name {holder['name']!r}; if that name was recorded "
                        f"wrong, correct it with `voiceprint person update {holder['id']} --name ...`")


def _add_functions(db: sqlite3.Connection) -> None:
    db.create_function("case_key", 1, case_key, deterministic=True)


class Store(LinkingRows):
    """A connection to one library database. Use as a context manager or call :meth:`close`."""

    key: bytes | None = None  # the library's HMAC key (integrity_attach)

    def __init__(self, path: Path, operator: str | None = None):
        self.path = Path(path)
        self.operator = operator or default_operator()
        try:
            self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        except sqlite3.Error as err:
            raise LibraryError(f"cannot open library database {self.path}: {err}") from err
        self.db.row_factory = sqlite3.Row
        _add_functions(self.db)
        try:
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA busy_timeout = 60000")
            mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self.db.execute("PRAGMA synchronous = FULL")
            self.schema_version  # noqa: B018 - the first read of the file itself
        except sqlite3.DatabaseError as err:
            self.db.close()
            raise LibraryError(_open_failure(self.path, err)) from err
        if mode.lower() != "wal":
            raise LibraryError(f"{self.path}: the database could not be switched to WAL mode")
        self._migrate()
        integrity_attach(self)  # secure_delete, seal functions, first-time sealing (section at the end)
        ensure_casefile_schema(self.db)  # the case file's calling numbers and the lead graph (section at the end)

    @classmethod
    def read_only(cls, path: Path) -> Store:
        """A connection that never writes, for checking an archived copy on read-only media: no switch to WAL, no
        upgrade, no sealing; the key beside it is read so that seals can be checked. Refuses a database whose
        write-ahead log still holds rows (a copy taken while it was written to: open a writable copy instead)."""
        from urllib.parse import quote

        from .integrity import _read_key

        path = Path(path)
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size:
            raise LibraryError(f"{path} has rows in {wal.name} still: check a writable copy of the folder (or `voiceprint library backup` it)")
        store = cls.__new__(cls)
        store.path, store.operator = path, default_operator()
        try:
            store.db = sqlite3.connect(f"file:{quote(str(path.absolute()))}?mode=ro&immutable=1", uri=True)
            store.db.row_factory = sqlite3.Row
            _add_functions(store.db)
            store.schema_version  # noqa: B018 - the first read of the file itself
        except sqlite3.DatabaseError as err:
            raise LibraryError(_open_failure(path, err)) from err
        key = key_path(path)
        try:
            store.key = _read_key(key) if key.exists() else None
        except LibraryError:  # damaged: the seals cannot be checked, which the check then says
            store.key = None
        return store

    # -- plumbing ---------------------------------------------------------------------------
    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # fold the log into the database file for whoever copies it next
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def transaction(self):
        """``with store.transaction():`` - BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
        return _Transaction(self.db)

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        version = self.schema_version
        if version > len(MIGRATIONS):
            raise LibraryError(
                f"{self.path} was written by a newer voiceprint (schema {version}, this one knows {len(MIGRATIONS)}) - upgrade voiceprint"
            )
        for number in range(version, len(MIGRATIONS)):
            # executescript commits whatever is pending, so the transaction lives inside the script.
            script = f"BEGIN IMMEDIATE;\n{MIGRATIONS[number]}\nPRAGMA user_version = {number + 1};\nCOMMIT;"
            try:
                self.db.executescript(script)
            except sqlite3.Error as err:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                if self.schema_version > number:
                    continue  # another process ran this upgrade between our version check and our BEGIN
                raise LibraryError(f"{self.path}: schema upgrade to version {number + 1} failed: {err}") from err
        if version < CHAIN_SCHEMA <= self.schema_version:
            seal_audit(self)  # rows written before the audit chain existed join it once

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    #: the audit trail's name for a row of each table whose ids are never reused
    _AUDIT_PREFIX = {"persons": "person", "voiceprints": "voiceprint", "recordings": "recording", "voice_clusters": "cluster"}

    def fresh_id(self, table: str) -> int:
        """An id no row of ``table`` ever had, deleted rows included (the caller's transaction).

        Audit rows, saved results and reports name rows by id; SQLite's plain ``INTEGER PRIMARY KEY``
        hands a deleted top row's id to the next insert, and ``voiceprint:2`` would then name two
        samples. A library from before this counter starts above the highest id its table holds or its
        audit trail names."""
        key = f"next_id.{table}"
        recorded = self.get_meta(key)
        if recorded is not None:
            floor = int(recorded)
        else:
            prefix = self._AUDIT_PREFIX[table]
            named = self.db.execute("SELECT MAX(CAST(substr(target, ?) AS INTEGER)) FROM audit WHERE target LIKE ?",
                                    (len(prefix) + 2, f"{prefix}:%")).fetchone()[0]
            floor = int(named or 0) + 1
        top = self.db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]  # noqa: S608 - a fixed table name
        fresh = max(floor, int(top) + 1)
        self.set_meta(key, str(fresh + 1))
        return fresh

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, str(value)))

    @property
    def generation(self) -> int:
        """Bumped in the same transaction as every voiceprint change; the index records the one it was built at."""
        return int(self.get_meta("generation") or 0)

    def bump_generation(self) -> None:
        self.set_meta("generation", str(self.generation + 1))

    def audit(self, action: str, target: str = "", **detail) -> None:
        """Append one audit row: who (operator), when, what action, on what.

        An operator named on the command line (``--operator``, ``$VOICEPRINT_OPERATOR``) is taken on
        trust: when it is not the OS account running the process, the row's detail also names that
        account (``os_user``), inside what the chain hashes."""
        if self.operator != os_account():
            detail["os_user"] = os_account()
        _chain_insert(self, action, target, json.dumps(detail, ensure_ascii=False, default=str))

    def audit_rows(self, limit: int = 100, action: str | None = None) -> list[dict]:
        sql = "SELECT id, ts, operator, action, target, detail FROM audit"
        args: tuple = ()
        if action:
            sql += " WHERE action = ?"
            args = (action,)
        sql += " ORDER BY id DESC LIMIT ?"
        rows = self.db.execute(sql, args + (limit,)).fetchall()
        return [dict(r) | {"detail": json.loads(r["detail"])} for r in rows]

    # -- persons, phones, cases -------------------------------------------------------------
    def add_person(self, name: str, id_number: str = "", category: str = "other", notes: str = "") -> int:
        """Insert a person, or return the existing one with the same name and ID number."""
        name = (name or "").strip()
        if not name:
            raise DataError("a person needs a name")
        category = normalise_category(category)
        id_number = id_key(id_number)
        if id_number and not ID_NUMBER.fullmatch(id_number):
            raise DataError(f"{id_number[:40]!r} is not an ID number - letters, digits and '-' only "
                            "(an 18-character resident ID card number, or a passport number)")
        row = self.db.execute("SELECT id, category FROM persons WHERE name = ? AND id_number = ?", (name, id_number)).fetchone()
        if row:
            return int(row["id"])
        if id_number:
            refuse_id_number_of_another(self, id_number, name)
        cur = self.db.execute(
            "INSERT INTO persons(id, name, id_number, category, notes, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (self.fresh_id("persons"), name, id_number, category, notes or "", time.time()),
        )
        self.audit("person.add", f"person:{cur.lastrowid}", category=category)
        return _rowid(cur)

    def person_to_enrol(self, name: str, id_number: str = "", category: str = "other", notes: str = "") -> int:
        """The person an enrolment names: by name and ID number when it gives one; by name alone the one
        person of that name; a new person when nobody has it. Several persons of that name and no ID
        number is refused: a sample filed under the wrong one of two people is worse than none."""
        if (id_number or "").strip():
            return self.add_person(name, id_number, category, notes)
        rows = self.db.execute("SELECT id FROM persons WHERE name = ? ORDER BY id", ((name or "").strip(),)).fetchall()
        if len(rows) > 1:
            ids = ", ".join(str(r["id"]) for r in rows)
            raise NotFound(f"{len(rows)} persons are named {name.strip()!r} (ids {ids}) - give the ID number "
                           "(--id-number, or the manifest's id_number column) of the one this sample belongs to")
        return int(rows[0]["id"]) if rows else self.add_person(name, "", category, notes)

    def find_person(self, ref: str | int) -> dict:
        """A person by id, by ID number, or by name (unique names only)."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit() and len(ref) < 12):
            row = self.db.execute("SELECT * FROM persons WHERE id = ?", (int(ref),)).fetchone()
            if row:
                return dict(row)
        text = str(ref).strip()
        for column, what, other in (("id_number", "ID number", "by id"), ("name", "name", "by id or ID number")):
            value = id_key(text) if column == "id_number" else text
            rows = self.db.execute(f"SELECT * FROM persons WHERE {column} = ? AND {column} != ''", (value,)).fetchall()
            if len(rows) == 1:
                return dict(rows[0])
            if len(rows) > 1:  # never one of them at random: a deletion would erase the wrong person
                ids = ", ".join(str(r["id"]) for r in rows)
                raise NotFound(f"{len(rows)} persons share that {what} (ids {ids}) - refer to one {other}")
        raise NotFound(f"no person {text!r} in the library - give a person id, ID number or unique name "
                       "(see `voiceprint person list`)")

    def list_persons(self, category: str | None = None) -> list[dict]:
        sql = (
            "SELECT p.*, (SELECT COUNT(*) FROM voiceprints v WHERE v.person_id = p.id) AS voice_samples "
            "FROM persons p"
        )
        args: tuple = ()
        if category:
            sql += " WHERE p.category = ?"
            args = (normalise_category(category),)
        return [dict(r) for r in self.db.execute(sql + " ORDER BY p.id", args)]

    def add_phone(self, number: str, person_id: int | None = None) -> int:
        """Register a phone number (normalised), optionally to a person; re-registering moves it."""
        norm = normalize_number(number)
        if not norm:
            raise DataError(number_refusal(number))
        row = self.db.execute("SELECT id, person_id FROM phones WHERE number = ?", (norm,)).fetchone()
        if row:
            if person_id is not None and row["person_id"] != person_id:
                self.db.execute("UPDATE phones SET person_id = ? WHERE id = ?", (person_id, row["id"]))
                self.audit("phone.assign", f"phone:{row['id']}", person=person_id)
            return int(row["id"])
        cur = self.db.execute("INSERT INTO phones(number, person_id, created_at) VALUES (?, ?, ?)", (norm, person_id, time.time()))
        self.audit("phone.add", f"phone:{cur.lastrowid}", person=person_id)
        return _rowid(cur)

    def add_case(self, case_number: str, title: str = "", date: str | None = None, area: str = "", status: str = "open") -> int:
        """The id of the case with this number (:func:`case_key`), opened now if there is none."""
        typed = (case_number or "").strip()
        case_number = " ".join(unicodedata.normalize("NFKC", typed).split())  # kept as typed, in half-width forms
        if not case_number:
            raise DataError("a case needs a case number")
        if len(case_number) > MAX_CASE_NUMBER or re.search(r"[\x00-\x1f\x7f]", typed) or \
                any(part in (".", "..") for part in case_number.split("/")):
            # a case number is also a page's address (/cases/AJ2026/0815): "..", a newline or 10,000 characters make none
            raise DataError(f"{case_number[:40]!r} is not a case number - at most {MAX_CASE_NUMBER} characters, no control "
                            "characters, no '.' or '..' between slashes")
        if problem := case_field_problem(date, status):
            raise DataError(f"case {case_number}: {problem}")
        row = self.case_row(case_number)
        if row:
            return int(row["id"])
        cur = self.db.execute(
            "INSERT INTO cases(case_number, title, date, area, status, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (case_number, title or "", date, area or "", status or "open", time.time()),
        )
        self.audit("case.add", f"case:{cur.lastrowid}")
        return _rowid(cur)

    def case_row(self, case_number: str) -> sqlite3.Row | None:
        """A case's id, area, title and status, or None when there is no such case."""
        return self.db.execute("SELECT id, area, title, status, case_number FROM cases WHERE case_key(case_number) = ? ORDER BY id",
                               (case_key(case_number),)).fetchone()

    def case_id(self, case_number: str) -> int:
        row = self.case_row(case_number)
        if not row:
            raise NotFound(f"no case {case_number!r} - add it first with `voiceprint case add`")
        return int(row["id"])

    def link_case(self, case_number: str, person_id: int | None = None, phone: str | None = None) -> None:
        case_id = self.case_id(case_number)
        if person_id is not None:
            if self.db.execute("INSERT OR IGNORE INTO person_cases(person_id, case_id) VALUES (?, ?)", (person_id, case_id)).rowcount:
                self.audit("case.link", f"case:{case_id}", person=person_id)  # a link that exists already is not made again
        if phone:
            phone_id = self.add_phone(phone)
            if self.db.execute("INSERT OR IGNORE INTO phone_cases(phone_id, case_id) VALUES (?, ?)", (phone_id, case_id)).rowcount:
                self.audit("case.link", f"case:{case_id}", phone=phone_id)

    def phones_of(self, person_id: int) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT number FROM phones WHERE person_id = ? ORDER BY id", (person_id,))]

    def cases_of(self, person_id: int) -> list[dict]:
        """Cases linked to the person directly or through one of their phones."""
        rows = self.db.execute(
            """
            SELECT DISTINCT c.case_number, c.title, c.date, c.area, c.status FROM cases c
            WHERE c.id IN (SELECT case_id FROM person_cases WHERE person_id = :p)
               OR c.id IN (SELECT pc.case_id FROM phone_cases pc JOIN phones ph ON ph.id = pc.phone_id
                           WHERE ph.person_id = :p)
            ORDER BY c.case_number
            """,
            {"p": person_id},
        )
        return [dict(r) for r in rows]

    def person_for_phone(self, number: str) -> int | None:
        row = self.db.execute("SELECT person_id FROM phones WHERE number = ?", (normalize_number(number),)).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def person_row(self, person_id: int) -> dict:
        row = self.db.execute("SELECT * FROM persons WHERE id = ?", (person_id,)).fetchone()
        if row is None:
            raise NotFound(f"no person with id {person_id}")
        return dict(row)

    def person_samples(self, person_id: int) -> list[dict]:
        """The recordings behind a person's voiceprints (name, net speech, channel), oldest first."""
        rows = self.db.execute(
            "SELECT r.original_name, r.net_speech, r.channel FROM voiceprints v JOIN recordings r ON r.id = v.recording_id "
            "WHERE v.person_id = ? AND v.pending = 0 ORDER BY v.id", (person_id,)
        ).fetchall()
        return [dict(r) for r in rows]

    def pooled_net_speech(self, model: str, person_ids: list[int]) -> dict[int, float]:
        """person id -> net speech summed over the person's voiceprints of ``model``."""
        out: dict[int, float] = {}
        for chunk in range(0, len(person_ids), 500):
            ids = person_ids[chunk:chunk + 500]
            marks = ",".join("?" * len(ids))
            for pid, net in self.db.execute(
                f"SELECT v.person_id, SUM(COALESCE(r.net_speech, 0)) FROM voiceprints v JOIN recordings r ON r.id = v.recording_id "
                f"WHERE v.model = ? AND v.pending = 0 AND v.person_id IN ({marks}) GROUP BY v.person_id", (model, *ids)):
                out[int(pid)] = float(net)
        return out

    def person_for_id_number(self, id_number: str) -> int | None:
        row = self.db.execute("SELECT id FROM persons WHERE id_number = ? AND id_number != ''", (id_key(id_number),)).fetchone()
        return int(row[0]) if row else None

    # -- recordings and voiceprints ---------------------------------------------------------
    def find_recording(self, sha256: str, channel: int) -> int | None:
        row = self.db.execute("SELECT id FROM recordings WHERE sha256 = ? AND channel = ?", (sha256, channel)).fetchone()
        return int(row[0]) if row else None

    def add_recording(self, sha256: str, channel: int, original_name: str, duration: float, net_speech: float,
                      sample_rate: int, codec: str = "", quality: dict | None = None) -> int:
        existing = self.find_recording(sha256, channel)
        if existing is not None:
            return existing
        cur = self.db.execute(
            "INSERT INTO recordings(id, sha256, channel, original_name, duration, net_speech, sample_rate, codec, quality, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.fresh_id("recordings"), sha256, channel, original_name, duration, net_speech, sample_rate, codec,
             json.dumps(quality or {}), time.time()),
        )
        return _rowid(cur)

    def add_voiceprint(self, recording_id: int, person_id: int | None, model: str, vector: np.ndarray) -> int:
        blob = np.asarray(vector, dtype=np.float32).tobytes()
        pending = int(person_id is not None and four_eyes(self))  # four-eyes: searchable only once approved
        cur = self.db.execute(
            "INSERT INTO voiceprints(id, recording_id, person_id, model, vector, created_at, pending, enrolled_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self.fresh_id("voiceprints"), recording_id, person_id, model, blob, time.time(), pending, self.operator),
        )
        if pending:
            self.audit("enrol.pending", f"voiceprint:{cur.lastrowid}", person=person_id)
        self.bump_generation()
        return _rowid(cur)

    def voiceprints(self, model: str, person_only: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All voiceprints of a model: (ids, person_ids, vectors[n, dim]) in id order."""
        sql = "SELECT id, person_id, vector FROM voiceprints WHERE model = ? AND pending = 0"
        if person_only:
            sql += " AND person_id IS NOT NULL"
        rows = self.db.execute(sql + " ORDER BY id", (model,)).fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        persons = np.fromiter((r[1] if r[1] is not None else -1 for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.vstack([np.frombuffer(r[2], dtype=np.float32) for r in rows])
        return ids, persons, vectors

    def voiceprint_ids(self, model: str) -> tuple[np.ndarray, np.ndarray]:
        """The ids and persons of every searchable voiceprint of a model, in id order, without their vectors."""
        import itertools

        rows = self.db.execute("SELECT id, person_id FROM voiceprints WHERE model = ? AND pending = 0 AND person_id IS NOT NULL "
                               "ORDER BY id", (model,)).fetchall()
        pairs = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=2 * len(rows)).reshape(-1, 2)
        return pairs[:, 0].copy(), pairs[:, 1].copy()

    def vectors_of(self, ids: Iterable[int]) -> np.ndarray:
        """The vectors of voiceprints ``ids``, in that order (``[len(ids), dim]``)."""
        ids = [int(i) for i in ids]
        found: dict[int, np.ndarray] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for vid, blob in self.db.execute(f"SELECT id, vector FROM voiceprints WHERE id IN ({marks})", chunk):  # noqa: S608
                found[int(vid)] = np.frombuffer(blob, dtype=np.float32)
        if missing := [i for i in ids if i not in found]:
            raise LibraryError(f"{self.path}: voiceprints {missing[:5]} vanished while the index was updated - run this again")
        dim = len(next(iter(found.values()))) if found else int(self.get_meta("embedding_dim") or 0)
        return np.vstack([found[i] for i in ids]) if ids else np.zeros((0, dim), np.float32)

    def persons_enrolled_from(self, sha256: str, model: str) -> set[int]:
        """The persons with a voice sample cut from this very file (by its SHA-256)."""
        rows = self.db.execute("SELECT DISTINCT v.person_id FROM voiceprints v JOIN recordings r ON r.id = v.recording_id "
                               "WHERE r.sha256 = ? AND v.model = ? AND v.person_id IS NOT NULL", (sha256, model))
        return {int(r[0]) for r in rows}

    def voiceprint_info(self, ids: Iterable[int]) -> dict[int, dict]:
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            f"SELECT v.id, v.person_id, r.id AS recording_id, r.original_name, r.sha256, r.channel, r.net_speech "
            f"FROM voiceprints v JOIN recordings r ON r.id = v.recording_id WHERE v.id IN ({marks})",
            ids,
        ).fetchall()
        return {int(r["id"]): dict(r) for r in rows}

    def count_voiceprints(self, model: str, person_only: bool = True) -> int:
        sql = "SELECT COUNT(*) FROM voiceprints WHERE model = ? AND pending = 0" + (" AND person_id IS NOT NULL" if person_only else "")
        return int(self.db.execute(sql, (model,)).fetchone()[0])

    def enrolled_sample(self, sha256: str, name: str, id_number: str, model: str, channel: int | None = None) -> dict | None:
        """The voiceprint of this file (and channel) already enrolled for this person, if any."""
        row = self.db.execute(
            "SELECT v.id, v.person_id, r.channel FROM voiceprints v JOIN recordings r ON r.id = v.recording_id "
            "JOIN persons p ON p.id = v.person_id WHERE r.sha256 = ? AND p.name = ? AND p.id_number = ? AND v.model = ?"
            + (" AND r.channel = ?" if channel is not None else ""),
            (sha256, name.strip(), id_key(id_number), model) + ((channel,) if channel is not None else ()),
        ).fetchone()
        return dict(row) if row else None

    def voiceprint_of(self, recording_id: int, person_id: int, model: str) -> int | None:
        row = self.db.execute("SELECT id FROM voiceprints WHERE recording_id=? AND person_id=? AND model=?",
                              (recording_id, person_id, model)).fetchone()
        return int(row[0]) if row else None

    def person_vectors(self, model: str, person_ids: list[int]) -> list[tuple[int, np.ndarray, int, str, float]]:
        """(person id, vector, sample rate, codec, net speech) of every voiceprint of these persons, in id order."""
        if not person_ids:
            return []
        marks = ",".join("?" * len(person_ids))
        rows = self.db.execute(
            f"SELECT v.person_id, v.vector, r.sample_rate, r.codec, r.net_speech FROM voiceprints v "
            f"JOIN recordings r ON r.id = v.recording_id WHERE v.model = ? AND v.pending = 0 AND v.person_id IN ({marks}) ORDER BY v.id",
            [model, *person_ids],
        ).fetchall()
        return [(int(p), np.frombuffer(blob, dtype=np.float32), int(rate or 0), codec or "", float(net or 0))
                for p, blob, rate, codec, net in rows]

    def mean_vector(self, model: str) -> tuple[int, np.ndarray | None]:
        """(count, mean) of every voiceprint of the model, enrolled and unknown (float64)."""
        total, n = None, 0
        for (blob,) in self.db.execute("SELECT vector FROM voiceprints WHERE model = ?", (model,)):
            v = np.frombuffer(blob, np.float32).astype(np.float64)
            total = v if total is None else total + v
            n += 1
        return n, None if total is None else total / n

    def count(self, table: str) -> int:
        if table not in {"persons", "phones", "cases", "recordings", "voiceprints", "audit"}:
            raise ValueError(table)
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608

    def delete_person(self, person_id: int) -> dict:
        """Delete a person and their voiceprints (recordings no longer used by anyone go too, with the
        rows of their kept uploads: ``uploads_erased`` lists those recordings' SHA-256 for the caller,
        who holds the files, to erase). Their phone numbers are case data: they stay, registered to no
        one, and the audit row names them (``phones_unassigned``)."""
        n_vp = self.db.execute("SELECT COUNT(*) FROM voiceprints WHERE person_id = ?", (person_id,)).fetchone()[0]
        phones = [int(r[0]) for r in self.db.execute("SELECT id FROM phones WHERE person_id = ? ORDER BY id", (person_id,))]
        shas = [r[0] for r in self.db.execute("SELECT DISTINCT r.sha256 FROM recordings r JOIN voiceprints v ON v.recording_id = r.id"
                                              " WHERE v.person_id = ?", (person_id,))]
        self.db.execute("DELETE FROM persons WHERE id = ?", (person_id,))
        self.db.execute("DELETE FROM recordings WHERE id NOT IN (SELECT recording_id FROM voiceprints)")
        gone = self.forget_uploads(shas)
        from .accounts import redact_results

        redacted = redact_results(self, person_id)
        leads = self._forget_lead_edges(f"person:{person_id}")
        self.bump_generation()
        self.note_erasure(persons=[person_id], uploads=gone)
        self.audit("person.delete", f"person:{person_id}", voiceprints=n_vp, **({"uploads_erased": len(gone)} if gone else {}),
                   **({"results_redacted": redacted} if redacted else {}), **({"phones_unassigned": phones} if phones else {}),
                   **({"lead_edges_erased": leads} if leads else {}))
        return {"person": person_id, "voiceprints": int(n_vp), "uploads_erased": gone}

    #: the erasures committed whose steps outside the database (index files, uploads, the WAL, reembed copies)
    #: may not have run yet: a kill between the commit and those steps must not leave the data behind
    ERASURE_KEY = "erasure_pending"

    def note_erasure(self, persons: Iterable[int] = (), uploads: Iterable[str] = ()) -> None:
        """Record, inside the caller's transaction, what an erasure must still remove outside the database
        (:meth:`voiceprint.library.Library.finish_erasures` removes it and clears the record)."""
        pending = self.pending_erasure() or {"persons": [], "uploads": []}
        pending["persons"] = sorted(set(pending["persons"]) | {int(p) for p in persons})
        pending["uploads"] = sorted(set(pending["uploads"]) | set(uploads))
        self.set_meta(self.ERASURE_KEY, json.dumps(pending))

    def pending_erasure(self) -> dict | None:
        """What committed erasures still have to remove outside the database, or None."""
        text = self.get_meta(self.ERASURE_KEY)
        return json.loads(text) if text else None

    def _forget_lead_edges(self, node: str) -> int:
        """Drop the lead graph's edges to or from ``node`` (a deleted person's voice matches and phones would
        otherwise stay until the next ``voiceprint leads``); how many went. The graph's tables exist once a
        case file was used."""
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'lead_edges'").fetchone() is None:
            return 0
        return int(self.db.execute("DELETE FROM lead_edges WHERE src = ? OR dst = ?", (node, node)).rowcount)

    def forget_uploads(self, shas: list[str]) -> list[str]:
        """Drop the upload rows of these recordings where no recording row uses them any more; their SHA-256."""
        gone = []
        for sha in shas:
            if self.db.execute("SELECT 1 FROM recordings WHERE sha256 = ?", (sha,)).fetchone() is None:
                if self.db.execute("DELETE FROM uploads WHERE sha256 = ?", (sha,)).rowcount:
                    gone.append(sha)
        return gone

