"""Users, roles, sessions, four-eyes approvals and saved results, all in the library database.

Passwords are argon2id hashes (argon2-cffi). Failed logins lock an account for a growing time;
sessions are server-side rows (the cookie only carries a signed random id), so logging out or
disabling a user ends every session at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path

from ..errors import DataError, LibraryError, NotFound
from ..library import upload_path
from ..store import ROLES, Store, four_eyes
from ..store import accounts as rows

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 10
#: Consecutive failures allowed before an account is locked; the lock doubles with each further failure.
FREE_FAILURES = 5
LOCK_BASE_S = 30.0
LOCK_MAX_S = 900.0


class AuthFailed(Exception):
    """A login that did not succeed; ``str`` is what the login page may show (never which part was wrong)."""


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()


def check_role(role: str) -> str:
    role = (role or "").strip().lower()
    if role not in ROLES:
        raise DataError(f"unknown role {role!r} - use one of: {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise DataError(f"the password is too short - use at least {MIN_PASSWORD} characters")
    return password


def add_user(store: Store, name: str, role: str, password: str) -> int:
    """Create a user; names are unique and never reused for another person."""
    if not NAME_RE.match(name or ""):
        raise DataError(f"invalid user name {name!r} - use letters, digits, '.', '_', '-' or '@' (at most 64)")
    role = check_role(role)
    digest = _hasher().hash(check_password(password))
    with store.transaction():
        if rows.user_exists(store, name):
            raise DataError(f"user {name!r} already exists - choose another name, or `voiceprint user passwd {name}`")
        user_id = rows.insert_user(store, name, role, digest)
        store.audit("user.add", f"user:{user_id}", role=role)
    return user_id


def list_users(store: Store) -> list[dict]:
    return [dict(r) | {"disabled": bool(r["disabled"])} for r in rows.user_rows(store)]


def get_user(store: Store, name: str) -> dict:
    row = rows.user_row(store, name)
    if row is None:
        raise NotFound(f"no user {name!r} - see `voiceprint user list`")
    return dict(row)


def set_disabled(store: Store, name: str, disabled: bool = True) -> None:
    user = get_user(store, name)
    with store.transaction():
        rows.set_user_disabled(store, user["id"], disabled)
        if disabled:
            rows.delete_user_sessions(store, user["id"])
        store.audit("user.disable" if disabled else "user.enable", f"user:{user['id']}")


def set_password(store: Store, name: str, password: str) -> None:
    user = get_user(store, name)
    digest = _hasher().hash(check_password(password))
    with store.transaction():
        rows.set_user_password(store, user["id"], digest)
        rows.delete_user_sessions(store, user["id"])
        store.audit("user.passwd", f"user:{user['id']}")


_DUMMY_HASH: list[str] = []
#: failed logins under names that are no account: (failures, locked until). They lock like an account
#: does, so the lock message cannot tell a real name from a made-up one. Bounded: the oldest go first.
_UNKNOWN_FAILURES: dict[str, tuple[int, float]] = {}
UNKNOWN_NAMES_KEPT = 10_000


def _lock_until(failures: int, now: float) -> float:
    return 0.0 if failures < FREE_FAILURES else now + min(LOCK_MAX_S, LOCK_BASE_S * 2 ** (failures - FREE_FAILURES))


def _locked_message(until: float, now: float) -> str:
    return f"too many failed logins - try again in {int(until - now) + 1} s"


def user_exists(store: Store, name: str) -> bool:
    return rows.user_row(store, name) is not None


def authenticate(store: Store, name: str, password: str, client: str = "") -> dict:
    """The user for a name and password, or :class:`AuthFailed`. Every attempt is audited, with the
    ``client`` address it came from (the workbench's; none on the command line)."""
    from argon2.exceptions import VerificationError

    where = {"client": client} if client else {}

    now = time.time()
    row = rows.user_row(store, name)
    hasher = _hasher()
    if row is None:
        if not _DUMMY_HASH:
            _DUMMY_HASH.append(hasher.hash(secrets.token_hex(8)))
        failures, until = _UNKNOWN_FAILURES.pop(name, (0, 0.0))
        if until > now:
            _UNKNOWN_FAILURES[name] = (failures, until)
            with store.transaction():
                store.audit("login.refused", "", reason="locked", **where)
            raise AuthFailed(_locked_message(until, now))
        try:  # the same work as for a real user, so timing does not tell which names exist
            hasher.verify(_DUMMY_HASH[0], password or "")
        except VerificationError:
            pass
        _UNKNOWN_FAILURES[name] = (failures + 1, _lock_until(failures + 1, now))
        while len(_UNKNOWN_FAILURES) > UNKNOWN_NAMES_KEPT:
            del _UNKNOWN_FAILURES[next(iter(_UNKNOWN_FAILURES))]
        with store.transaction():
            store.audit("login.failed", "", reason="unknown user", **where)
        raise AuthFailed("wrong user name or password")
    if row["locked_until"] > now:
        with store.transaction():
            store.audit("login.refused", f"user:{row['id']}", reason="locked", **where)
        raise AuthFailed(_locked_message(row["locked_until"], now))
    try:
        hasher.verify(row["password_hash"], password or "")
        ok = True
    except VerificationError:
        ok = False
    refusal = ""
    with store.transaction():  # the failure count and the audit row must commit, so nothing raises in here
        if not ok:
            failed = int(row["failed_logins"]) + 1
            lock = _lock_until(failed, now)
            rows.set_login_failures(store, row["id"], failed, lock)
            store.audit("login.failed", f"user:{row['id']}", failures=failed, **where)
            refusal = "wrong user name or password"
        elif row["disabled"]:
            store.audit("login.refused", f"user:{row['id']}", reason="disabled", **where)
            refusal = "this account is disabled - ask a supervisor"
        else:
            rows.set_login_failures(store, row["id"], 0, 0)
            store.audit("login", f"user:{row['id']}", **where)
    if refusal:
        raise AuthFailed(refusal)
    return {"id": int(row["id"]), "name": row["name"], "role": row["role"]}


# -- sessions ----------------------------------------------------------------------------------
def create_session(store: Store, user_id: int) -> tuple[str, str]:
    sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = time.time()
    with store.transaction():
        rows.insert_session(store, sid, user_id, csrf, now)
    return sid, csrf


def session_user(store: Store, sid: str, idle_timeout: float) -> dict | None:
    """The session's user (with its CSRF token), or None when unknown, idle too long or disabled."""
    now = time.time()
    row = rows.session_row(store, sid)
    if row is None:
        return None
    if row["disabled"] or now - row["last_seen"] > idle_timeout:
        end_session(store, sid)
        return None
    if now - row["last_seen"] > 5:  # keep the write rate low
        rows.touch_session(store, sid, now)
    return {"id": int(row["id"]), "name": row["name"], "role": row["role"], "csrf": row["csrf"], "sid": sid}


def end_session(store: Store, sid: str) -> None:
    rows.delete_session(store, sid)


# -- four-eyes enrolment -----------------------------------------------------------------------
def set_four_eyes(store: Store, on: bool) -> None:
    with store.transaction():
        store.set_meta("four_eyes", "1" if on else "0")
        store.audit("four_eyes.on" if on else "four_eyes.off")


def _supervisor(store: Store, name: str) -> dict:
    row = rows.user_brief(store, name)
    if row is None or row["role"] != "supervisor" or row["disabled"]:
        raise LibraryError(f"{name!r} is not an active supervisor - only a supervisor can approve or reject enrolments")
    return dict(row)


def review(lib, voiceprint_ids: list[int], approver: str, approve: bool = True, note: str = "") -> list[dict]:
    """Approve (make searchable) or reject (delete) pending enrolments; a supervisor other than the enroller."""
    store = lib.store
    try:
        _supervisor(store, approver)
        return _review(lib, voiceprint_ids, approver, approve, note)
    except (NotFound, LibraryError) as err:  # a refused decision is on record too: who tried to approve what
        with store.transaction():
            store.audit("enrol.review_refused", ",".join(f"voiceprint:{v}" for v in voiceprint_ids)[:200], approver=approver,
                        decision="approve" if approve else "reject", reason=str(err)[:300])
        raise


def _review(lib, voiceprint_ids: list[int], approver: str, approve: bool, note: str) -> list[dict]:
    store = lib.store
    done = []
    erased: list[str] = []
    with lib.writing():
        with store.transaction():
            for vid in voiceprint_ids:
                row = rows.pending_row(store, vid)
                if row is None or not row["pending"]:
                    raise NotFound(f"voiceprint {vid} is not waiting for approval - see `voiceprint approve --list`")
                if row["enrolled_by"] == approver:
                    raise LibraryError(f"voiceprint {vid} was enrolled by {approver}; four eyes means another supervisor approves it")
                if approve:
                    rows.approve_voiceprint(store, row["id"])
                elif not store.return_to_unknown(row["id"]):  # a promoted case voice stays the case's, unknown again
                    erased += rows.reject_voiceprint(store, row["id"], row["recording_id"])
                store.audit("enrol.approve" if approve else "enrol.reject", f"voiceprint:{row['id']}", person=row["person_id"],
                            enrolled_by=row["enrolled_by"], **({"note": note} if note else {}))
                if not approve and not rows.has_voiceprints(store, row["person_id"]) and rows.made_by_enrolment(store, row["person_id"]):
                    # the rejected sample made this person (an enrolment, or a promotion of unknown voices): the person
                    # and their case links go too; their numbers stay, registered to no one (Store.delete_person)
                    erased += store.delete_person(int(row["person_id"]))["uploads_erased"]
                    store.reopen_orphan_clusters()
                done.append({"voiceprint": int(row["id"]), "person_id": row["person_id"], "approved": approve})
            store.bump_generation()
            if erased:
                store.note_erasure(uploads=erased)
        lib.save_index()
        lib.finish_erasures()
    return done


def four_eyes_on(store: Store) -> bool:
    return four_eyes(store)


# -- saved results and uploads -----------------------------------------------------------------
def save_result(store: Store, kind: str, body: dict) -> str:
    rid = secrets.token_hex(8)
    with store.transaction():
        rows.insert_result(store, rid, kind, json.dumps(body, ensure_ascii=False, default=_plain))
        store.audit("result.save", f"result:{rid}", kind=kind)
    return rid


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def load_result(store: Store, rid: str) -> dict:
    row = rows.result_row(store, rid)
    if row is None:
        raise NotFound(f"no saved result {rid!r} - the id is printed by `voiceprint report` and shown on the query page")
    return {"id": row["id"], "kind": row["kind"], "operator": row["operator"], "created_at": row["created_at"],
            "body": json.loads(row["body"])}




def keep_upload(lib, src: Path, sha256: str, original_name: str, size: int) -> Path:
    """Move a decoded, checked upload to its content address under the library (0600 in 0700 folders)."""
    dest = upload_path(lib.root, sha256)
    for folder in (dest.parent.parent, dest.parent):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    moved = not dest.exists()
    if moved:
        shutil.move(str(src), dest)
        os.chmod(dest, 0o600)
    else:
        os.unlink(src)
    try:
        with lib.store.transaction():
            rows.insert_upload(lib.store, sha256, original_name, size)
            lib.store.audit("upload", f"sha256:{sha256[:16]}", size=size)
    except BaseException:  # (a full disk) a file the library has no row for would be kept for ever: it goes
        if moved:
            dest.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                dest.parent.rmdir()  # only when empty
        raise
    return dest


def has_upload(store: Store, sha256: str) -> bool:
    return rows.upload_known(store, sha256)
