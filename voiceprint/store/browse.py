"""The workbench's listing and search queries (voiceprint.web.views): read-only, plain dicts.

The views audit each read; these functions only answer it."""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

from ._sql import CASE_VOICE_PERSON
from .schema import id_key

if TYPE_CHECKING:
    from . import Store


def folded(q: str | None) -> str:
    """A search as typed with a Chinese input method's full-width letters and digits (１３８…, ＡＪ２０２６) folded to the
    half-width form the library stores (NFKC), outer spaces removed."""
    return unicodedata.normalize("NFKC", q or "").strip()


def phone_digits(q: str | None) -> str:
    """The digits (and +) of a phone search, full-width ones included; empty when it holds none."""
    return re.sub(r"[^0-9+]", "", folded(q))


def search_persons(store: Store, q: str, limit: int) -> tuple[int, list[dict]]:
    """(total matches, the first ``limit``) for a name, ID number or phone fragment (all persons when empty); full-width
    input finds what its half-width form finds."""
    sql = ("SELECT p.id, p.name, p.id_number, p.category, (SELECT COUNT(*) FROM voiceprints v WHERE v.person_id = p.id AND v.pending = 0) "
           "AS voice_samples, (SELECT COUNT(*) FROM voiceprints v WHERE v.person_id = p.id AND v.pending = 1) AS pending FROM persons p")
    args: list = []
    text = folded(q)
    if text:
        sql += " WHERE p.name LIKE ? OR p.name LIKE ? OR p.id_number LIKE ?"
        args = [f"%{(q or '').strip()}%", f"%{text}%", f"%{id_key(text)}%"]
        digits = phone_digits(text)
        if digits:  # a query of no digits matches no phone (an empty pattern would match them all)
            sql += " OR p.id IN (SELECT person_id FROM phones WHERE number LIKE ?)"
            args.append(f"%{digits}%")
    total = store.db.execute(f"SELECT COUNT(*) FROM ({sql})", args).fetchone()[0]
    rows = [dict(r) for r in store.db.execute(sql + " ORDER BY p.id LIMIT ?", [*args, limit])]
    return int(total), rows


def person_recordings(store: Store, person_id: int) -> list[dict]:
    """A person's voiceprints (pending ones too) with their recordings, by id."""
    rows = store.db.execute(
        "SELECT v.id AS voiceprint, v.pending, r.original_name, r.sha256, r.net_speech, r.channel, r.codec, r.sample_rate "
        "FROM voiceprints v JOIN recordings r ON r.id = v.recording_id WHERE v.person_id = ? ORDER BY v.id", (int(person_id),)).fetchall()
    return [dict(r) for r in rows]


def search_cases(store: Store, q: str) -> list[dict]:
    """Cases whose number, title or area contains ``q``, with their person, phone and recording counts. A case number
    matches as :func:`voiceprint.store.case_key` keys it (full-width, lower case: ａｊ２０２６ finds AJ2026-0815)."""
    from . import case_key

    like, like_folded = f"%{(q or '').strip()}%", f"%{folded(q)}%"
    rows = store.db.execute(
        "SELECT c.*, (SELECT COUNT(*) FROM person_cases pc WHERE pc.case_id = c.id) AS persons, "
        "(SELECT COUNT(*) FROM phone_cases hc WHERE hc.case_id = c.id) AS phones, "
        "(SELECT COUNT(*) FROM case_voices cv WHERE cv.case_id = c.id) AS recordings "
        "FROM cases c WHERE case_key(c.case_number) LIKE ? OR c.title LIKE ? OR c.title LIKE ? OR c.area LIKE ? OR c.area LIKE ? "
        "ORDER BY c.case_number LIMIT 500", (f"%{case_key(q)}%", like, like_folded, like, like_folded))
    return [dict(r) for r in rows]


