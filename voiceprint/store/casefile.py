"""The case file (calling numbers recorded against cases) and the lead graph's tables (voiceprint.graph, voiceprint.fused).

Additive tables created on open when missing (IF NOT EXISTS; no schema version of their own), so
a library written before them gains them and an older voiceprint ignores them.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING

import numpy as np

from ..errors import LibraryError
from ..phones import normalize_number
from ._sql import _rowid
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
