"""The case file (calling numbers recorded against cases) and the lead graph's tables (voiceprint.graph, voiceprint.fused).

Additive tables created on open when missing (IF NOT EXISTS; no schema version of their own), so
a library written before them gains them and an older voiceprint ignores them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError, LibraryError
from ..phones import normalize_number, number_refusal
from ._sql import CASE_VOICE_PERSON, _rowid
from .schema import CASEFILE_SCHEMA, CASEFILE_TABLES

if TYPE_CHECKING:
    from . import Store

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
        raise DataError(f"{number_refusal(number)} - give the calling number as the victim's bill shows it")
    case_id = store.case_id(case_number)
    victim = normalize_number(victim_number) if victim_number else ""
    if victim_number and not victim:
        raise DataError(f"victim number {number_refusal(victim_number)}")
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
        sql += " WHERE case_key(c.case_number) = case_key(?)"
        args = (case_number,)
    return [dict(r) for r in store.db.execute(sql + " ORDER BY c.case_number, k.called_at, k.number", args)]


def phone_calls(store: Store, number: str) -> list[dict]:
    """The calls a (normalised) number made to case victims, with each case's number, title and status, oldest first."""
    return [dict(r) for r in store.db.execute(
        "SELECT c.case_number, c.title, c.status, k.called_at, k.victim_number FROM case_calls k JOIN cases c ON c.id = k.case_id "
        "WHERE k.number = ? ORDER BY k.called_at, c.case_number", (number,))]


def keep_case_voice_vector(store: Store, case_voice_id: int, model: str, vector: np.ndarray, domain: str, net_speech: float) -> None:
    """Keep a case voice's voiceprint (also one matched to a person at filing) for the lead graph's voice evidence."""
    store.db.execute(
        "INSERT OR REPLACE INTO case_voice_vectors(case_voice_id, model, vector, domain, net_speech) VALUES (?, ?, ?, ?, ?)",
        (int(case_voice_id), model, np.asarray(vector, np.float32).tobytes(), domain, float(net_speech)))


def update_case_fields(store: Store, case_id: int, fields: dict) -> None:
    """Overwrite a case's area, title or status (only those names are accepted)."""
    sets = {k: v for k, v in fields.items() if k in ("area", "title", "status")}
    if sets:
        store.db.execute(f"UPDATE cases SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?", (*sets.values(), case_id))  # noqa: S608


def open_case_numbers(store: Store) -> list[str]:
    return [r[0] for r in store.db.execute("SELECT case_number FROM cases WHERE status NOT IN ('closed', 'solved') ORDER BY case_number")]


def audit_touching(store: Store, sha_prefix: str) -> list[sqlite3.Row]:
    """Audit rows whose target or detail names a recording by its SHA-256 (or a prefix of it, as the
    workbench's rows do: 16 hex), oldest first."""
    prefix = sha_prefix[:16]
    return store.db.execute("SELECT id, ts, operator, action, target, hash FROM audit WHERE target LIKE ? OR detail LIKE ? ORDER BY id",
                            (f"sha256:{prefix}%", f"%{prefix}%")).fetchall()


# -- the lead graph's inputs (voiceprint.graph builders) ----------------------------------------
def last_audit_id_except(store: Store, actions: tuple[str, ...]) -> int:
    """The newest audit row id whose action is not one of ``actions`` nor a workbench page view (``*.view``; 0 when none)."""
    marks = ",".join("?" * len(actions))
    return int(store.db.execute(f"SELECT COALESCE(MAX(id), 0) FROM audit WHERE action NOT IN ({marks}) AND action NOT LIKE '%.view'",
                                actions).fetchone()[0])


def enrolled_count_and_top(store: Store, model: str) -> tuple[int, int]:
    """(number, highest id) of the voiceprints of persons under ``model``."""
    n, top = store.db.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM voiceprints WHERE person_id IS NOT NULL AND model = ?",
                              (model,)).fetchone()
    return int(n), int(top)


def registered_phones(store: Store) -> list[tuple[str, int]]:
    """(number, person id) of every phone registered to a person."""
    return [(r[0], int(r[1])) for r in store.db.execute("SELECT number, person_id FROM phones WHERE person_id IS NOT NULL")]


def id_numbers(store: Store) -> list[tuple[int, str]]:
    """(person id, ID number) of every person with an ID number."""
    return [(int(r[0]), r[1]) for r in store.db.execute("SELECT id, id_number FROM persons WHERE id_number != ''")]


def call_rows(store: Store) -> list[tuple[str, str, str, str]]:
    """(case number, calling number, called at, victim number) of the case file's calls, by call time."""
    return [tuple(r) for r in store.db.execute(
        "SELECT c.case_number, k.number, k.called_at, k.victim_number FROM case_calls k JOIN cases c ON c.id = k.case_id"
        " ORDER BY k.called_at")]


def heard_in_rows(store: Store) -> list[sqlite3.Row]:
    """(case voice id, case number, file, channel, voice, segments JSON, net speech, matched person) of every case voice."""
    return store.db.execute(
        "SELECT cv.id, c.case_number, r.original_name, r.channel, cv.voice, cv.segments, cv.net_speech,"
        f" {CASE_VOICE_PERSON} AS matched_person_id FROM case_voices cv JOIN cases c ON c.id = cv.case_id"
        " JOIN recordings r ON r.id = cv.recording_id LEFT JOIN voiceprints vp ON vp.id = cv.voiceprint_id").fetchall()