def case_card(store: Store, case_id: int) -> dict:
    """One case: its row, the persons and phones linked to it, and its recorded voices."""
    db = store.db
    row = dict(db.execute("SELECT * FROM cases WHERE id = ?", (case_id,)).fetchone())
    # linked to the case (enrolment, phones), or heard in one of its recordings (``heard``)
    people = [dict(r) for r in db.execute(
        "SELECT DISTINCT p.id, p.name, p.category, p.id IN (SELECT " + CASE_VOICE_PERSON + " FROM case_voices cv "
        "LEFT JOIN voiceprints vp ON vp.id = cv.voiceprint_id WHERE cv.case_id = :c) AS heard FROM persons p "
        "WHERE p.id IN (SELECT person_id FROM person_cases WHERE case_id = :c) "
        "OR p.id IN (SELECT ph.person_id FROM phone_cases pc JOIN phones ph ON ph.id = pc.phone_id WHERE pc.case_id = :c) "
        "OR p.id IN (SELECT " + CASE_VOICE_PERSON + " FROM case_voices cv LEFT JOIN voiceprints vp ON vp.id = cv.voiceprint_id "
        "WHERE cv.case_id = :c) ORDER BY p.id",
        {"c": case_id})]
    phones = [dict(r) for r in db.execute(
        "SELECT ph.number, ph.person_id, p.name AS person FROM phone_cases pc JOIN phones ph ON ph.id = pc.phone_id "
        "LEFT JOIN persons p ON p.id = ph.person_id WHERE pc.case_id = ? ORDER BY ph.number", (case_id,))]
    # a voice matched when it was filed, or promoted to a person since (once approved, in a four-eyes library)
    voices = [dict(r) for r in db.execute(
        f"SELECT cv.id, cv.voice, cv.net_speech, cv.voiceprint_id, {CASE_VOICE_PERSON} AS matched_person_id, cv.match_score, "
        "r.original_name, r.channel, p.name AS matched_person FROM case_voices cv JOIN recordings r ON r.id = cv.recording_id "
        f"LEFT JOIN voiceprints vp ON vp.id = cv.voiceprint_id LEFT JOIN persons p ON p.id = {CASE_VOICE_PERSON} "
        "WHERE cv.case_id = ? ORDER BY cv.id", (case_id,))]
    return {"case": row, "persons": people, "phones": phones, "recordings": voices}


def search_phones(store: Store, digits: str) -> list[dict]:
    """Phones whose number contains ``digits``: registered ones with their person and case count, and numbers known
    only as a case's calling number (no person); each with its calls to case victims."""
    like = f"%{digits}%"
    rows = store.db.execute(
        "SELECT number, person_id, person, category, cases, calls FROM ("
        " SELECT ph.number, ph.person_id, p.name AS person, p.category,"
        " (SELECT COUNT(*) FROM phone_cases pc WHERE pc.phone_id = ph.id) AS cases,"
        " (SELECT COUNT(*) FROM case_calls k WHERE k.number = ph.number) AS calls"
        " FROM phones ph LEFT JOIN persons p ON p.id = ph.person_id WHERE ph.number LIKE ?"
        " UNION ALL"
        " SELECT k.number, NULL, NULL, NULL, 0, COUNT(*) FROM case_calls k"
        " WHERE k.number LIKE ? AND NOT EXISTS (SELECT 1 FROM phones ph WHERE ph.number = k.number) GROUP BY k.number"
        ") ORDER BY number LIMIT 500", (like, like))
    return [dict(r) for r in rows]


def phone_row(store: Store, number: str) -> dict | None:
    """A phone's id, normalised number and registered person, or None."""
    row = store.db.execute("SELECT id, number, person_id FROM phones WHERE number = ?", (number,)).fetchone()
    return dict(row) if row is not None else None


def cases_of_phone(store: Store, phone_id: int) -> list[dict]:
    return [dict(r) for r in store.db.execute(
        "SELECT c.case_number, c.title, c.status FROM phone_cases pc JOIN cases c ON c.id = pc.case_id WHERE pc.phone_id = ? "
        "ORDER BY c.case_number", (phone_id,))]


def is_pending(store: Store, voiceprint_id: int) -> bool:
    """Whether a voiceprint waits for four-eyes approval."""
    return bool(store.db.execute("SELECT pending FROM voiceprints WHERE id = ?", (voiceprint_id,)).fetchone()[0])


def filtered_audit(store: Store, action: str = "", operator: str = "", since_ts: float | None = None, limit: int = 500) -> list[dict]:
    """Audit rows, newest first: action prefix, exact operator, from a timestamp."""
    sql = "SELECT id, ts, operator, action, target, detail, hash FROM audit WHERE 1=1"
    args: list = []
    if action:
        sql += " AND action LIKE ?"
        args.append(f"{action}%")
    if operator:
        sql += " AND operator = ?"
        args.append(operator)
    if since_ts is not None:
        sql += " AND ts >= ?"
        args.append(since_ts)
    return [dict(r) for r in store.db.execute(sql + " ORDER BY id DESC LIMIT ?", [*args, limit])]
