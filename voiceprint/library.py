"""``Library``: the voiceprint library as a Python API (the CLI is a thin layer over it).

A library is a folder (default ``indexes/<name>/``, mode 0700) holding ``library.sqlite``
(the source of truth, 0600) and the derived FAISS index files. Writers take an exclusive
lock on ``.lock``; readers never block. Every enrolment, query and deletion writes an audit row.

    >>> lib = Library.open("indexes/demo", create=True)
    >>> lib.enrol("calls/zhang_1.wav", person="Zhang San", category="prior_offender", phone="13800138000")
    >>> lib.query("unknown.amr", top=5)
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .enrolment import EnrolItem, EnrolOutcome, EnrolSummary, folder_items, read_manifest
from .errors import LibraryBusy, LibraryError, NotFound
from .fsutil import fsync_dir
from .incoming import sweep as sweep_incoming
from .index import erase_deleted_vectors
from .store import Store, assert_sealed, check_model_fingerprint, describe_failure, erase_checkpoint, verify_seals
from .voices import AUDIO_SUFFIXES, Voice, read_voices
from .writers import LOCK_NAME, acquire, at_work_now, who

if TYPE_CHECKING:
    from .audio import Recording
    from .index import VoiceIndex
    from .linking import Links

__all__ = ["AUDIO_SUFFIXES", "LOCK_NAME", "CallVoice", "EnrolItem", "EnrolOutcome", "EnrolSummary", "Library", "folder_items",
           "indexes_dir", "read_manifest", "resolve_library"]

log = logging.getLogger("voiceprint")

DB_NAME = "library.sqlite"
#: The name the linking code and its tests know a voice by.
CallVoice = Voice


def indexes_dir() -> Path:
    """Default home of libraries: ``$VOICEPRINT_HOME`` or the project's ``indexes/``."""
    env = os.environ.get("VOICEPRINT_HOME")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "indexes"


def resolve_library(ref: str | os.PathLike | None) -> Path:
    """A library folder from a name (``indexes/<name>``) or a path; default ``$VOICEPRINT_LIBRARY`` or ``default``."""
    ref = ref or os.environ.get("VOICEPRINT_LIBRARY") or "default"
    text = str(ref)
    if os.sep in text or text.startswith(".") or Path(text).is_dir():
        return Path(text)
    return indexes_dir() / text