def case_voice_clusters(store: Store) -> list[tuple[int, int, str]]:
    """(case voice id, cluster id, cluster status) for case voices in a cluster not yet promoted to a person."""
    return [(int(r[0]), int(r[1]), r[2]) for r in store.db.execute(
        "SELECT cv.id, m.cluster_id, k.status FROM case_voices cv JOIN cluster_members m ON m.voiceprint_id = cv.voiceprint_id"
        " JOIN voice_clusters k ON k.id = m.cluster_id WHERE k.status != 'promoted'")]


def case_voice_vectors(store: Store, model: str, only_unsearched: bool = False, case_id: int | None = None) -> list[sqlite3.Row]:
    """(case voice id, case number, raw vector blob, domain, rate, codec, net speech) of the filed case voices;
    ``only_unsearched``: those the voice origin has not searched yet; ``case_id``: one case's."""
    where = (["'voice:' || cv.id NOT IN (SELECT src FROM lead_edges WHERE origin = 'voice' AND kind = 'searched')"] if only_unsearched else [])
    where += [f"cv.case_id = {int(case_id)}"] if case_id is not None else []
    only = "WHERE " + " AND ".join(where) if where else ""
    return store.db.execute(
        "SELECT cv.id, c.case_number, COALESCE(x.vector, v.vector), COALESCE(x.domain, ''), r.sample_rate, r.codec,"
        " COALESCE(x.net_speech, cv.net_speech) FROM case_voices cv JOIN cases c ON c.id = cv.case_id"
        " JOIN recordings r ON r.id = cv.recording_id LEFT JOIN case_voice_vectors x ON x.case_voice_id = cv.id AND x.model = ?"
        " LEFT JOIN voiceprints v ON v.id = cv.voiceprint_id AND v.model = ? " + only + " ORDER BY cv.id",
        (model, model)).fetchall()


def case_call_numbers(store: Store) -> list[tuple[str, str]]:
    """(case number, calling number) of every recorded call."""
    return [(r[0], r[1]) for r in store.db.execute("SELECT c.case_number, k.number FROM case_calls k JOIN cases c ON c.id = k.case_id")]


# -- the lead graph itself ----------------------------------------------------------------------
def lead_fingerprint(store: Store, origin: str) -> str | None:
    """The fingerprint an origin's edges were last built at, or None if never built."""
    row = store.db.execute("SELECT fingerprint FROM lead_state WHERE origin = ?", (origin,)).fetchone()
    return row[0] if row else None


def screened_calling_numbers(store: Store) -> tuple[int, int]:
    """(how many of the numbers that called case victims have a CDR score, how many such numbers there are)."""
    total, screened = store.db.execute(
        "SELECT count(DISTINCT k.number), count(DISTINCT e.src) FROM case_calls k"
        " LEFT JOIN lead_edges e ON e.origin = 'cdr' AND e.src = 'number:' || k.number").fetchone()
    return int(screened), int(total)


def store_lead_edges(store: Store, origin: str, edges: list, full: bool, fingerprint: str) -> int:
    """Replace (``full``) or extend an origin's edges and record its fingerprint (caller holds a transaction); total edges."""
    if full:
        store.db.execute("DELETE FROM lead_edges WHERE origin = ?", (origin,))
    store.db.executemany(
        "INSERT INTO lead_edges(origin, src, dst, kind, log10_lr, evidence) VALUES (?, ?, ?, ?, ?, ?)",
        ((origin, s, d, k, w, json.dumps(ev, ensure_ascii=False)) for s, d, k, w, ev in edges))
    total = int(store.db.execute("SELECT COUNT(*) FROM lead_edges WHERE origin = ?", (origin,)).fetchone()[0])
    store.db.execute(
        "INSERT INTO lead_state(origin, fingerprint, built_at, edges) VALUES (?, ?, ?, ?) ON CONFLICT(origin) DO UPDATE"
        " SET fingerprint = excluded.fingerprint, built_at = excluded.built_at, edges = excluded.edges",
        (origin, fingerprint, time.time(), total))
    return total


def lead_edge_pairs(store: Store, origin: str, kind: str | None = None) -> list[tuple[str, str]]:
    """(src, dst) of an origin's edges (of one kind)."""
    if kind is None:
        return [(r[0], r[1]) for r in store.db.execute("SELECT src, dst FROM lead_edges WHERE origin = ?", (origin,))]
    return [(r[0], r[1]) for r in store.db.execute("SELECT src, dst FROM lead_edges WHERE origin = ? AND kind = ?", (origin, kind))]


def all_lead_edges(store: Store) -> list[tuple]:
    """(origin, src, dst, kind, log10 LR, evidence JSON) of every edge."""
    return [tuple(r) for r in store.db.execute("SELECT origin, src, dst, kind, log10_lr, evidence FROM lead_edges")]


def persons_with_sample_counts(store: Store) -> list[dict]:
    """Every person's id, name, ID number, category and number of voiceprints."""
    return [dict(r) for r in store.db.execute(
        "SELECT p.id, p.name, p.id_number, p.category, (SELECT COUNT(*) FROM voiceprints v WHERE v.person_id = p.id) AS voice_samples"
        " FROM persons p")]
