"""The SQL of moving a library to a new speaker model (:mod:`voiceprint.reembed`).

Phase 1 inserts, beside each person voiceprint of the old model, one of the new model for the same
recording and person; phase 2 (:func:`switch_model`, one transaction) points the case links at the
new rows, removes the old person voiceprints, switches the library's model and reseals.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import numpy as np

from ._sql import _rowid
from .integrity import reseal_all

if TYPE_CHECKING:
    from . import Store

#: Tables whose columns name a voiceprint (case links): pointed at the new voiceprint at the switch.
_REFERENCES = (("case_voices", "voiceprint_id"), ("cluster_members", "voiceprint_id"), ("cannot_link", "a"), ("cannot_link", "b"))


def person_voiceprints(store: Store, old: str, new: str) -> list[dict]:
    """Every person voiceprint of model ``old``, with its recording and the id of its ``new`` twin (or None)."""
    rows = store.db.execute(
        "SELECT v.id, v.recording_id, v.person_id, v.pending, v.enrolled_by, r.sha256, r.channel, r.original_name, r.quality, "
        " (SELECT w.id FROM voiceprints w WHERE w.recording_id = v.recording_id AND w.person_id = v.person_id AND w.model = ?) AS twin, "
        " (SELECT cv.segments FROM case_voices cv WHERE cv.voiceprint_id = v.id ORDER BY cv.id LIMIT 1) AS case_segments "
        "FROM voiceprints v JOIN recordings r ON r.id = v.recording_id "
        "WHERE v.model = ? AND v.person_id IS NOT NULL ORDER BY v.id", (new, old)).fetchall()
    out = []
    for r in rows:
        row = dict(r)
        row["quality"] = json.loads(row["quality"] or "{}")
        row["case_segments"] = json.loads(row["case_segments"]) if row["case_segments"] else None
        out.append(row)
    return out


def count_unknown_voiceprints(store: Store, model: str) -> int:
    """Voiceprints of no person (unknown case voices) of ``model``."""
    return int(store.db.execute("SELECT COUNT(*) FROM voiceprints WHERE model = ? AND person_id IS NULL", (model,)).fetchone()[0])


def add_twin(store: Store, old: dict, model: str, vector: np.ndarray) -> int:
    """The new model's voiceprint of ``old``'s recording and person, with its approval state and enrolling operator."""
    cur = store.db.execute(
        "INSERT INTO voiceprints(id, recording_id, person_id, model, vector, created_at, pending, enrolled_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (store.fresh_id("voiceprints"), old["recording_id"], old["person_id"], model, np.asarray(vector, np.float32).tobytes(),
         time.time(), old["pending"], old["enrolled_by"]))
    return _rowid(cur)


def switch_model(store: Store, old: str, spec) -> dict:
    """Point case links at the twins, delete ``old``'s person voiceprints, bind the library to ``spec``
    and reseal every row (the caller holds the transaction and has checked the seals first)."""
    pairs = store.db.execute(
        "SELECT v.id, w.id FROM voiceprints v JOIN voiceprints w ON w.recording_id = v.recording_id "
        "AND w.person_id = v.person_id AND w.model = ? WHERE v.model = ? AND v.person_id IS NOT NULL", (spec.name, old)).fetchall()
    relinked = 0
    for table, column in _REFERENCES:
        for old_id, new_id in pairs:
            relinked += store.db.execute(f"UPDATE {table} SET {column} = ? WHERE {column} = ?", (new_id, old_id)).rowcount  # noqa: S608
    removed = store.db.execute("DELETE FROM voiceprints WHERE model = ? AND person_id IS NOT NULL", (old,)).rowcount
    store.set_meta("model", spec.name)
    store.set_meta("model_fingerprint", spec.fingerprint)
    store.set_meta("embedding_dim", str(spec.embedding_dim))
    resealed = reseal_all(store)  # the seals name the library's model fingerprint, which just changed
    store.bump_generation()
    return {"removed_old": int(removed), "relinked": relinked, "resealed": resealed["voiceprints"]}
