"""The web workbench's rows: users, their server-side sessions, four-eyes review of pending
voiceprints, saved results and uploads (schema version 4). Only SQL lives here: password hashing,
lockout policy and HTTP stay in voiceprint.web.accounts; callers hold the transactions."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import TYPE_CHECKING

from ._sql import _rowid

if TYPE_CHECKING:
    from . import Store


# -- users -------------------------------------------------------------------------------------
def user_exists(store: Store, name: str) -> bool:
    return store.db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone() is not None


def insert_user(store: Store, name: str, role: str, password_hash: str) -> int:
    cur = store.db.execute("INSERT INTO users(name, role, password_hash, created_at) VALUES (?, ?, ?, ?)",
                           (name, role, password_hash, time.time()))
    return _rowid(cur)


def user_rows(store: Store) -> list[sqlite3.Row]:
    """Every user without the password hash, by id."""
    return store.db.execute("SELECT id, name, role, disabled, failed_logins, locked_until, created_at FROM users ORDER BY id").fetchall()


def user_row(store: Store, name: str) -> sqlite3.Row | None:
    """The whole user row (password hash included), or None."""
    return store.db.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()


def user_brief(store: Store, name: str) -> sqlite3.Row | None:
    """A user's id, name, role and disabled flag, or None."""
    return store.db.execute("SELECT id, name, role, disabled FROM users WHERE name = ?", (name,)).fetchone()


def set_user_disabled(store: Store, user_id: int, disabled: bool) -> None:
    store.db.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user_id))


def set_user_password(store: Store, user_id: int, password_hash: str) -> None:
    """A new password hash; the failure count and any lock are cleared with it."""
    store.db.execute("UPDATE users SET password_hash = ?, failed_logins = 0, locked_until = 0 WHERE id = ?", (password_hash, user_id))


def set_login_failures(store: Store, user_id: int, failed: int, locked_until: float) -> None:
    store.db.execute("UPDATE users SET failed_logins = ?, locked_until = ? WHERE id = ?", (failed, locked_until, user_id))


# -- sessions ----------------------------------------------------------------------------------
def insert_session(store: Store, sid: str, user_id: int, csrf: str, now: float) -> None:
    store.db.execute("INSERT INTO web_sessions(id, user_id, csrf, created_at, last_seen) VALUES (?, ?, ?, ?, ?)",
                     (sid, user_id, csrf, now, now))


def session_row(store: Store, sid: str) -> sqlite3.Row | None:
    """The session joined with its user (sid, csrf, last_seen, id, name, role, disabled), or None."""
    return store.db.execute(
        "SELECT s.id AS sid, s.csrf, s.last_seen, u.id, u.name, u.role, u.disabled FROM web_sessions s "
        "JOIN users u ON u.id = s.user_id WHERE s.id = ?", (sid,)).fetchone()


def touch_session(store: Store, sid: str, now: float) -> None:
    store.db.execute("UPDATE web_sessions SET last_seen = ? WHERE id = ?", (now, sid))


def delete_session(store: Store, sid: str) -> None:
    store.db.execute("DELETE FROM web_sessions WHERE id = ?", (sid,))


def delete_user_sessions(store: Store, user_id: int) -> None:
    store.db.execute("DELETE FROM web_sessions WHERE user_id = ?", (user_id,))


# -- four-eyes review --------------------------------------------------------------------------
def pending_row(store: Store, voiceprint_id: int) -> sqlite3.Row | None:
    """A voiceprint's id, person, recording, pending flag and enroller, or None."""
    return store.db.execute("SELECT id, person_id, recording_id, pending, enrolled_by FROM voiceprints WHERE id = ?",
                            (int(voiceprint_id),)).fetchone()


def approve_voiceprint(store: Store, voiceprint_id: int) -> None:
    store.db.execute("UPDATE voiceprints SET pending = 0 WHERE id = ?", (voiceprint_id,))


