"""An online backup of a library: one consistent moment, taken while the workbench and enrolments run.

A library is its folder, but copying the folder while something writes can catch the database and
its write-ahead log at two different moments. :func:`backup` instead takes the database through
SQLite's backup API (one read transaction: every committed row up to that moment, nothing after),
copies the seals' key and the uploaded recordings that moment refers to, and checks the copy the way
``verify-library`` and ``audit verify`` would before it is put in place. The copy is a library of its
own (``--library DEST`` opens it as it is). The FAISS index files come with it when they match the
database's moment, and are built for the copy from its database when they do not (a writer moved on
between the two); a Milvus library's vectors stay in Milvus, and its database holds every one of them.

What goes into the copy is listed with its SHA-256 in ``BACKUP.json``, so a restored copy can be
checked file by file later (:func:`check_backup`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import LibraryError
from .writers import held_record, records

if TYPE_CHECKING:
    from .library import Library

MANIFEST = "BACKUP.json"
#: under the library: one record per backup under way (the path of its folder), held with an flock while it runs,
#: so that the folder of a backup killed part-way - a whole copy of the voice data - is found and removed
RUNNING_DIR = ".backups"
#: inside a backup's folder while it is built: what tells a sweep the folder is one of ours
BUILDING_MARK = ".voiceprint-backup-building"
#: files of a library folder a backup carries besides the database (when present); the index files, the
#: workbench's cookie key (sessions end with a restore) and in-flight uploads are left out
CARRIED = ("library.key", "index_backend.json")


def backup(lib: Library, dest: str | os.PathLike) -> dict:
    """Copy ``lib`` to the new folder ``dest`` (0700, files 0600) from one moment; return what was copied.

    The copy is built beside ``dest`` and renamed into place only once it has been checked, so a backup
    killed part-way leaves no folder at ``dest`` (the next run removes its leftover). Audited in ``lib``
    as ``library.backup``. :class:`LibraryError` when ``dest`` exists or its copy fails its checks.
    """
    dest = Path(dest).absolute()
    root = lib.root.resolve()
    if dest.exists():
        raise LibraryError(f"{dest} exists - back up into a new folder (e.g. one named by today's date)")
    if not dest.parent.is_dir():
        raise LibraryError(f"{dest.parent} is not a folder - create it first (it should be on another disk than the library)")
    if dest.resolve() == root or root in dest.resolve().parents:
        raise LibraryError(f"{dest} is inside the library {root} - back up to another folder, ideally another disk")
    partial = dest.parent / f".{dest.name}.partial"
    sweep_killed_backups(root)
    if partial.exists():  # a backup killed part-way whose record is gone: only ours are named so
        shutil.rmtree(partial)
    with held_record(root / RUNNING_DIR, str(partial)):  # a kill -9 leaves it unheld: the next sweep removes the folder
        os.mkdir(partial, 0o700)
        _write_private(partial / BUILDING_MARK, b"")
        try:
            started = time.time()
            _snapshot(lib, partial / "library.sqlite")
            for name in CARRIED:
                if (root / name).is_file():
                    _copy(root / name, partial / name)
            uploads = _copy_uploads(root, partial)
            checks = _check_copy(partial, root, lib.model)
            files = {p.relative_to(partial).as_posix(): _sha256(p) for p in sorted(partial.rglob("*")) if p.is_file() and p.name != BUILDING_MARK}
            manifest = {"format": 1, "library": str(root), "taken_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                        "operator": lib.store.operator, "model": lib.model, **checks, "uploads": uploads, "files": files}
            _write_private(partial / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False).encode())
            (partial / BUILDING_MARK).unlink()
            _fsync_tree(partial)
            with lib.store.transaction():  # before the copy is in place: no whole copy of the voice data without its row
                lib.store.audit("library.backup", f"folder:{dest.name}", persons=checks["persons"], voiceprints=checks["voiceprints"],
                                audit_head=checks["audit_head"], uploads=uploads)
            os.rename(partial, dest)
            _fsync_dir(dest.parent)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return manifest | {"folder": str(dest)}


def sweep_killed_backups(root: str | os.PathLike) -> int:
    """Remove the folders of backups of this library killed part-way (their records no running process holds);
    how many. Run by every backup and every :meth:`Library.open`, and so by erasure too."""
    removed = 0
    for record, text, held in records(Path(root) / RUNNING_DIR):
        if held:
            continue  # a backup under way
        folder = Path(text)
        if folder.name.startswith(".") and folder.name.endswith(".partial") and (folder / BUILDING_MARK).is_file():
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
        record.unlink(missing_ok=True)
    return removed


def check_backup(folder: str | os.PathLike) -> dict:
    """Check a backup without writing to it (read-only media too): its files against the SHA-256s its
    ``BACKUP.json`` lists (``changed``, ``missing``; skipped for a folder copied by other means, which has
    none), and its database's seals and audit chain. ``ok`` when all hold."""
    from .store import Store, verify_audit_chain, verify_seals

    folder = Path(folder)
    if not (folder / "library.sqlite").is_file():
        raise LibraryError(f"{folder}: no library.sqlite - give the folder `voiceprint library backup` made (or a copied library folder)")
    changed, missing, manifest = [], [], None
    if (folder / MANIFEST).exists():
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise LibraryError(f"{folder / MANIFEST}: not readable ({err}) - this backup's list of files is damaged; use another backup") from err
        for name, digest in manifest["files"].items():
            path = folder / name
            if not path.is_file():
                missing.append(name)
            elif _sha256(path) != digest:
                changed.append(name)
    with contextlib.closing(Store.read_only(folder / "library.sqlite")) as store:
        seals = verify_seals(store)
        chain = verify_audit_chain(store)
    return {"ok": not changed and not missing and seals["ok"] and chain["ok"], "changed": changed, "missing": missing,
            "listed": manifest is not None, "taken_at": (manifest or {}).get("taken_at"), "files": len((manifest or {}).get("files", {})),
            "seals_ok": seals["ok"], "seal_failures": len(seals["failures"]), "key_present": seals["key_present"],
            "audit_ok": chain["ok"], "audit_rows": chain["rows"], "audit_head": chain["head"], "first_broken": chain["first_broken"]}


