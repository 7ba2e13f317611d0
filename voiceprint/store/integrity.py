"""Integrity, erasure and retention (issue 12). Everything the toolkit needs to show that the
biometric rows were not altered outside it, and to erase what it deletes.

Each voiceprint row and each person row carries ``seal``: an HMAC-SHA256, under a random key
kept beside the database (``library.key``, 0600), over the values that decide what a query
answers (vector bytes, person, recording SHA-256, model and the library's model fingerprint;
a person's name, ID number, category and retention date). Triggers recompute the seal on every
insert and update made through the toolkit (their SQL function exists only on its connections),
so every write path is covered; a row changed with another tool keeps a seal that no longer
matches, and ``verify_seals`` names it.
"""

from __future__ import annotations

import contextlib as _contextlib
import contextvars as _contextvars
import hashlib as _hashlib
import hmac as _hmac
import json
import os
import secrets as _secrets
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DataError, LibraryError, ModelError, VoiceprintError
from ..fsutil import process_alive
from .schema import INTEGRITY_SCHEMA, normalise_category

if TYPE_CHECKING:
    from . import Store

KEY_NAME = "library.key"
SEAL_SCHEME = "hmac-sha256:v1"

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
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except ValueError:  # UnicodeDecodeError too: the file was damaged or replaced
        raise LibraryError(f"{path} is not a library key (damaged) - restore it from the backup made with the database") from None
    if len(key) < 32:
        raise LibraryError(f"{path} is not a library key (too short) - restore it from the backup made with the database")
    return key


def _new_key(path: Path) -> bytes:
    """Create the key file (0600, written whole then linked into place); another process's key wins a race."""
    for stale in path.parent.glob(f".{KEY_NAME}.*.tmp"):  # left by a process killed while making a key
        pid = stale.name.split(".")[-2]
        if pid.isdigit() and not process_alive(int(pid)):
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
            f"`voiceprint verify-library --reseal --yes --library {store.path.parent}` (audited)"
        )
    elif store.key is not None and not _KEY_LOST_OK.get():
        _check_key(store, path)


#: meta entry holding an HMAC of a fixed text under the library's key: tells a wrong key from altered rows
KEY_CHECK_META = "key_check"


def key_check(key: bytes) -> str:
    return _hmac.new(key, b"voiceprint library key check", _hashlib.sha256).hexdigest()[:32]


def _wrong_key(store: Store, path: Path) -> LibraryError:
    return LibraryError(
        f"{path} is not the key this library was sealed with (restored from another backup, or changed), so nothing "
        "is read or written - put back the key from the same backup as library.sqlite; if the key is truly lost and the "
        f"database trusted, `voiceprint verify-library --reseal --yes --library {store.path.parent}` (audited)")


def _check_key(store: Store, path: Path) -> None:
    """Refuse a key that is not this database's before anything is read or written with it: rows sealed
    with a wrong key would fail their seals under the right one, and the library would stop working."""
    assert store.key is not None
    mine = key_check(store.key)
    recorded = store.get_meta(KEY_CHECK_META)
    if recorded:
        if not _hmac.compare_digest(recorded, mine):
            raise _wrong_key(store, path)
        return
    # a library sealed before the check existed: its first persons' rows tell whether this key sealed them
    first = [r[0] for r in store.db.execute("SELECT id FROM persons ORDER BY id LIMIT 3")]
    if first:
        report = verify_seals(store, first)
        checked = report["voiceprints_checked"] + report["persons_checked"]
        if checked and len(report["failures"]) >= checked:
            raise _wrong_key(store, path)
    with _contextlib.suppress(sqlite3.OperationalError):  # a read-only copy is checked again next time
        store.set_meta(KEY_CHECK_META, mine)


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
                "database was altered; check it, then run `voiceprint verify-library --reseal --yes` (audited)"
            )
        counts = reseal_all(store)
        store.set_meta("integrity", SEAL_SCHEME)
        store.set_meta(KEY_CHECK_META, key_check(store.key))
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
        store.set_meta(KEY_CHECK_META, key_check(store.key))
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
                     "failures": failures, "ok": ok, "whole_library": person_ids is None}


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
    checked = report.get("voiceprints_checked", 0) + report.get("persons_checked", 0)
    if fails and report["key_present"] and report.get("whole_library") and checked >= 2 and len(fails) >= checked:
        # every row at once is not an edit: the key beside the database is not the one that sealed it
        parts.append(f"all {len(fails)} rows fail their integrity seal: the key {report['key']} is probably not this "
                     "database's (restored from another backup, or changed) - put back the key from the same backup "
                     "as library.sqlite; do not reseal until you have")
    elif fails:
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
    """Audit a refused enrolment or a failed query: the file's full SHA-256 (when readable) and why, never its name.

    A file is often named after the person in it (张伟_身份证号_审讯.wav), and the audit trail outlives the person's
    erasure: the name stays with the operator's own output, the trail keeps the content's hash."""
    name = Path(str(path)).name
    target = "file:unreadable"
    with _contextlib.suppress(OSError):
        h = _hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        target = f"sha256:{h.hexdigest()}"
    try:
        with store.transaction():
            reason = str(err).replace(str(path), "<file>").replace(name, "<file>") if name else str(err)
            store.audit(action, target, error=type(err).__name__, reason=reason[:300])
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


def update_person(store: Store, person_id: int, category: str | None = None, notes: str | None = None, name: str | None = None) -> None:
    """Change a person's category, notes or name (a name recorded wrong: the one an enrolment under the person's ID
    number must give; audited, the seal follows through its trigger)."""
    if name is not None:
        name = name.strip()
        if not name:
            raise DataError("a person needs a name")
        store.db.execute("UPDATE persons SET name = ? WHERE id = ?", (name, person_id))
    if category is not None:
        store.db.execute("UPDATE persons SET category = ? WHERE id = ?", (normalise_category(category), person_id))
    if notes is not None:
        store.db.execute("UPDATE persons SET notes = ? WHERE id = ?", (notes, person_id))
    store.audit("person.update", f"person:{person_id}", **({"category": category} if category is not None else {}),
                **({"notes": "changed"} if notes is not None else {}), **({"name": "changed"} if name is not None else {}))


def expired_persons(store: Store, today: str) -> list[dict]:
    """Persons whose retention date is before ``today`` (ISO dates compare as text)."""
    rows = store.db.execute(
        "SELECT p.id, p.category, p.retain_until, (SELECT COUNT(*) FROM voiceprints v WHERE v.person_id = p.id) AS voiceprints "
        "FROM persons p WHERE p.retain_until IS NOT NULL AND p.retain_until != '' AND p.retain_until < ? ORDER BY p.id",
        (today,),
    )
    return [dict(r) for r in rows]
