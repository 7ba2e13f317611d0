"""The library's source of truth: one SQLite database (WAL, foreign keys, versioned schema).

Persons, their phones and cases, the recordings enrolled, the voiceprint vectors themselves
and an audit trail all live here. The FAISS index is derived from the ``voiceprints`` table
and can always be rebuilt from it.
"""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from .errors import LibraryError, NotFound
from .phones import normalize_number

CATEGORIES = ("prior_offender", "suspect", "key_person", "other")
CATEGORY_ALIASES = {
    "prior offender": "prior_offender", "offender": "prior_offender", "前科": "prior_offender",
    "suspect": "suspect", "嫌疑人": "suspect",
    "key person": "key_person", "key": "key_person", "重点人员": "key_person",
    "other": "other", "": "other",
}

# Each entry upgrades the schema by one version; never edit a released entry, append a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE persons (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        id_number TEXT NOT NULL DEFAULT '',
        category TEXT NOT NULL DEFAULT 'other'
            CHECK (category IN ('prior_offender','suspect','key_person','other')),
        notes TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        UNIQUE (name, id_number)
    );
    CREATE TABLE phones (
        id INTEGER PRIMARY KEY,
        number TEXT NOT NULL UNIQUE,
        person_id INTEGER REFERENCES persons(id) ON DELETE SET NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX phones_person ON phones(person_id);
    CREATE TABLE cases (
        id INTEGER PRIMARY KEY,
        case_number TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL DEFAULT '',
        date TEXT,
        area TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'open',
        created_at REAL NOT NULL
    );
    CREATE TABLE person_cases (
        person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
        case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
        PRIMARY KEY (person_id, case_id)
    );
    CREATE TABLE phone_cases (
        phone_id INTEGER NOT NULL REFERENCES phones(id) ON DELETE CASCADE,
        case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
        PRIMARY KEY (phone_id, case_id)
    );
    CREATE TABLE recordings (
        id INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL,
        channel INTEGER NOT NULL DEFAULT 0,
        original_name TEXT NOT NULL,
        duration REAL NOT NULL,
        net_speech REAL NOT NULL,
        sample_rate INTEGER NOT NULL,
        codec TEXT NOT NULL DEFAULT '',
        quality TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        UNIQUE (sha256, channel)
    );
    CREATE TABLE voiceprints (
        id INTEGER PRIMARY KEY,
        recording_id INTEGER NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
        person_id INTEGER REFERENCES persons(id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        vector BLOB NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (recording_id, person_id, model)
    );
    CREATE INDEX voiceprints_person ON voiceprints(person_id);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        operator TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '{}'
    );
    """,
    # 2: case recordings, unknown voices and their clusters across cases (voiceprint.linking)
    """
    CREATE TABLE case_voices (
        id INTEGER PRIMARY KEY,
        case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
        recording_id INTEGER NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
        voice INTEGER NOT NULL DEFAULT 0,
        segments TEXT NOT NULL DEFAULT '[]',
        net_speech REAL NOT NULL DEFAULT 0,
        voiceprint_id INTEGER REFERENCES voiceprints(id) ON DELETE SET NULL,
        matched_person_id INTEGER REFERENCES persons(id) ON DELETE SET NULL,
        match_score REAL,
        created_at REAL NOT NULL,
        UNIQUE (case_id, recording_id, voice)
    );
    CREATE INDEX case_voices_voiceprint ON case_voices(voiceprint_id);
    CREATE TABLE voice_clusters (
        id INTEGER PRIMARY KEY,
        status TEXT NOT NULL DEFAULT 'auto' CHECK (status IN ('auto','confirmed','promoted')),
        person_id INTEGER REFERENCES persons(id) ON DELETE SET NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE cluster_members (
        voiceprint_id INTEGER PRIMARY KEY REFERENCES voiceprints(id) ON DELETE CASCADE,
        cluster_id INTEGER NOT NULL REFERENCES voice_clusters(id) ON DELETE CASCADE,
        score REAL,
        joined_at REAL NOT NULL
    );
    CREATE INDEX cluster_members_cluster ON cluster_members(cluster_id);
    CREATE TABLE cannot_link (
        a INTEGER NOT NULL REFERENCES voiceprints(id) ON DELETE CASCADE,
        b INTEGER NOT NULL REFERENCES voiceprints(id) ON DELETE CASCADE,
        PRIMARY KEY (a, b)
    );
    """,
]


def default_operator() -> str:
    """The OS user running the command (the audit trail's default operator)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return str(os.getuid())


def normalise_category(value: str | None) -> str:
    key = (value or "").strip().lower().replace("-", " ").replace("_", " ")
    if key.replace(" ", "_") in CATEGORIES:
        return key.replace(" ", "_")
    if key in CATEGORY_ALIASES:
        return CATEGORY_ALIASES[key]
    raise LibraryError(f"unknown category {value!r} - use one of: {', '.join(CATEGORIES)}")


class Store:
    """A connection to one library database. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: Path, operator: str | None = None):
        self.path = Path(path)
        self.operator = operator or default_operator()
        try:
            self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        except sqlite3.Error as err:
            raise LibraryError(f"cannot open library database {self.path}: {err}") from err
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA busy_timeout = 60000")
        mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise LibraryError(f"{self.path}: the database could not be switched to WAL mode")
        self.db.execute("PRAGMA synchronous = FULL")
        self._migrate()
        ensure_casefile_schema(self.db)

    # -- plumbing ---------------------------------------------------------------------------
    def close(self) -> None:
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

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, str(value)))

    @property
    def generation(self) -> int:
        """Bumped in the same transaction as every voiceprint change; the index records the one it was built at."""
        return int(self.get_meta("generation", "0"))

    def bump_generation(self) -> None:
        self.set_meta("generation", str(self.generation + 1))

    def audit(self, action: str, target: str = "", **detail) -> None:
        """Append one audit row: who (operator), when, what action, on what."""
        self.db.execute(
            "INSERT INTO audit(ts, operator, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            (time.time(), self.operator, action, target, json.dumps(detail, ensure_ascii=False, default=str)),
        )

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
            raise LibraryError("a person needs a name")
        category = normalise_category(category)
        id_number = (id_number or "").strip().upper()
        row = self.db.execute("SELECT id, category FROM persons WHERE name = ? AND id_number = ?", (name, id_number)).fetchone()
        if row:
            return int(row["id"])
        cur = self.db.execute(
            "INSERT INTO persons(name, id_number, category, notes, created_at) VALUES (?, ?, ?, ?, ?)",
            (name, id_number, category, notes or "", time.time()),
        )
        self.audit("person.add", f"person:{cur.lastrowid}", category=category)
        return int(cur.lastrowid)

    def find_person(self, ref: str | int) -> dict:
        """A person by id, by ID number, or by name (unique names only)."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit() and len(ref) < 12):
            row = self.db.execute("SELECT * FROM persons WHERE id = ?", (int(ref),)).fetchone()
            if row:
                return dict(row)
        text = str(ref).strip()
        row = self.db.execute("SELECT * FROM persons WHERE id_number = ? AND id_number != ''", (text.upper(),)).fetchone()
        if row:
            return dict(row)
        rows = self.db.execute("SELECT * FROM persons WHERE name = ?", (text,)).fetchall()
        if len(rows) == 1:
            return dict(rows[0])
        if len(rows) > 1:
            ids = ", ".join(str(r["id"]) for r in rows)
            raise LibraryError(f"{len(rows)} persons share that name (ids {ids}) - refer to one by id or ID number")
        raise NotFound(f"no person {text!r} in the library - see `voiceprint person list`")

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
            raise LibraryError(f"{number!r} is not a phone number")
        row = self.db.execute("SELECT id, person_id FROM phones WHERE number = ?", (norm,)).fetchone()
        if row:
            if person_id is not None and row["person_id"] != person_id:
                self.db.execute("UPDATE phones SET person_id = ? WHERE id = ?", (person_id, row["id"]))
                self.audit("phone.assign", f"phone:{row['id']}", person=person_id)
            return int(row["id"])
        cur = self.db.execute("INSERT INTO phones(number, person_id, created_at) VALUES (?, ?, ?)", (norm, person_id, time.time()))
        self.audit("phone.add", f"phone:{cur.lastrowid}", person=person_id)
        return int(cur.lastrowid)

    def add_case(self, case_number: str, title: str = "", date: str | None = None, area: str = "", status: str = "open") -> int:
        case_number = (case_number or "").strip()
        if not case_number:
            raise LibraryError("a case needs a case number")
        row = self.db.execute("SELECT id FROM cases WHERE case_number = ?", (case_number,)).fetchone()
        if row:
            return int(row["id"])
        cur = self.db.execute(
            "INSERT INTO cases(case_number, title, date, area, status, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (case_number, title or "", date, area or "", status or "open", time.time()),
        )
        self.audit("case.add", f"case:{cur.lastrowid}")
        return int(cur.lastrowid)

    def case_id(self, case_number: str) -> int:
        row = self.db.execute("SELECT id FROM cases WHERE case_number = ?", (case_number.strip(),)).fetchone()
        if not row:
            raise NotFound(f"no case {case_number!r} - add it first with `voiceprint case add`")
        return int(row["id"])

    def link_case(self, case_number: str, person_id: int | None = None, phone: str | None = None) -> None:
        case_id = self.case_id(case_number)
        if person_id is not None:
            self.db.execute("INSERT OR IGNORE INTO person_cases(person_id, case_id) VALUES (?, ?)", (person_id, case_id))
            self.audit("case.link", f"case:{case_id}", person=person_id)
        if phone:
            phone_id = self.add_phone(phone)
            self.db.execute("INSERT OR IGNORE INTO phone_cases(phone_id, case_id) VALUES (?, ?)", (phone_id, case_id))
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
            "INSERT INTO recordings(sha256, channel, original_name, duration, net_speech, sample_rate, codec, quality, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sha256, channel, original_name, duration, net_speech, sample_rate, codec, json.dumps(quality or {}), time.time()),
        )
        return int(cur.lastrowid)

    def has_voiceprint(self, recording_id: int, person_id: int | None, model: str) -> bool:
        return self.db.execute(
            "SELECT 1 FROM voiceprints WHERE recording_id = ? AND person_id IS ? AND model = ?", (recording_id, person_id, model)
        ).fetchone() is not None

    def add_voiceprint(self, recording_id: int, person_id: int | None, model: str, vector: np.ndarray) -> int:
        blob = np.asarray(vector, dtype=np.float32).tobytes()
        cur = self.db.execute(
            "INSERT INTO voiceprints(recording_id, person_id, model, vector, created_at) VALUES (?, ?, ?, ?, ?)",
            (recording_id, person_id, model, blob, time.time()),
        )
        self.bump_generation()
        return int(cur.lastrowid)

    def voiceprints(self, model: str, person_only: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All voiceprints of a model: (ids, person_ids, vectors[n, dim]) in id order."""
        sql = "SELECT id, person_id, vector FROM voiceprints WHERE model = ?"
        if person_only:
            sql += " AND person_id IS NOT NULL"
        rows = self.db.execute(sql + " ORDER BY id", (model,)).fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        persons = np.fromiter((r[1] if r[1] is not None else -1 for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.vstack([np.frombuffer(r[2], dtype=np.float32) for r in rows])
        return ids, persons, vectors

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

    def count(self, table: str) -> int:
        if table not in {"persons", "phones", "cases", "recordings", "voiceprints", "audit"}:
            raise ValueError(table)
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608

    def delete_person(self, person_id: int) -> dict:
        """Delete a person and their voiceprints (recordings no longer used by anyone go too)."""
        n_vp = self.db.execute("SELECT COUNT(*) FROM voiceprints WHERE person_id = ?", (person_id,)).fetchone()[0]
        self.db.execute("DELETE FROM persons WHERE id = ?", (person_id,))
        self.db.execute("DELETE FROM recordings WHERE id NOT IN (SELECT recording_id FROM voiceprints)")
        self.bump_generation()
        self.audit("person.delete", f"person:{person_id}", voiceprints=n_vp)
        return {"person": person_id, "voiceprints": int(n_vp)}

    def delete_recording(self, recording_id: int) -> dict:
        n_vp = self.db.execute("SELECT COUNT(*) FROM voiceprints WHERE recording_id = ?", (recording_id,)).fetchone()[0]
        self.db.execute("DELETE FROM recordings WHERE id = ?", (recording_id,))
        self.bump_generation()
        self.audit("recording.delete", f"recording:{recording_id}", voiceprints=n_vp)
        return {"recording": recording_id, "voiceprints": int(n_vp)}


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
        return False


# -- case file and lead graph (voiceprint.graph, voiceprint.fused) -----------------------------
# Additive tables created on open when missing (IF NOT EXISTS; no schema version of their own), so
# a library written before them gains them and an older voiceprint ignores them.
CASEFILE_SCHEMA = """
CREATE TABLE IF NOT EXISTS case_calls (
    id INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    number TEXT NOT NULL,
    called_at TEXT NOT NULL DEFAULT '',
    victim_number TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    UNIQUE (case_id, number, called_at)
);
CREATE INDEX IF NOT EXISTS case_calls_number ON case_calls(number);
CREATE TABLE IF NOT EXISTS case_voice_vectors (
    case_voice_id INTEGER PRIMARY KEY REFERENCES case_voices(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    vector BLOB NOT NULL,
    domain TEXT NOT NULL,
    net_speech REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS lead_edges (
    id INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,
    src TEXT NOT NULL,
    dst TEXT NOT NULL,
    kind TEXT NOT NULL,
    log10_lr REAL,
    evidence TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS lead_edges_src ON lead_edges(src);
CREATE INDEX IF NOT EXISTS lead_edges_dst ON lead_edges(dst);
CREATE INDEX IF NOT EXISTS lead_edges_origin ON lead_edges(origin);
CREATE TABLE IF NOT EXISTS lead_state (
    origin TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    built_at REAL NOT NULL,
    edges INTEGER NOT NULL
);
"""
CASEFILE_TABLES = ("case_calls", "case_voice_vectors", "lead_edges", "lead_state")


def ensure_casefile_schema(db: sqlite3.Connection) -> None:
    """Create the case-file and lead-graph tables if this database lacks them (one write, once)."""
    marks = ",".join("?" * len(CASEFILE_TABLES))
    have = db.execute(f"SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ({marks})", CASEFILE_TABLES).fetchone()[0]
    if have == len(CASEFILE_TABLES):
        return
    try:
        db.executescript(f"BEGIN IMMEDIATE;\n{CASEFILE_SCHEMA}\nCOMMIT;")
    except sqlite3.Error as err:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise LibraryError(f"cannot add the case-file tables to the library database: {err}") from err


def add_case_call(store: Store, case_number: str, number: str, called_at: str = "", victim_number: str = "") -> bool:
    """Record that ``number`` called the victim of a case (caller holds a transaction); False if already recorded."""
    norm = normalize_number(number)
    if not norm:
        raise LibraryError(f"{number!r} is not a phone number - give the calling number as the victim's bill shows it")
    case_id = store.case_id(case_number)
    victim = normalize_number(victim_number) if victim_number else ""
    cur = store.db.execute(
        "INSERT OR IGNORE INTO case_calls(case_id, number, called_at, victim_number, created_at) VALUES (?, ?, ?, ?, ?)",
        (case_id, norm, called_at or "", victim, time.time()))
    if cur.rowcount:
        store.audit("case.add_call", f"case:{case_id}", call=int(cur.lastrowid))
    return bool(cur.rowcount)


def case_calls(store: Store, case_number: str | None = None) -> list[dict]:
    """The calls recorded against cases (one case, or all), oldest first."""
    sql = ("SELECT c.case_number, c.status, c.area, k.number, k.called_at, k.victim_number FROM case_calls k"
           " JOIN cases c ON c.id = k.case_id")
    args: tuple = ()
    if case_number:
        sql += " WHERE c.case_number = ?"
        args = (case_number.strip(),)
    return [dict(r) for r in store.db.execute(sql + " ORDER BY c.case_number, k.called_at, k.number", args)]


def keep_case_voice_vector(store: Store, case_voice_id: int, model: str, vector: np.ndarray, domain: str, net_speech: float) -> None:
    """Keep a case voice's voiceprint (also one matched to a person at filing) for the lead graph's voice evidence."""
    store.db.execute(
        "INSERT OR REPLACE INTO case_voice_vectors(case_voice_id, model, vector, domain, net_speech) VALUES (?, ?, ?, ?, ?)",
        (int(case_voice_id), model, np.asarray(vector, np.float32).tobytes(), domain, float(net_speech)))
