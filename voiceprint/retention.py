"""Retention dates: a person may carry ``retain_until`` (ISO date); ``apply_retention`` erases every
person whose date has passed, the same way ``person delete`` does (audited, secure_delete, WAL
truncated). Phones and case links stay: they are case data, not biometric data.
"""

from __future__ import annotations

import datetime as _dt

from .errors import DataError
from .store import expired_persons
from .store import set_retention as _store_set_retention
from .store import update_person as _store_update_person


def parse_date(text: str | None, clearable: bool = True) -> str | None:
    """``YYYY-MM-DD`` -> the same ISO text; ``none``/empty -> None (no retention date, when ``clearable``)."""
    if text is None or (clearable and text.strip().lower() in ("", "none", "never")):
        return None
    try:
        return _dt.date.fromisoformat(text.strip()).isoformat()
    except ValueError as err:
        clear = " (or 'none' to clear it)" if clearable else ""
        raise DataError(f"{text!r} is not a date - write it as YYYY-MM-DD{clear}") from err


def set_retention(lib, person, retain_until: str | None) -> None:
    """Set or clear (None, 'none') a person's retention date (audited)."""
    date = parse_date(retain_until)
    with lib.store.transaction():
        _store_set_retention(lib.store, int(lib.store.find_person(person)["id"]), date)


def update_person(lib, person, category: str | None = None, notes: str | None = None, retain_until: str | None = None,
                  clear_retention: bool = False, name: str | None = None) -> dict:
    """Change a person's category, notes, name or retention date (audited); returns the person's card."""
    pid = int(lib.store.find_person(person)["id"])
    date = parse_date(retain_until)
    with lib.store.transaction():
        if category is not None or notes is not None or name is not None:
            _store_update_person(lib.store, pid, category, notes, name)
        if date is not None or clear_retention:
            _store_set_retention(lib.store, pid, date)
    return lib.person(pid)


def apply_retention(lib, as_of: str | None = None, dry_run: bool = False) -> dict:
    """Erase every person whose retention date is before ``as_of`` (default today).

    One transaction for all of them, then one index save and one WAL checkpoint; each erasure is
    audited as ``person.delete`` plus ``retention.erase`` (with its date), the run as ``retention.apply``.
    """
    today = (parse_date(as_of, clearable=False) if as_of else None) or _dt.date.today().isoformat()
    if not dry_run and today > _dt.date.today().isoformat():
        from .errors import DataError

        # erasing a person whose retention date has not come is a deletion no retention rule asked for
        raise DataError(f"--as-of {today} is in the future: it would erase persons whose retention date has not passed - "
                        "use --dry-run to see who they are, or `person delete` to erase one on purpose")
    with lib.writing():
        due = expired_persons(lib.store, today)
        result = {"as_of": today, "dry_run": dry_run, "persons": due, "erased": 0, "voiceprints": 0}
        if dry_run or not due:
            return result
        with lib.store.transaction():
            for p in due:
                gone = lib.store.delete_person(p["id"])
                lib.store.audit("retention.erase", f"person:{p['id']}", retain_until=p["retain_until"],
                                voiceprints=gone["voiceprints"])
                result["voiceprints"] += gone["voiceprints"]
            result["erased"] = len(due)
            lib.store.audit("retention.apply", "", as_of=today, persons=len(due), voiceprints=result["voiceprints"])
        result |= lib.finish_erasures()
    return result
