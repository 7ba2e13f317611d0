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
from collections.abc import Iterable
from pathlib import Path

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

    key: bytes | None = None  # the library's HMAC key (integrity_attach)

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
        integrity_attach(self)  # secure_delete, seal functions, first-time sealing (section at the end)
        ensure_casefile_schema(self.db)  # the case file's calling numbers and the lead graph (section at the end)

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
        if version < 4 <= self.schema_version:
            seal_audit(self)  # rows written before the audit chain existed join it once

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, str(value)))

    @property
    def generation(self) -> int:
        """Bumped in the same transaction as every voiceprint change; the index records the one it was built at."""
        return int(self.get_meta("generation") or 0)

    def bump_generation(self) -> None:
        self.set_meta("generation", str(self.generation + 1))

    def audit(self, action: str, target: str = "", **detail) -> None:
        """Append one audit row: who (operator), when, what action, on what."""
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
        return _rowid(cur)

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
        return _rowid(cur)

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
        return _rowid(cur)

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

    def person_for_id_number(self, id_number: str) -> int | None:
        row = self.db.execute("SELECT id FROM persons WHERE id_number = ? AND id_number != ''", (id_number.strip().upper(),)).fetchone()
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
            "INSERT INTO recordings(sha256, channel, original_name, duration, net_speech, sample_rate, codec, quality, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sha256, channel, original_name, duration, net_speech, sample_rate, codec, json.dumps(quality or {}), time.time()),
        )
        return _rowid(cur)

    def has_voiceprint(self, recording_id: int, person_id: int | None, model: str) -> bool:
        return self.db.execute(
            "SELECT 1 FROM voiceprints WHERE recording_id = ? AND person_id IS ? AND model = ?", (recording_id, person_id, model)
        ).fetchone() is not None

    def add_voiceprint(self, recording_id: int, person_id: int | None, model: str, vector: np.ndarray) -> int:
        blob = np.asarray(vector, dtype=np.float32).tobytes()
        pending = int(person_id is not None and four_eyes(self))  # four-eyes: searchable only once approved
        cur = self.db.execute(
            "INSERT INTO voiceprints(recording_id, person_id, model, vector, created_at, pending, enrolled_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (recording_id, person_id, model, blob, time.time(), pending, self.operator),
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
            (sha256, name.strip(), (id_number or "").strip().upper(), model) + ((channel,) if channel is not None else ()),
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

    # -- case voices, unknown voiceprints and their clusters (voiceprint.linking) ------------
    def case_voice(self, case_id: int, recording_id: int, voice: int) -> dict | None:
        row = self.db.execute("SELECT id, voiceprint_id FROM case_voices WHERE case_id=? AND recording_id=? AND voice=?",
                              (case_id, recording_id, voice)).fetchone()
        return dict(row) if row else None

    def add_unknown_voiceprint(self, recording_id: int, model: str, vector: np.ndarray) -> int:
        """A voiceprint of no person (an unknown voice). The person index never holds it, so no generation bump."""
        cur = self.db.execute("INSERT INTO voiceprints(recording_id, person_id, model, vector, created_at) VALUES (?, NULL, ?, ?, ?)",
                              (recording_id, model, np.asarray(vector, np.float32).tobytes(), time.time()))
        return _rowid(cur)

    def add_case_voice(self, case_id: int, recording_id: int, voice: int, segments: list, net_speech: float,
                       voiceprint_id: int | None, matched_person_id: int | None, match_score: float | None) -> int:
        cur = self.db.execute(
            "INSERT INTO case_voices(case_id, recording_id, voice, segments, net_speech, voiceprint_id,"
            " matched_person_id, match_score, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (case_id, recording_id, voice, json.dumps(segments), net_speech, voiceprint_id, matched_person_id, match_score, time.time()))
        return _rowid(cur)

    def unknown_voices(self, model: str) -> list[tuple[int, int, np.ndarray, int, str, float | None]]:
        """(voiceprint, cluster, vector, sample rate, codec, net speech) of every clustered unknown voice not promoted."""
        rows = self.db.execute(
            "SELECT v.id, m.cluster_id, v.vector, r.sample_rate, r.codec, "
            " (SELECT MAX(cv.net_speech) FROM case_voices cv WHERE cv.voiceprint_id = v.id) AS net "
            "FROM voiceprints v JOIN cluster_members m ON m.voiceprint_id = v.id JOIN recordings r ON r.id = v.recording_id "
            "JOIN voice_clusters c ON c.id = m.cluster_id WHERE v.person_id IS NULL AND v.model = ? AND c.status != 'promoted' "
            "ORDER BY v.id", (model,)).fetchall()
        return [(int(r[0]), int(r[1]), np.frombuffer(r[2], np.float32), r[3], r[4], r[5]) for r in rows]

    def cannot_link_with(self, voiceprint_id: int) -> set[int]:
        """Voices never to be linked with this one: split from it by an investigator, or heard in the same recording."""
        rows = self.db.execute(
            "SELECT b FROM cannot_link WHERE a = ? UNION SELECT a FROM cannot_link WHERE b = ? UNION "
            "SELECT v2.id FROM voiceprints v1 JOIN recordings r1 ON r1.id = v1.recording_id"
            " JOIN case_voices c1 ON c1.voiceprint_id = v1.id JOIN recordings r2 ON r2.sha256 = r1.sha256"
            " JOIN voiceprints v2 ON v2.recording_id = r2.id JOIN case_voices c2 ON c2.voiceprint_id = v2.id"
            " WHERE v1.id = ? AND (r2.channel != r1.channel OR c2.voice != c1.voice)", (voiceprint_id,) * 3)
        return {int(r[0]) for r in rows}

    def cannot_link_pairs(self) -> list[tuple[int, int]]:
        return [(int(a), int(b)) for a, b in self.db.execute("SELECT a, b FROM cannot_link")]

    def add_cannot_link(self, pairs: Iterable[tuple[int, int]]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO cannot_link(a, b) VALUES (?, ?)", [(min(a, b), max(a, b)) for a, b in pairs])

    def voice_sides(self, voiceprint_ids: list[int]) -> dict[int, tuple[str, str]]:
        """voiceprint -> (recording sha256, "channel:voice"): two voices of one call are two sides of it."""
        if not voiceprint_ids:
            return {}
        marks = ",".join("?" * len(voiceprint_ids))
        rows = self.db.execute(
            f"SELECT v.id, r.sha256, r.channel, cv.voice FROM voiceprints v JOIN recordings r ON r.id = v.recording_id"
            f" JOIN case_voices cv ON cv.voiceprint_id = v.id WHERE v.id IN ({marks})", [int(v) for v in voiceprint_ids])
        return {int(r[0]): (r[1], f"{r[2]}:{r[3]}") for r in rows}

    def voice_clusters(self) -> dict[int, int]:
        """voiceprint -> cluster, for every clustered voice."""
        return {int(v): int(c) for v, c in self.db.execute("SELECT voiceprint_id, cluster_id FROM cluster_members")}

    def cluster(self, cluster_id: int) -> dict:
        row = self.db.execute("SELECT * FROM voice_clusters WHERE id = ?", (cluster_id,)).fetchone()
        if row is None:
            raise NotFound(f"no voice cluster {cluster_id} - see `voiceprint link`")
        return dict(row)

    def cluster_statuses(self) -> dict[int, str]:
        return {int(c): s for c, s in self.db.execute("SELECT id, status FROM voice_clusters")}

    def new_cluster(self, status: str = "auto") -> int:
        return _rowid(self.db.execute("INSERT INTO voice_clusters(status, created_at) VALUES (?, ?)", (status, time.time())))

    def set_cluster_status(self, cluster_id: int, status: str, person_id: int | None = None) -> None:
        self.db.execute("UPDATE voice_clusters SET status = ?, person_id = COALESCE(?, person_id) WHERE id = ?",
                        (status, person_id, cluster_id))

    def add_cluster_member(self, voiceprint_id: int, cluster_id: int, score: float | None) -> None:
        self.db.execute("INSERT INTO cluster_members(voiceprint_id, cluster_id, score, joined_at) VALUES (?, ?, ?, ?)",
                        (voiceprint_id, cluster_id, score, time.time()))

    def set_cluster_member(self, voiceprint_id: int, cluster_id: int, score: float | None) -> None:
        self.db.execute("UPDATE cluster_members SET cluster_id = ?, score = ? WHERE voiceprint_id = ?", (cluster_id, score, voiceprint_id))

    def cluster_member_ids(self, cluster_id: int) -> list[int]:
        return [int(r[0]) for r in self.db.execute(
            "SELECT voiceprint_id FROM cluster_members WHERE cluster_id = ? ORDER BY voiceprint_id", (cluster_id,))]

    def move_cluster_members(self, voiceprint_ids: list[int], cluster_id: int) -> None:
        marks = ",".join("?" * len(voiceprint_ids))
        self.db.execute(f"UPDATE cluster_members SET cluster_id = ? WHERE voiceprint_id IN ({marks})", (cluster_id, *voiceprint_ids))

    def merge_clusters(self, keep: int, gone: int) -> None:
        self.db.execute("UPDATE cluster_members SET cluster_id = ? WHERE cluster_id = ?", (keep, gone))
        self.db.execute("DELETE FROM voice_clusters WHERE id = ?", (gone,))

    def drop_empty_auto_clusters(self) -> None:
        self.db.execute("DELETE FROM voice_clusters WHERE status = 'auto' AND id NOT IN (SELECT cluster_id FROM cluster_members)")

    def cluster_evidence(self) -> list[sqlite3.Row]:
        """One row per clustered voice with its cluster, case, recording and vector, by cluster then voiceprint."""
        return self.db.execute(
            "SELECT c.id AS cluster, c.status, c.person_id, m.voiceprint_id, m.score, cs.case_number, r.original_name,"
            " r.channel, r.sample_rate, r.codec, cv.voice, cv.segments, cv.net_speech, v.vector FROM voice_clusters c"
            " JOIN cluster_members m ON m.cluster_id = c.id JOIN voiceprints v ON v.id = m.voiceprint_id"
            " JOIN recordings r ON r.id = v.recording_id JOIN case_voices cv ON cv.voiceprint_id = v.id"
            " JOIN cases cs ON cs.id = cv.case_id ORDER BY c.id, m.voiceprint_id").fetchall()

    def cases_of_cluster(self, cluster_id: int) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT DISTINCT cs.case_number FROM case_voices cv JOIN cases cs ON cs.id = cv.case_id"
            " JOIN cluster_members m ON m.voiceprint_id = cv.voiceprint_id WHERE m.cluster_id = ?", (cluster_id,))]

    def cases_by_cluster(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for c, case in self.db.execute(
                "SELECT DISTINCT m.cluster_id, cs.case_number FROM cluster_members m JOIN case_voices cv ON cv.voiceprint_id = m.voiceprint_id"
                " JOIN cases cs ON cs.id = cv.case_id ORDER BY cs.case_number"):
            out.setdefault(int(c), []).append(case)
        return out

    def give_voiceprint(self, voiceprint_id: int, person_id: int) -> int:
        """Make an unknown voiceprint a person's (1), unless that person already has one of its recording (0)."""
        return self.db.execute("UPDATE OR IGNORE voiceprints SET person_id = ? WHERE id = ?", (person_id, voiceprint_id)).rowcount

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


def _rowid(cur: sqlite3.Cursor) -> int:
    """The id an INSERT just made (sqlite3 types it Optional; after an INSERT it is set)."""
    assert cur.lastrowid is not None
    return int(cur.lastrowid)


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


# ==========================================================================================
# Integrity, erasure and retention (issue 12). Everything the toolkit needs to show that the
# biometric rows were not altered outside it, and to erase what it deletes.
#
# Each voiceprint row and each person row carries ``seal``: an HMAC-SHA256, under a random key
# kept beside the database (``library.key``, 0600), over the values that decide what a query
# answers (vector bytes, person, recording SHA-256, model and the library's model fingerprint;
# a person's name, ID number, category and retention date). Triggers recompute the seal on every
# insert and update made through the toolkit (their SQL function exists only on its connections),
# so every write path is covered; a row changed with another tool keeps a seal that no longer
# matches, and ``verify_seals`` names it.
# ==========================================================================================

import contextlib as _contextlib  # noqa: E402 - this section's imports stay with it
import contextvars as _contextvars  # noqa: E402
import hashlib as _hashlib  # noqa: E402
import hmac as _hmac  # noqa: E402
import secrets as _secrets  # noqa: E402

from .errors import ModelError, VoiceprintError  # noqa: E402

KEY_NAME = "library.key"
SEAL_SCHEME = "hmac-sha256:v1"

MIGRATIONS.append(
    # 3: integrity seals, retention dates. 'integrity' = 'pending' until the rows are sealed (integrity_attach).
    """
    ALTER TABLE voiceprints ADD COLUMN seal TEXT NOT NULL DEFAULT '';
    ALTER TABLE persons ADD COLUMN seal TEXT NOT NULL DEFAULT '';
    ALTER TABLE persons ADD COLUMN retain_until TEXT;
    INSERT INTO meta(key, value) VALUES ('integrity', 'pending') ON CONFLICT(key) DO UPDATE SET value = 'pending';
    CREATE TRIGGER voiceprints_seal_insert AFTER INSERT ON voiceprints BEGIN
        UPDATE voiceprints SET seal = vp_seal_voiceprint(NEW.id, NEW.person_id, NEW.model, NEW.vector,
            (SELECT sha256 || ':' || channel FROM recordings WHERE id = NEW.recording_id),
            (SELECT value FROM meta WHERE key = 'model_fingerprint')) WHERE id = NEW.id;
    END;
    CREATE TRIGGER voiceprints_seal_update AFTER UPDATE OF id, recording_id, person_id, model, vector ON voiceprints BEGIN
        UPDATE voiceprints SET seal = vp_seal_voiceprint(NEW.id, NEW.person_id, NEW.model, NEW.vector,
            (SELECT sha256 || ':' || channel FROM recordings WHERE id = NEW.recording_id),
            (SELECT value FROM meta WHERE key = 'model_fingerprint')) WHERE id = NEW.id;
    END;
    CREATE TRIGGER persons_seal_insert AFTER INSERT ON persons BEGIN
        UPDATE persons SET seal = vp_seal_person(NEW.id, NEW.name, NEW.id_number, NEW.category, NEW.retain_until)
        WHERE id = NEW.id;
    END;
    CREATE TRIGGER persons_seal_update AFTER UPDATE OF id, name, id_number, category, retain_until ON persons BEGIN
        UPDATE persons SET seal = vp_seal_person(NEW.id, NEW.name, NEW.id_number, NEW.category, NEW.retain_until)
        WHERE id = NEW.id;
    END;
    """
)
INTEGRITY_SCHEMA = len(MIGRATIONS)  # the schema version that added the seals (the migration just appended)
SEAL_TRIGGERS = ("voiceprints_seal_insert", "voiceprints_seal_update", "persons_seal_insert", "persons_seal_update")

#: Set by ``voiceprint verify-library --reseal``: open a sealed library whose key is lost.
_KEY_LOST_OK: _contextvars.ContextVar[bool] = _contextvars.ContextVar("key_lost_ok", default=False)


@_contextlib.contextmanager
def allow_lost_key():
    """Within this block a sealed library whose key is missing opens (to be resealed) instead of failing."""
    token = _KEY_LOST_OK.set(True)
    try:
        yield
    finally:
        _KEY_LOST_OK.reset(token)


def key_path(db_path: Path) -> Path:
    """The library key lives beside the database (``library.key``, 0600)."""
    return Path(db_path).parent / KEY_NAME


def voiceprint_seal(key: bytes, vid, person_id, model, vector: bytes, recording, fingerprint) -> str:
    """HMAC of one voiceprint row: id, person, model, recording (sha256:channel), model fingerprint, vector bytes."""
    head = json.dumps(["voiceprint", vid, person_id, model, recording, fingerprint]).encode()
    return _hmac.new(key, head + b"\n" + bytes(vector or b""), _hashlib.sha256).hexdigest()


def person_seal(key: bytes, pid, name, id_number, category, retain_until) -> str:
    """HMAC of one person row: id, name, ID number, category, retention date."""
    blob = json.dumps(["person", pid, name, id_number, category, retain_until], ensure_ascii=False).encode()
    return _hmac.new(key, blob, _hashlib.sha256).hexdigest()


def _read_key(path: Path) -> bytes:
    key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    if len(key) < 32:
        raise LibraryError(f"{path} is not a library key (too short) - restore it from the backup made with the database")
    return key


def _new_key(path: Path) -> bytes:
    """Create the key file (0600, written whole then linked into place); another process's key wins a race."""
    for stale in path.parent.glob(f".{KEY_NAME}.*.tmp"):  # left by a process killed while making a key
        pid = stale.name.split(".")[-2]
        if pid.isdigit() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{KEY_NAME}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (_secrets.token_hex(32) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return _read_key(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def integrity_attach(store: Store) -> None:
    """Harden one connection: secure_delete, the seal functions, and first-time sealing.

    A library still marked ``integrity = pending`` (new, or upgraded from schema 2) gets its key
    and every row sealed here, once, audited. A sealed library with no key file refuses to open
    (unless :func:`allow_lost_key`): without the key nothing can be shown or sealed.
    """
    try:
        _attach(store)
    except BaseException:
        store.db.close()
        raise


def _attach(store: Store) -> None:
    store.db.execute("PRAGMA secure_delete = ON")
    path = key_path(store.path)
    store.key = _read_key(path) if path.exists() else None

    def seal_vp(vid, person_id, model, vector, recording, fingerprint):
        if store.key is None:
            raise LibraryError("library key missing")
        return voiceprint_seal(store.key, vid, person_id, model, vector, recording, fingerprint)

    def seal_person(pid, name, id_number, category, retain_until):
        if store.key is None:
            raise LibraryError("library key missing")
        return person_seal(store.key, pid, name, id_number, category, retain_until)

    store.db.create_function("vp_seal_voiceprint", 6, seal_vp, deterministic=True)
    store.db.create_function("vp_seal_person", 5, seal_person, deterministic=True)
    state = store.get_meta("integrity")
    if store.schema_version < INTEGRITY_SCHEMA:
        return  # a database from before the seals (only an older voiceprint, or a test, leaves one unmigrated)
    if state == "pending":
        _seal_pending(store, path)
    elif store.key is None and not _KEY_LOST_OK.get():
        raise LibraryError(
            f"{path} is missing, so this library's voiceprints cannot be shown to be unaltered - restore library.key "
            "from the backup made with the database, or, if the database itself is trusted, run "
            f"`voiceprint verify-library --reseal --library {store.path.parent}` (audited)"
        )


def _seal_pending(store: Store, path: Path) -> None:
    """Seal every row of a new or upgraded library; only a library with no key yet may be sealed wholesale."""
    with store.transaction():
        if store.get_meta("integrity") != "pending":
            return  # another process sealed it between our read and our BEGIN
        rows = store.count("voiceprints") + store.count("persons")
        if store.key is None:
            store.key = _new_key(path)
        elif rows:
            raise LibraryError(
                f"{store.path} is marked as never sealed but {path} already exists - an upgrade was interrupted or the "
                "database was altered; check it, then run `voiceprint verify-library --reseal` (audited)"
            )
        counts = reseal_all(store)
        store.set_meta("integrity", SEAL_SCHEME)
        if rows:  # an upgraded library (a new one has nothing to seal: its creation is audited)
            store.audit("integrity.seal", store.path.parent.name, **counts)


def reseal_all(store: Store) -> dict:
    """Recompute every row's seal with the current key (the caller holds a transaction)."""
    n_vp = store.db.execute("UPDATE voiceprints SET vector = vector").rowcount  # fires voiceprints_seal_update
    n_p = store.db.execute("UPDATE persons SET name = name").rowcount
    return {"voiceprints": int(n_vp), "persons": int(n_p)}


def rekey_and_reseal(store: Store) -> dict:
    """A new key, and every row sealed with it as it is now: the operator vouches for the database (audited)."""
    path = key_path(store.path)
    old = path.with_name(f"{KEY_NAME}.replaced-{int(time.time())}")
    if path.exists():
        os.replace(path, old)
    store.key = _new_key(path)
    with store.transaction():
        counts = reseal_all(store)
        store.set_meta("integrity", SEAL_SCHEME)
        store.audit("integrity.reseal", store.path.parent.name, **counts, previous_key=old.name if old.exists() else None)
    return counts


def verify_seals(store: Store, person_ids: Iterable[int] | None = None) -> dict:
    """Recompute every seal (or those of ``person_ids``' rows) and name each row that fails; also
    checks that the seal triggers are in place and that the key exists."""
    triggers = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    key = store.key
    report = {"scheme": store.get_meta("integrity"), "key": str(key_path(store.path)), "key_present": key is not None,
              "missing_triggers": [t for t in SEAL_TRIGGERS if t not in triggers]}
    fingerprint = store.get_meta("model_fingerprint")
    vp_sql = ("SELECT v.id, v.person_id, v.model, v.vector, r.sha256 || ':' || r.channel, v.seal "
              "FROM voiceprints v LEFT JOIN recordings r ON r.id = v.recording_id")
    p_sql = "SELECT id, name, id_number, category, retain_until, seal FROM persons"
    failures: list[dict] = []
    counts = {"voiceprints": 0, "persons": 0}
    for table, sql, where, seal_of in (
        ("voiceprints", vp_sql, "v.person_id", lambda r: voiceprint_seal(key or b"", r[0], r[1], r[2], r[3], r[4], fingerprint)),
        ("persons", p_sql, "id", lambda r: person_seal(key or b"", *r[:5])),
    ):
        for row in _rows_for(store, sql, where, person_ids):
            counts[table] += 1
            if not (row[5] and key is not None and _hmac.compare_digest(row[5], seal_of(row))):
                failures.append({"table": table, "id": int(row[0]), "person_id": row[1] if table == "voiceprints" else int(row[0]),
                                 "reason": "not sealed" if not row[5] else "altered outside voiceprint"})
    ok = key is not None and not report["missing_triggers"] and not failures and report["scheme"] == SEAL_SCHEME
    return report | {"voiceprints_checked": counts["voiceprints"], "persons_checked": counts["persons"],
                     "failures": failures, "ok": ok}


def _rows_for(store: Store, sql: str, column: str, person_ids: Iterable[int] | None):
    """Rows of ``sql`` (all, or those whose ``column`` is one of ``person_ids``, in chunks), in id order."""
    if person_ids is None:
        yield from store.db.execute(sql + " ORDER BY 1")
        return
    ids = sorted({int(p) for p in person_ids})
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        yield from store.db.execute(f"{sql} WHERE {column} IN ({','.join('?' * len(chunk))}) ORDER BY 1", chunk)  # noqa: S608


def assert_sealed(store: Store, person_ids: Iterable[int] | None = None) -> None:
    """Raise LibraryError naming the failing rows: before an index is built from the database (all
    rows) and before a query's candidates are scored (``person_ids``: their rows only)."""
    report = verify_seals(store, person_ids)
    if report["ok"]:
        return
    raise LibraryError(f"{store.path}: {describe_failure(report)} - nothing is built or answered from altered rows; "
                       "run `voiceprint verify-library` for the full list")


def describe_failure(report: dict) -> str:
    """One line saying why an integrity report failed (every reason, the first 20 failing rows)."""
    parts = []
    if not report["key_present"]:
        parts.append(f"library key {report['key']} is missing")
    if report["missing_triggers"]:
        parts.append(f"seal triggers removed ({', '.join(report['missing_triggers'])})")
    fails = report["failures"]
    if fails:
        named = ", ".join(f"{f['table'][:-1]} {f['id']}" for f in fails[:20])
        more = f" and {len(fails) - 20} more" if len(fails) > 20 else ""
        parts.append(f"{len(fails)} row(s) fail their integrity seal: {named}{more}")
    if not parts:
        parts.append(f"library is not sealed (integrity state {report['scheme']!r})")
    return "; ".join(parts)


def check_model_fingerprint(store: Store, spec) -> None:
    """Refuse to embed with a model whose weights differ from those the library's voiceprints came from."""
    recorded = store.get_meta("model_fingerprint")
    if recorded and recorded != spec.fingerprint:
        raise ModelError(
            f"library {store.path.parent} holds voiceprints of model {spec.name!r} with fingerprint {recorded}, but the "
            f"installed {spec.name!r} has fingerprint {spec.fingerprint}: their voiceprints cannot be compared. Restore the "
            "original model files, or re-embed: the library keeps no audio, so re-enrol the original recordings into a new "
            "library (`voiceprint init --library NEW` then `voiceprint enrol MANIFEST --library NEW`)"
        )


def audit_failure(action: str):
    """Decorator for ``Library`` verbs: a VoiceprintError leaves an audit row (``action``) before it propagates."""
    import functools

    def wrap(fn):
        @functools.wraps(fn)
        def inner(self, *args, **kwargs):
            try:
                return fn(self, *args, **kwargs)
            except VoiceprintError as err:
                target = args[0] if args else kwargs.get("path", kwargs.get("item", ""))
                record_failure(self.store, action, getattr(target, "path", target), err)
                raise
        return inner
    return wrap


def record_failure(store: Store, action: str, path, err: Exception) -> None:
    """Audit a refused enrolment or a failed query: the file's full SHA-256 (when readable), its name, why."""
    target = f"file:{Path(str(path)).name}"
    with _contextlib.suppress(OSError):
        h = _hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        target = f"sha256:{h.hexdigest()}"
    try:
        with store.transaction():
            store.audit(action, target, file=Path(str(path)).name, error=type(err).__name__, reason=str(err)[:300])
    except (sqlite3.Error, VoiceprintError):  # never hide the original error behind an audit failure
        pass


def erase_checkpoint(store: Store) -> dict:
    """After a deletion: fold the WAL into the database and truncate it, so no old page keeps erased data."""
    busy, log_frames, done = store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return {"busy": bool(busy), "wal_frames": int(log_frames), "checkpointed": int(done)}


def set_retention(store: Store, person_id: int, retain_until: str | None) -> None:
    """Set (or clear with None) a person's retention date, ISO ``YYYY-MM-DD`` (audited)."""
    store.db.execute("UPDATE persons SET retain_until = ? WHERE id = ?", (retain_until, person_id))
    store.audit("person.retention", f"person:{person_id}", retain_until=retain_until)


def update_person(store: Store, person_id: int, category: str | None = None, notes: str | None = None) -> None:
    """Change a person's category or notes (audited; the seal follows through its trigger)."""
    if category is not None:
        store.db.execute("UPDATE persons SET category = ? WHERE id = ?", (normalise_category(category), person_id))
    if notes is not None:
        store.db.execute("UPDATE persons SET notes = ? WHERE id = ?", (notes, person_id))
    store.audit("person.update", f"person:{person_id}", **({"category": category} if category is not None else {}),
                **({"notes": "changed"} if notes is not None else {}))


def expired_persons(store: Store, today: str) -> list[dict]:
    """Persons whose retention date is before ``today`` (ISO dates compare as text)."""
    rows = store.db.execute(
        "SELECT p.id, p.category, p.retain_until, (SELECT COUNT(*) FROM voiceprints v WHERE v.person_id = p.id) AS voiceprints "
        "FROM persons p WHERE p.retain_until IS NOT NULL AND p.retain_until != '' AND p.retain_until < ? ORDER BY p.id",
        (today,),
    )
    return [dict(r) for r in rows]


# =============================================================================================
# Web workbench, tamper-evident audit chain and four-eyes enrolment (schema version 4).
#
# Users and their sessions live beside the biometric data they guard. Each audit row carries
# ``hash = sha256(canonical row + prev_hash)`` so an edited or deleted row breaks the chain
# (``voiceprint audit verify``); triggers refuse UPDATE and DELETE on sealed rows. With four-eyes
# enrolment on, a new voiceprint of a person is stored ``pending`` and left out of the index
# until a supervisor approves it. Saved results let a report be built later by its id.
# =============================================================================================

import hashlib  # noqa: E402 - this section is self-contained

ROLES = ("technician", "investigator", "analyst", "supervisor")
AUDIT_GENESIS = "0" * 64

MIGRATIONS.append(
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('technician','investigator','analyst','supervisor')),
        password_hash TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until REAL NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE TABLE web_sessions (
        id TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_seen REAL NOT NULL
    );
    CREATE TABLE results (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        operator TEXT NOT NULL,
        created_at REAL NOT NULL,
        body TEXT NOT NULL
    );
    CREATE TABLE uploads (
        sha256 TEXT PRIMARY KEY,
        original_name TEXT NOT NULL,
        size INTEGER NOT NULL,
        uploaded_by TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    ALTER TABLE voiceprints ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE voiceprints ADD COLUMN enrolled_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE audit ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
    ALTER TABLE audit ADD COLUMN hash TEXT NOT NULL DEFAULT '';
    CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit WHEN OLD.hash != ''
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    """
)


def audit_row_hash(row_id: int, ts: float, operator: str, action: str, target: str, detail: str, prev_hash: str) -> str:
    """The chain hash of one audit row: SHA-256 over its canonical JSON and the previous row's hash."""
    body = json.dumps([int(row_id), repr(float(ts)), operator, action, target, detail, prev_hash], ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _chain_insert(store: Store, action: str, target: str, detail: str) -> None:
    """Append one chained audit row; the read of the chain head and the insert share one transaction."""
    own = not store.db.in_transaction
    if own:
        store.db.execute("BEGIN IMMEDIATE")
    try:
        last = store.db.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        row_id = (int(last[0]) + 1) if last else 1
        prev = (last[1] or AUDIT_GENESIS) if last else AUDIT_GENESIS
        ts = time.time()
        digest = audit_row_hash(row_id, ts, store.operator, action, target, detail, prev)
        store.db.execute(
            "INSERT INTO audit(id, ts, operator, action, target, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (row_id, ts, store.operator, action, target, detail, prev, digest),
        )
        if own:
            store.db.execute("COMMIT")
    except BaseException:
        if own and store.db.in_transaction:
            store.db.execute("ROLLBACK")
        raise


def seal_audit(store: Store) -> int:
    """Chain rows written before the chain existed (schema < 4): fills their empty hashes, once."""
    if store.db.execute("SELECT 1 FROM audit WHERE hash = '' LIMIT 1").fetchone() is None:
        return 0
    sealed = 0
    with store.transaction():
        prev = AUDIT_GENESIS
        for r in store.db.execute("SELECT id, ts, operator, action, target, detail, hash FROM audit ORDER BY id").fetchall():
            if r["hash"]:
                prev = r["hash"]
                continue
            digest = audit_row_hash(r["id"], r["ts"], r["operator"], r["action"], r["target"], r["detail"], prev)
            store.db.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?", (prev, digest, r["id"]))
            prev, sealed = digest, sealed + 1
    return sealed


def verify_audit_chain(store: Store) -> dict:
    """Walk the audit chain: ``ok``, row count, chain head, and the first broken row (if any).

    A row is broken when its hash does not match its content, when it does not point at the
    previous row's hash, or when an id is missing before it (a deleted row)."""
    prev, expected_id, count, head = AUDIT_GENESIS, 1, 0, AUDIT_GENESIS
    for r in store.db.execute("SELECT id, ts, operator, action, target, detail, prev_hash, hash FROM audit ORDER BY id"):
        problem = ""
        if r["id"] != expected_id:
            problem = f"row(s) {expected_id}..{r['id'] - 1} are missing (deleted)"
        elif r["prev_hash"] != prev:
            problem = "does not point at the previous row's hash (a row before it was changed, removed or inserted)"
        elif r["hash"] != audit_row_hash(r["id"], r["ts"], r["operator"], r["action"], r["target"], r["detail"], r["prev_hash"]):
            problem = "its content does not match its hash (the row was edited)"
        if problem:
            return {"ok": False, "rows": count, "head": head, "first_broken": {"id": int(r["id"]), "action": r["action"], "problem": problem}}
        prev, head, expected_id, count = r["hash"], r["hash"], expected_id + 1, count + 1
    return {"ok": True, "rows": count, "head": head, "first_broken": None}


def audit_chain_head(store: Store) -> dict:
    """The newest audit row's id and hash: quoted in every report so a court can check the trail."""
    row = store.db.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    return {"id": int(row[0]) if row else 0, "hash": (row[1] if row else "") or AUDIT_GENESIS}


def four_eyes(store: Store) -> bool:
    """Whether new enrolments wait for a supervisor's approval before they become searchable."""
    return store.get_meta("four_eyes", "0") == "1"


def pending_voiceprints(store: Store) -> list[dict]:
    """Enrolments waiting for approval, oldest first."""
    rows = store.db.execute(
        "SELECT v.id AS voiceprint, v.person_id, p.name AS person, p.category, v.enrolled_by, v.created_at, "
        "r.original_name AS file, r.sha256, r.net_speech, r.channel FROM voiceprints v "
        "JOIN persons p ON p.id = v.person_id JOIN recordings r ON r.id = v.recording_id WHERE v.pending = 1 ORDER BY v.id"
    ).fetchall()
    return [dict(r) for r in rows]


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
        store.audit("case.add_call", f"case:{case_id}", call=_rowid(cur))
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
