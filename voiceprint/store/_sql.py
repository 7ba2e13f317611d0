"""Connection helpers shared by the store's modules."""

from __future__ import annotations

import sqlite3


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

#: The person a case voice is: matched when it was filed, else the person its voiceprint was promoted to
#: (approved: a pending promotion is not yet anyone's). SQL over ``cv`` (case_voices) and ``vp`` (its voiceprint).
CASE_VOICE_PERSON = "coalesce(cv.matched_person_id, CASE WHEN vp.pending = 0 THEN vp.person_id END)"
