"""Web workbench, tamper-evident audit chain and four-eyes enrolment (schema version 4).

Users and their sessions live beside the biometric data they guard. Each audit row carries
``hash = sha256(canonical row + prev_hash)`` so an edited or deleted row breaks the chain
(``voiceprint audit verify``); triggers refuse UPDATE and DELETE on sealed rows. With four-eyes
enrolment on, a new voiceprint of a person is stored ``pending`` and left out of the index
until a supervisor approves it. Saved results let a report be built later by its id.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import Store

ROLES = ("technician", "investigator", "analyst", "supervisor")
AUDIT_GENESIS = "0" * 64



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