class Library:
    """A voiceprint library on disk. Open with :meth:`open` (or :meth:`create`)."""

    def __init__(self, root: Path, store: Store, model: str):
        self.tightened: list[str] = []  # what Library.open made private again (tighten_modes)
        self.root = root
        self.store = store
        self.model = model
        self._index: VoiceIndex | None = None
        #: during an enrolment run, the person each (name, ID number) was enrolled as (voiceprint.enrolment)
        self.run_persons: dict[tuple[str, str], int] | None = None
        self._lock_depth = 0

    # -- opening ----------------------------------------------------------------------------
    @classmethod
    def create(cls, ref=None, model: str | None = None, operator: str | None = None, milvus_uri: str | None = None) -> Library:
        """Create a new library folder (0700) and database (0600) bound to one speaker model.

        Its vectors live in FAISS files beside the database, or in Milvus at ``milvus_uri`` (default
        ``$VOICEPRINT_MILVUS_URI``; ``""`` for FAISS whatever the environment says). Decided here, once:
        an existing library never changes backend with the environment."""
        from .embedding import load_spec
        from .index import write_backend

        milvus_uri = os.environ.get("VOICEPRINT_MILVUS_URI") if milvus_uri is None else milvus_uri

        root = resolve_library(ref)
        exists = f"a library already exists at {root} - open it instead, or choose another --library"
        if (root / DB_NAME).exists():
            raise _AlreadyExists(exists)
        spec = load_spec(model)
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(root, 0o700)
        with _folder_lock(root):  # two processes creating the same library: one creates, one finds it
            if (root / DB_NAME).exists():
                raise _AlreadyExists(exists)
            # The database is built under a temporary name and renamed into place, so whoever sees
            # library.sqlite (a reader that takes no folder lock) sees it whole, with its model set.
            building = root / f".{DB_NAME}.creating"
            for leftover in root.glob(f".{DB_NAME}.creating*"):  # a creation killed part-way
                leftover.unlink()
            try:
                # Create the file 0600 first: SQLite gives its -wal and -shm files the same mode.
                os.close(os.open(building, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
                with Store(building, operator) as store:
                    with store.transaction():
                        store.set_meta("model", spec.name)
                        store.set_meta("model_fingerprint", spec.fingerprint)
                        store.set_meta("embedding_dim", str(spec.embedding_dim))
                        store.set_meta("generation", "0")
                        store.audit("library.create", str(root.name), model=spec.name)
                if milvus_uri:  # before the database appears: nobody opens the library without its backend
                    write_backend(root, "milvus", milvus_uri)
                # Closing the only connection folds the WAL into the file and removes it; a WAL still there
                # means the fold failed (a full disk): the file alone would be a damaged database.
                if Path(f"{building}-wal").exists():
                    raise LibraryError(f"{root}: the new database could not be written completely (is the disk full?) - "
                                       "free some space and run `voiceprint init` again")
                os.rename(building, root / DB_NAME)
                fsync_dir(root)
            except BaseException:  # nothing half-made is left: the next `init` starts clean
                for leftover in root.glob(f".{DB_NAME}.creating*"):
                    leftover.unlink(missing_ok=True)
                raise
        return cls(root, Store(root / DB_NAME, operator), spec.name)

    @classmethod
    def open(cls, ref=None, create: bool = False, operator: str | None = None, model: str | None = None) -> Library:
        """Open an existing library (or create it when ``create``)."""
        root = resolve_library(ref)
        if not (root / DB_NAME).exists():
            if root.exists() and not root.is_dir():
                raise NotFound(f"{root} is a file, not a library folder - give the library's folder (or name) with --library")
            if not create:
                raise NotFound(f"no voiceprint library at {root} - create one with `voiceprint init --library {ref or root}`")
            try:
                return cls.create(root, model=model, operator=operator)
            except _AlreadyExists:
                with _folder_lock(root):  # another process created it just now: wait until it is done
                    pass
        if (root / DB_NAME).stat().st_size == 0:  # SQLite would take it as a new database and write a schema into it
            raise LibraryError(f"{root / DB_NAME} is empty (0 bytes) - restore library.sqlite from the backup made with the folder")
        store = Store(root / DB_NAME, operator)
        lib_model = store.get_meta("model")
        if not lib_model:  # only a creation killed part-way by an older version leaves this
            store.close()
            raise LibraryError(
                f"{root / DB_NAME} records no speaker model: its creation did not finish - "
                "if it holds no voiceprints, remove the folder and run the command again"
            )
        if model and model != lib_model:
            store.close()
            raise LibraryError(
                f"library {root} holds voiceprints of model {lib_model!r}, not {model!r} - one index never mixes models; "
                "create a separate library for the other model, or move this one with `voiceprint library reembed`"
            )
        lib = cls(root, store, lib_model)
        lib.tightened = tighten_modes(root)
        at_work_now(root)  # forgets the registrations of writers killed with kill -9
        from .backup import sweep_killed_backups

        sweep_killed_backups(root)  # a backup killed part-way left a whole copy of the voice data beside its destination
        if store.pending_erasure() is not None:  # an erasure killed after its commit: finish it now unless a writer is at work
            with contextlib.suppress(LibraryBusy), lib.writing(wait=0):
                pass
        return lib

    def close(self) -> None:
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def operator(self) -> str:
        return self.store.operator

    # -- locking ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, wait: float = 60.0, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the library's exclusive write lock; a second writer waits up to ``wait`` seconds (:mod:`voiceprint.writers`).

        Hold it only while writing (a commit, an index save): a long run takes it for each of its writes."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        fh = acquire(self.root, wait, on_wait)
        fh.seek(0)
        fh.truncate()
        fh.write(who())
        fh.flush()
        self._lock_depth = 1
        try:
            if (stored := self.store.get_meta("model")) != self.model:
                # a `library reembed` switched models since this command opened the library: an old-model voiceprint or
                # index written now would not match the library (writers hold the lock per commit, so this can happen)
                raise LibraryError(f"library {self.root} moved to speaker model {stored!r} (`library reembed`) while this command "
                                   f"ran on {self.model!r} - nothing more was written; run the same command again")
            if self.store.pending_erasure() is not None:  # an erasure killed after its commit: finished before anything else
                self.finish_erasures()
            yield
        finally:
            self._lock_depth = 0
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()

    # -- persons, phones, cases -------------------------------------------------------------
    def add_person(self, name: str, id_number: str = "", category: str = "other", notes: str = "") -> int:
        with self.store.transaction():
            return self.store.add_person(name, id_number, category, notes)

    def _person_id(self, person: str | int) -> int:
        return int(self.store.find_person(person)["id"])

    def add_phone(self, number: str, person: str | int | None = None) -> int:
        with self.store.transaction():
            return self.store.add_phone(number, self._person_id(person) if person is not None else None)

    def assign_phone(self, number: str, person: str | int | None = None) -> dict:
        """Register a phone number (as :meth:`add_phone`), saying what changed: its id, normalised number and, when
        it was registered to another person and now moves (audited as ``phone.assign``), that person's id and name
        under ``moved_from`` (else None)."""
        from .phones import normalize_number

        with self.store.transaction():
            pid = self._person_id(person) if person is not None else None
            before = self.store.person_for_phone(number) if normalize_number(number) else None
            phone_id = self.store.add_phone(number, pid)
            moved = None
            if pid is not None and before is not None and before != pid:
                moved = {"id": before, "name": self.store.person_row(before)["name"]}
            person_name = self.store.person_row(pid)["name"] if pid is not None else None
            return {"phone_id": phone_id, "number": normalize_number(number), "person_id": pid, "person_name": person_name,
                    "moved_from": moved}

    def add_case(self, case_number: str, title: str = "", date: str | None = None, area: str = "", status: str = "open") -> int:
        with self.store.transaction():
            return self.store.add_case(case_number, title, date, area, status)

    def link_case(self, case_number: str, person: str | int | None = None, phone: str | None = None) -> None:
        with self.store.transaction():
            pid = self._person_id(person) if person is not None else None
            self.store.link_case(case_number, pid, phone)

    def persons(self, category: str | None = None) -> list[dict]:
        return self.store.list_persons(category)

    def person(self, ref: str | int) -> dict:
        """One person (by id, ID number or unique name) with phones, cases and voice samples."""
        try:
            p = self.store.find_person(ref)
        except NotFound as err:
            if looks_like_phone(ref):  # a number is not a person: say where the reverse strike from a number is
                raise NotFound(f"{err}; {str(ref).strip()} looks like a phone number - `voiceprint phone show "
                               f"{str(ref).strip()}` shows the person registered to it") from None
            raise
        return self.person_card(int(p["id"]))

    def show_person(self, ref: str | int) -> dict:
        """:meth:`person`, as a read of biometric data that the audit trail records (``person.view``), like the
        workbench's person page and :meth:`phone`."""
        card = self.person(ref)
        with self.store.transaction():
            self.store.audit("person.view", f"person:{card['person']['id']}")
        return card

    def person_card(self, person_id: int) -> dict:
        """Person, voice samples, phones and cases of one person id, and how strong their voiceprint is."""
        from .quality import voiceprint_strength

        samples = self.store.person_samples(person_id)
        pooled = self.store.pooled_net_speech(self.model, [person_id]).get(person_id, 0.0)
        return {
            "person": {k: v for k, v in self.store.person_row(person_id).items() if k in ("id", "name", "id_number", "category", "notes")},
            "voice_samples": len(samples),
            "voiceprint": voiceprint_strength(pooled),
            "samples": samples,
            "phones": self.store.phones_of(person_id),
            "cases": self.store.cases_of(person_id),
        }

    def lookup_person(self, phone: str | None = None, id_number: str | None = None) -> dict | None:
        """Reverse strike: the library's person behind a phone number or ID number, or None."""
        pid = self.store.person_for_phone(phone) if phone else None
        if pid is None and id_number:
            pid = self.store.person_for_id_number(id_number)
        if pid is None:
            return None
        card = self.person_card(pid)
        card.pop("samples")
        return card

    def case_calls(self, number: str) -> list[dict]:
        """The calls ``number`` (any written form) made to case victims (``case add --calling-number``), oldest first;
        [] for a value that is not a number."""
        from .phones import normalize_number
        from .store.casefile import phone_calls

        norm = normalize_number(number)
        return phone_calls(self.store, norm) if norm else []

    def phone_cases(self, number: str) -> list[dict]:
        """The cases ``number`` (any written form) is linked to itself (``case link --phone``), as ``phone`` lists them
        (case_number, title, status); [] for a value that is not a number or a number the library does not hold."""
        from .phones import normalize_number
        from .store import browse

        norm = normalize_number(number)
        row = browse.phone_row(self.store, norm) if norm else None
        return browse.cases_of_phone(self.store, row["id"]) if row else []

    def phone(self, number: str) -> dict:
        """Reverse strike from a number: the number (normalised), the person registered to it (their card without
        the samples' list, or None), the cases it is linked to (``case link --phone``) and the calls it made to
        case victims (``case add --calling-number``). Audited as a read (``phone.view``, and ``person.view`` of the
        person). :class:`NotFound` when the library has neither the number nor a call from it."""
        from .phones import normalize_number
        from .store import browse
        from .store.casefile import phone_calls

        norm = normalize_number(number)
        if not norm:
            from .errors import DataError
            from .phones import number_refusal

            raise DataError(number_refusal(number))
        row = browse.phone_row(self.store, norm)
        calls = phone_calls(self.store, norm)
        if row is None and not calls:
            raise NotFound(f"no phone {norm} in the library - register it with `voiceprint phone add {norm} --person ID` "
                           f"(or as a case's calling number: `voiceprint case add CASE --calling-number {norm}`)")
        card = None
        if row is not None and row["person_id"] is not None:
            card = self.person_card(int(row["person_id"]))
            card.pop("samples")
        with self.store.transaction():
            self.store.audit("phone.view", f"phone:{row['id']}" if row else f"number:{norm}")
            if card is not None:
                self.store.audit("person.view", f"person:{card['person']['id']}", via="phone")
        return {"number": norm, "person": card, "phone_cases": self.phone_cases(norm) if row else [],
                "case_calls": calls}

    @property
    def laboratory(self) -> str:
        """The unit that issues this library's evidence reports (鉴定/检验机构), "" when not set."""
        return self.store.get_meta("laboratory", "") or ""

    def set_laboratory(self, name: str) -> str:
        """Name the unit that issues this library's reports (one line, at most 200 characters; "" clears it). Audited."""
        from .evidence import RequestFieldError, one_line_text

        try:
            name = one_line_text("laboratory", name, 200)
        except RequestFieldError as err:
            from .errors import DataError

            raise DataError(f"--laboratory: {err}") from None
        with self.writing(), self.store.transaction():
            self.store.set_meta("laboratory", name)
            self.store.audit("library.settings", "laboratory", laboratory=name or None)
        return name

    def backup(self, dest) -> dict:
        """A checked copy of the library from one moment, in the new folder ``dest`` (:func:`voiceprint.backup.backup`)."""
        from .backup import backup

        return backup(self, dest)

    # -- the index --------------------------------------------------------------------------
    @property
    def index(self) -> VoiceIndex:
        """The FAISS index, loaded from disk, or rebuilt from the database when stale or missing. Once loaded, it is
        brought forward in memory when the database moves on (this process's commits, another writer's): an enrolment
        commits file by file, and reading the whole index file again at each commit would hold the write lock for it."""
        from .index import VoiceIndex

        generation = self.store.generation
        if self._index is not None and self._index.generation == generation:
            return self._index
        if self._index is not None and self._index.model == self.model and self._index.generation < generation:
            self._index = self._build_index(base=self._index)
            return self._index
        loaded = VoiceIndex.load(self.root)
        if loaded is not None and loaded.generation > generation:
            raise LibraryError(f"{self.root}: the index was built from a newer database than library.sqlite (generation "
                               f"{loaded.generation} against {generation}): was the database restored or copied without its "
                               "library.sqlite-wal? Restore the whole folder from one backup (an older database put back on "
                               "purpose, as in undoing `library reembed`: run `voiceprint index rebuild`)")
        if loaded is not None and loaded.generation == generation and loaded.model == self.model:
            self._index = loaded
        else:
            if loaded is not None:
                log.info("index is behind (built at generation %s, database at %s): updating", loaded.generation, generation)
            self._index = self._build_index(base=loaded if loaded is not None and loaded.model == self.model else None)
        return self._index

    def index_committed_sample(self, before: int, sample_id: int, person_id: int) -> None:
        """This process has just committed voiceprint ``sample_id`` of ``person_id``, moving the database from generation
        ``before`` to the next. An index in memory that was current at ``before`` takes that one sample (and the person's
        new mean) now; otherwise the next use of :attr:`index` reads every id in the database to find what changed,
        which costs each enrolled file a quarter of a second at 10^5 voiceprints and grows with the library."""
        index, store = self._index, self.store
        if (index is None or index.generation != before or store.generation != before + 1 or index.model != self.model
                or index.sample_persons is None or store.db.in_transaction):
            return  # someone else's change came in between (or the commit is not final yet): the general way
        searchable = store.db.execute("SELECT id FROM voiceprints WHERE person_id = ? AND model = ? AND pending = 0",
                                      (person_id, self.model)).fetchall()
        ids = [int(r[0]) for r in searchable]
        if sample_id not in ids:  # four-eyes: stored, not searchable until approved; the index does not change
            index.generation = store.generation
            return
        if not verify_seals(store, {person_id})["ok"]:  # the general update (at the next use) refuses altered rows, naming them
            return
        vectors = store.vectors_of(ids)
        index.add_sample(sample_id, person_id, vectors[ids.index(sample_id)], vectors, store.generation)

    def _build_index(self, kind: str | None = None, base: VoiceIndex | None = None) -> VoiceIndex:
        """The index at the database's generation: ``base`` (an index behind it) updated in place
        when given and of the same kind, else a fresh build (``rebuild_index`` always builds)."""
        from .index import DEFAULT_KIND, VoiceIndex, read_backend

        if base is not None and base.model == self.model and (kind is None or kind == base.kind):
            ids, persons = self.store.voiceprint_ids(self.model)

            def checked_vectors(sample_ids: np.ndarray) -> np.ndarray:
                # integrity hook: the rows an update reads (its persons' rows, no others) are checked first
                touched = set(persons[np.isin(ids, sample_ids)].tolist())
                assert_sealed(self.store, touched)
                return self.store.vectors_of(sample_ids)

            return base.update(ids, persons, checked_vectors, self.store.generation)
        assert_sealed(self.store)  # integrity hook: an index is never built from altered rows
        ids, persons, vectors = self.store.voiceprints(self.model)
        dim = int(self.store.get_meta("embedding_dim") or 192)
        kind = kind or (self._index.kind if self._index is not None else DEFAULT_KIND)
        return VoiceIndex.build(ids, persons, vectors, self.model, self.store.generation, kind=kind, dim=dim,
                                backend=read_backend(self.root), folder=self.root)

    def rebuild_index(self, kind: str | None = None) -> dict:
        """Rebuild both FAISS indexes from the database and persist them."""
        with self.writing():
            index = self._index = self._build_index(kind)
            index.save(self.root)
            erase_deleted_vectors(self.root)  # the dropped collections' pages too
            self.store.audit("index.rebuild", kind=index.kind, samples=index.size)
        return self.check_index()

    def check_index(self) -> dict:
        """Compare the persisted index with the database: ok, stale, missing, tampered, or ahead (the
        index was built from a newer database than this one: a restored copy of the database alone).

        ``writing`` instead of stale or missing while a writer is at work (``writer`` names it: "pid N (user)"):
        an enrolment commits file by file and brings the index up to date as it finishes (:mod:`voiceprint.writers`)."""
        report = self._compare_index()
        if report["status"] in ("stale", "missing") and not at_work_now(self.root):
            # a save read half-way (its files are replaced one by one), or a writer that came and went between the
            # two reads: once more with the write lock held, when no save can be under way
            try:
                with self.writing(wait=5):
                    report = self._compare_index()
            except LibraryBusy:
                pass
        return self._writing_or(report)

    def _compare_index(self) -> dict:
        """:meth:`check_index`'s one comparison of the files on disk with the database."""
        from .index import VoiceIndex

        on_disk = VoiceIndex.load(self.root)  # before the database: a writer saves an index only of what it committed
        db_count = self.store.count_voiceprints(self.model)
        report = {"library": str(self.root), "model": self.model, "database_voiceprints": db_count,
                  "database_generation": self.store.generation}
        sealed = verify_seals(self.store)  # integrity hook: altered rows make the check fail
        if not sealed["ok"]:
            return report | {"status": "tampered", "integrity": describe_failure(sealed)}
        if on_disk is None:  # a library with no voiceprint needs no index file (a new one has none)
            return report | {"status": "ok" if db_count == 0 else "missing", "index_voiceprints": 0}
        if on_disk.generation > self.store.generation:  # built from a newer database: the database lost rows
            return report | {"status": "ahead", "index_voiceprints": on_disk.size, "index_generation": on_disk.generation,
                             "kind": on_disk.kind}
        ok = on_disk.generation == self.store.generation and on_disk.size == db_count and on_disk.model == self.model
        if ok:
            ids, _, _ = self.store.voiceprints(self.model)
            ok = bool(np.array_equal(np.sort(on_disk.sample_ids()), ids))
        return report | {"status": "ok" if ok else "stale", "index_voiceprints": on_disk.size,
                         "index_generation": on_disk.generation, "kind": on_disk.kind}

    def _writing_or(self, report: dict) -> dict:
        """``report``, or when it says stale or missing and a writer is at work, that the writer will bring the index up to date."""
        writers = at_work_now(self.root) if report["status"] in ("stale", "missing") else []
        if not writers:
            return report
        return report | {"status": "writing", "writer": ", ".join(writers),
                         "note": f"{report['status']} while {', '.join(writers)} writes: the index is brought up to date when it finishes"}

    def save_index(self) -> None:
        """Bring the index up to the database's generation and persist it (caller holds the write lock).

        A command that wrote rows without reading the index first (an enrolment, a deletion) updates the
        index on disk in place: one new sample is one insertion, never a rebuild of a province's index."""
        if self._index is None or self._index.generation != self.store.generation:
            self._index = self._build_index(base=self._index if self._index is not None else self._index_on_disk())
        self._index.save(self.root)

    def _index_on_disk(self) -> VoiceIndex | None:
        """The persisted index when it can be brought forward (this model, not ahead of the database), else None."""
        from .index import VoiceIndex

        loaded = VoiceIndex.load(self.root)
        if loaded is None or loaded.model != self.model or loaded.generation > self.store.generation:
            return None
        return loaded

    _save_index = save_index

    # -- voices -----------------------------------------------------------------------------
    def _embedder(self):
        from .embedding import get_embedder

        embedder = get_embedder(self.model)
        check_model_fingerprint(self.store, embedder.spec)  # integrity hook: the model that made the voiceprints
        return embedder

    def embedder(self):
        """The library's speaker model, loaded once per process."""
        return self._embedder()

    def call_voices(self, path: str, channel: int | None = None, min_speech: float | None = None) -> tuple[Recording, list[Voice]]:
        """Decode a recording into its voices (:func:`voiceprint.voices.read_voices`)."""
        return read_voices(path, self.embedder(), channel, min_speech=min_speech)

    @cached_property
    def links(self) -> Links:
        """Unknown voices across cases: ``lib.links.add_recordings(...)``, ``.clusters()``, ``.confirm(...)``."""
        from .linking import Links

        return Links(self)

    # -- enrolment (voiceprint.enrolment) ---------------------------------------------------
    def enrol(self, path, person: str, category: str = "other", id_number: str = "", phone: str = "",
              case: str = "", channel: int | None = None, notes: str = "", min_speech: float | None = None,
              voice: int | None = None) -> EnrolOutcome:
        """Enrol one recording as a voice sample of ``person``; idempotent by file hash and person."""
        summary = self.enrol_many([EnrolItem(str(path), person, category, id_number, phone, case, channel, notes, voice)],
                                  min_speech=min_speech, stop_on_error=True)
        return summary.outcomes[0]

    def enrol_many(self, items: Iterable[EnrolItem], min_speech: float | None = None,
                   progress: Callable[[EnrolOutcome], None] | None = None, stop_on_error: bool = False,
                   on_wait: Callable[[str], None] | None = None,
                   should_stop: Callable[[], bool] | None = None, workers: int | None = None) -> EnrolSummary:
        """Enrol many recordings. Each file commits on its own, so an interruption keeps every
        file already reported and a re-run skips them; refusals are collected, not raised.
        Short or noisy voices are enrolled with warnings; persons whose pooled speech is below the
        gate are listed in ``summary.weak_persons`` (``voiceprint.quality``).

        ``should_stop`` is asked before each file; when it answers True the run stops there as if
        interrupted (KeyboardInterrupt after the index is saved). The CLI passes its Ctrl-C flag, so
        a Ctrl-C that a third-party library swallowed (silero-vad has bare ``except:`` clauses)
        still stops the run.

        ``workers``: threads (processes beyond a few, from the main thread; :mod:`voiceprint.preparers`)
        that prepare and embed files (default ``$VOICEPRINT_WORKERS`` or the usable cores; 4 files or
        more only; 0 or 1 = none). The calling thread still commits every file, in order.

        The write lock is taken for each file's commit and each index save only (a second writer waits for one
        commit, not for the run); :class:`LibraryBusy` when it stays taken 60 s, audited as ``enrol.refused`` with
        the number of files not done (never their names). Files committed before it are kept."""
        from .enrolment import enrol_many

        return enrol_many(self, items, min_speech, progress, stop_on_error, on_wait, should_stop, workers)

    def _enrol_one(self, item: EnrolItem, embedder, min_speech: float | None, on_wait=None) -> EnrolOutcome:
        from .enrolment import enrol_one

        return enrol_one(self, item, embedder, min_speech, on_wait)

    # -- search (voiceprint.search) ---------------------------------------------------------
    def query(self, path, top: int = 5, channel: int | None = None, min_speech: float | None = None) -> list[dict]:
        """Who is speaking? One result per voice, best hits first: each channel of a stereo call,
        each diarised speaker of a mono one, with the time ranges where that voice speaks.

        Persons are ranked by the calibrated LLR of the query's and their samples' channel pair when the
        model has a back end (by the cosine to the mean of their samples without one); the
        best-matching single sample and its own score are reported beside it. A voice below
        the quality gates carries ``warnings`` (weak evidence).
        """
        from .search import query

        return [r.to_dict() for r in query(self, path, top, channel, min_speech)]

    def search_vector(self, vector: np.ndarray, top: int = 5, domain: str = "wideband", net_speech: float | None = None) -> list[dict]:
        """Rank enrolled persons against one voiceprint (no audit row). ``domain`` (``scoring.domain_of`` of the
        recording) and ``net_speech`` choose the calibration, as for a query: an 8 kHz call is not wideband."""
        from .search import search

        return [h.to_dict() for h in search(self, vector, top, domain, net_speech)]

    def verify(self, a, b, channel_a: int | None = None, channel_b: int | None = None) -> dict:
        """1:1 comparison of two recordings (an evaluative comparison): the back-end score, the raw
        cosine and, with a fitted back end, the likelihood ratio and its ENFSI verbal equivalent.
        A recording with several voices is compared voice by voice (``comparisons``)."""
        from .search import verify

        return verify(self, a, b, channel_a, channel_b)

    def delete_person(self, ref: str | int) -> dict:
        with self.writing():
            with self.store.transaction():
                result = self.store.delete_person(self._person_id(ref))
            result |= self.finish_erasures()
        return result

    def finish_erasures(self) -> dict:
        """Carry out what committed erasures (a deletion, retention, a rejected sample) still have to remove outside
        the database: the vectors in the index files (and Milvus), the kept uploads, the uploads a stopped server left
        half-received (``voiceprint.incoming``: none was acknowledged, and any may hold the erased voice), the WAL's old
        pages and the persons in ``library reembed``'s copies. Recorded in the erasure's own transaction
        (:meth:`Store.note_erasure`), so a kill between the commit and these steps leaves them to the next
        writer (:meth:`writing` runs this first) instead of leaving the data behind. Returns ``wal``, ``copies`` and
        ``incoming`` (how many unacknowledged uploads went)."""
        done: dict = {"wal": None, "copies": [], "incoming": 0}
        with self.writing():
            pending = self.store.pending_erasure()
            if pending is None:
                return done
            self.save_index()
            erase_deleted_vectors(self.root)  # Milvus Lite keeps deleted vectors' bytes otherwise
            self.erase_upload_files(pending["uploads"])
            done["incoming"] = sweep_incoming(self.root)  # uploads a killed server never acknowledged: one may be their voice
            done["copies"] = self.erase_in_copies(pending["persons"])
            with self.store.transaction():
                self.store.db.execute("DELETE FROM meta WHERE key = ?", (self.store.ERASURE_KEY,))
            done["wal"] = erase_checkpoint(self.store)  # erasure: no WAL page keeps the deleted rows
        return done

    def erase_upload_files(self, shas: list[str]) -> None:
        """Remove the kept workbench uploads of erased recordings (their rows are already gone)."""
        for sha in shas:
            path = upload_path(self.root, sha)
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # only when empty

    def erase_in_copies(self, person_ids: list[int]) -> list[str]:
        """Erase persons from the database copies ``library reembed`` left beside the library, too.

        A copy holds the old model's voiceprints to undo a move; an erasure (deletion, retention) must
        reach it, or the biometric data outlives its retention there. Person ids are the same in the
        copy. Each copy audits the erasure in its own trail; the names of the copies touched are returned.
        """
        from .reembed import copies_of

        touched = []
        for copy in copies_of(self.root):
            with Store(copy, self.store.operator) as other:
                present = [pid for pid in person_ids if other.db.execute("SELECT 1 FROM persons WHERE id = ?", (pid,)).fetchone()]
                if not present:
                    continue
                with other.transaction():
                    for pid in present:
                        other.delete_person(pid)
                erase_checkpoint(other)
            touched.append(copy.name)
        if touched:
            with self.store.transaction():
                self.store.audit("person.erase_copies", "", persons=sorted(person_ids), copies=touched)
        return touched

    def audit(self, limit: int = 100, action: str | None = None) -> list[dict]:
        return self.store.audit_rows(limit, action)


def looks_like_phone(ref: str | int) -> bool:
    """Whether a person reference that found nobody reads as a phone number: 7 to 14 digits (with an optional +,
    spaces, dashes or brackets; not the 15 or 18 of an ID card), or a leading +."""
    import re

    text = str(ref).strip()
    if not re.fullmatch(r"\+?[\d\s()-]+", text):
        return False
    digits = len(re.sub(r"\D", "", text))
    return 7 <= digits <= 14 or (text.startswith("+") and digits <= 15)


def tighten_modes(root: Path) -> list[str]:
    """Make a library folder private again where a copy loosened it (a FAT stick, ``cp`` under a wide
    umask): the folder and its sub-folders 0700, its files 0600. Only what this user owns; the names changed."""
    changed: list[str] = []
    uid = os.getuid()

    def loose(path: Path) -> bool:
        try:
            return bool(path.lstat().st_mode & 0o077)
        except OSError:
            return False

    top = [root, *root.iterdir()]
    if not any(loose(p) for p in top):
        return changed  # a loosened copy is loose at the top: the (large) uploads tree is walked only then
    for path in [*top, *(p for d in top if d.is_dir() and d != root for p in d.rglob("*"))]:
        try:
            st = path.lstat()
        except OSError:
            continue
        if st.st_uid != uid or path.is_symlink() or not st.st_mode & 0o077:
            continue
        with contextlib.suppress(OSError):  # a read-only mount: the check still runs, nothing changes
            os.chmod(path, 0o700 if path.is_dir() else 0o600)
            changed.append(str(path.relative_to(root)) or ".")
    return changed


def upload_path(root: Path, sha256: str) -> Path:
    """Where the workbench keeps an uploaded recording under a library: by content (0600 in 0700 folders)."""
    return Path(root) / "uploads" / sha256[:2] / sha256


class _AlreadyExists(LibraryError):
    """``Library.create`` found a library there (``open(create=True)`` then opens it)."""


@contextlib.contextmanager
def _folder_lock(root: Path) -> Iterator[None]:
    """An exclusive lock on the library folder itself, held only while a library is being created."""
    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