def _snapshot(lib: Library, target: Path) -> None:
    """Every row committed up to now, through SQLite's backup API (one step: one read transaction)."""
    os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
    with contextlib.closing(sqlite3.connect(target)) as out:
        lib.store.db.backup(out)
        out.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it


def _copy_uploads(root: Path, partial: Path) -> int:
    """The uploaded recordings the snapshot lists (by content address) that exist; returns how many."""
    from .library import upload_path

    with contextlib.closing(sqlite3.connect(f"file:{partial / 'library.sqlite'}?mode=ro", uri=True)) as db:
        try:
            shas = [r[0] for r in db.execute("SELECT sha256 FROM uploads")]
        except sqlite3.OperationalError:  # a library made before the workbench kept uploads
            shas = []
    copied = 0
    for sha in shas:
        src = upload_path(root, sha)
        if src.is_file():  # erased since (its person deleted): the erasure stands
            out = upload_path(partial, sha)
            for folder in (out.parent.parent, out.parent):
                folder.mkdir(mode=0o700, exist_ok=True)
            _copy(src, out)
            copied += 1
    return copied


def _check_copy(partial: Path, root: Path, model: str) -> dict:
    """Open the copy's database, check its seals and audit chain as a restore would, and give it its index."""
    from .index import index_files, read_backend
    from .library import Library
    from .store import Store, verify_audit_chain, verify_seals

    with Store(partial / "library.sqlite", operator="backup") as store:
        seals = verify_seals(store)
        chain = verify_audit_chain(store)
        if not seals["ok"]:
            raise LibraryError(f"the copy fails its integrity seals ({len(seals['failures'])} row(s)) - run `voiceprint verify-library` "
                               "on the library itself; nothing was written to the backup folder")
        if not chain["ok"]:
            raise LibraryError(f"the copy's audit chain breaks at row {chain['first_broken']['id']} - run `voiceprint audit verify` "
                               "on the library itself; nothing was written to the backup folder")
        persons = store.db.execute("SELECT COUNT(*) FROM persons").fetchone()[0]
        voiceprints = store.db.execute("SELECT COUNT(*) FROM voiceprints").fetchone()[0]
        index = "in Milvus"
        if read_backend(partial)["backend"] == "faiss":
            copy = Library(partial, store, model)
            carried = index_files(root)
            try:
                for name in carried:
                    _copy(root / name, partial / name)
                index = "copied"
            except OSError:  # a writer saved a newer set meanwhile and removed this one
                index = "replaced while copied"
            if index != "copied" or copy.check_index()["status"] != "ok":  # of another moment than the snapshot's: built for it
                for name in carried:
                    (partial / name).unlink(missing_ok=True)
                copy.save_index()
                index = "built from the copy's database"
    return {"persons": int(persons), "voiceprints": int(voiceprints), "audit_rows": chain["rows"], "audit_head": chain["head"],
            "index": index}


def _copy(src: Path, out: Path) -> None:
    with open(src, "rb") as fin, open(os.open(out, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600), "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)


def _write_private(path: Path, data: bytes) -> None:
    with open(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600), "wb") as fh:
        fh.write(data)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    for path in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        _fsync_dir(path)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