def reject_voiceprint(store: Store, voiceprint_id: int, recording_id: int) -> list[str]:
    """Delete a rejected voiceprint, and its recording (with its upload row) when no other voiceprint uses
    it; the SHA-256 of an upload whose file the caller must erase."""
    sha = store.db.execute("SELECT sha256 FROM recordings WHERE id = ?", (recording_id,)).fetchone()
    store.db.execute("DELETE FROM voiceprints WHERE id = ?", (voiceprint_id,))
    store.db.execute("DELETE FROM recordings WHERE id = ? AND id NOT IN (SELECT recording_id FROM voiceprints)", (recording_id,))
    return store.forget_uploads([sha[0]]) if sha else []


def made_by_enrolment(store: Store, person_id: int) -> bool:
    """Whether an enrolment or a promotion of unknown voices made this person (an ``enrol`` audit row since
    the person's creation saying ``new_person``, or a ``link.promote`` row), rather than ``person add`` or an
    import. Only rows since the person's creation count: in a library from before ``Store.fresh_id`` a
    person's id may once have been a deleted person's."""
    person = store.db.execute("SELECT created_at FROM persons WHERE id = ?", (int(person_id),)).fetchone()
    if person is None:
        return False
    for action, detail in store.db.execute("SELECT action, detail FROM audit WHERE action IN ('enrol', 'link.promote') AND ts >= ?",
                                           (float(person["created_at"]) - 1.0,)):
        info = json.loads(detail or "{}")
        if info.get("person") == int(person_id) and (action == "link.promote" or info.get("new_person")):
            return True
    return False


def has_voiceprints(store: Store, person_id: int) -> bool:
    return store.db.execute("SELECT 1 FROM voiceprints WHERE person_id = ? LIMIT 1", (int(person_id),)).fetchone() is not None


# -- saved results and uploads -----------------------------------------------------------------
def insert_result(store: Store, rid: str, kind: str, body_json: str) -> None:
    store.db.execute("INSERT INTO results(id, kind, operator, created_at, body) VALUES (?, ?, ?, ?, ?)",
                     (rid, kind, store.operator, time.time(), body_json))


ERASED_PERSON = {"id": None, "name": "(erased person)", "category": ""}


def redact_results(store: Store, person_id: int) -> list[str]:
    """Take an erased person out of the saved query results (their hits: name, phones, cases, best
    sample; a warning that named them). The comparison's figures stay, so a saved result still shows
    that a hit was there. Returns the result ids changed (the caller's transaction)."""
    changed = []
    for rid, body in store.db.execute("SELECT id, body FROM results WHERE kind = 'query' AND body LIKE ?",
                                      (f'%"id": {int(person_id)},%',)).fetchall():
        data = json.loads(body)
        touched = False
        for voice in data.get("voices", []):
            for hit in voice.get("hits", []):
                if (hit.get("person") or {}).get("id") == int(person_id):
                    hit.update(person=dict(ERASED_PERSON), phones=[], cases=[], sample=None)
                    touched = True
            kept = [w for w in voice.get("warnings", []) if f"person {int(person_id)} (" not in w]
            if len(kept) != len(voice.get("warnings", [])):
                voice["warnings"] = kept + ["a hit on this recording was a person since erased"]
                touched = True
        if touched:
            store.db.execute("UPDATE results SET body = ? WHERE id = ?", (json.dumps(data, ensure_ascii=False), rid))
            changed.append(rid)
    return changed


def result_row(store: Store, rid: str) -> sqlite3.Row | None:
    return store.db.execute("SELECT * FROM results WHERE id = ?", (rid,)).fetchone()


def insert_upload(store: Store, sha256: str, original_name: str, size: int) -> None:
    """Record an upload once (a second upload of the same content keeps the first row)."""
    store.db.execute("INSERT OR IGNORE INTO uploads(sha256, original_name, size, uploaded_by, created_at) VALUES (?, ?, ?, ?, ?)",
                     (sha256, original_name, size, store.operator, time.time()))


def upload_known(store: Store, sha256: str) -> bool:
    return store.db.execute("SELECT 1 FROM uploads WHERE sha256 = ?", (sha256,)).fetchone() is not None
