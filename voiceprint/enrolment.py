"""Enrolment: what to enrol (items from a file, a folder or a manifest) and enrolling it.

``Library.enrol``/``enrol_many`` delegate here. Each file commits on its own, so an interruption
keeps every file already reported and a re-run skips them (enrolment is idempotent by file hash,
channel and person); refusals are collected, not raised. Only unusable files are refused (no
speech, corrupt, several voices); a short or noisy one is enrolled with a warning, and the gate
belongs to the person (:func:`voiceprint.quality.voiceprint_strength` on their pooled speech).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import AudioError, DataError, LibraryBusy, VoiceprintError
from .fsutil import ctrl_c_deferred
from .store import four_eyes, normalise_category
from .voices import AUDIO_SUFFIXES, file_sha256

if TYPE_CHECKING:
    from .library import Library

#: How often a long enrolment persists the index, in files (the database commits every file).
INDEX_SAVE_EVERY = 200
#: Fewest files (not yet enrolled or not) worth starting worker threads for.
MIN_FILES_FOR_WORKERS = 4
#: Files per worker in a block of queued work (two blocks are queued, each largest file first).
IN_FLIGHT_PER_WORKER = 16


@dataclass
class EnrolItem:
    """One row of an enrolment: a file and who is speaking in it."""

    path: str
    person: str
    category: str = "other"
    id_number: str = ""
    phone: str = ""
    case: str = ""
    channel: int | None = None
    notes: str = ""
    voice: int | None = None  # which diarised voice of a mono two-party call


@dataclass
class EnrolOutcome:
    path: str
    status: str  # "enrolled" | "already" | "refused"
    person_id: int | None = None
    voiceprint_id: int | None = None
    channel: int | None = None
    net_speech: float | None = None
    reason: str = ""
    warnings: list[str] = field(default_factory=list)  # a usable but poor sample (short, noisy, clipped); pending approval
    pending: bool = False  # four-eyes: stored, not searchable until a second person approves it
    exit_code: int = 0  # a refusal's error family (voiceprint.errors): 3 an unusable recording, 8 a bad manifest value


@dataclass
class EnrolSummary:
    outcomes: list[EnrolOutcome] = field(default_factory=list)
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def refused(self) -> list[EnrolOutcome]:
        return [o for o in self.outcomes if o.status == "refused"]

    @property
    def warned(self) -> list[EnrolOutcome]:
        return [o for o in self.outcomes if o.status == "enrolled" and o.warnings]

    weak_persons: list[dict] = field(default_factory=list)  # persons of this run whose pooled voiceprint is weak


def enrol_many(lib: Library, items: Iterable[EnrolItem], min_speech: float | None = None,
               progress: Callable[[EnrolOutcome], None] | None = None, stop_on_error: bool = False,
               on_wait: Callable[[str], None] | None = None,
               should_stop: Callable[[], bool] | None = None, workers: int | None = None) -> EnrolSummary:
    """Enrol many recordings (see :meth:`voiceprint.library.Library.enrol_many`).

    With enough files (``MIN_FILES_FOR_WORKERS``), decoding, VAD, the one-voice check and embedding
    run in workers (:func:`worker_count`); the calling thread looks each file up first (so a
    re-run does no work) and commits each in order, in its own transaction, as it comes back.

    The library's write lock is held only while writing: each file's last look-up and its commit
    (:func:`commit_locked`), and each index save; never while a file is decoded or embedded. Another
    writer (a second enrolment, a deletion, the workbench) then waits for one commit, not for the whole
    manifest. For its whole length the run is registered as a writer at work (``index check`` says
    ``writing``, not ``stale``, while the index on disk is behind its commits)."""
    from .writers import at_work

    summary = EnrolSummary()
    embedder = lib.embedder()
    items = list(items)
    n_workers = worker_count(len(items), workers)
    on_wait = _told_once(on_wait)
    since_save = 0
    busy = False
    lib.run_persons = {}
    with at_work(lib.root):
        try:
            if n_workers > 1:
                outcomes = _enrol_in_workers(lib, items, embedder, min_speech, n_workers, stop_on_error, should_stop, on_wait)
            else:
                outcomes = _enrol_here(lib, items, embedder, min_speech, stop_on_error, should_stop, on_wait)
            for outcome in outcomes:
                summary.outcomes.append(outcome)
                if outcome.status == "enrolled":
                    since_save += 1
                    if since_save >= INDEX_SAVE_EVERY:
                        _save_index(lib, on_wait)
                        since_save = 0
                if progress:
                    progress(outcome)
        except (KeyboardInterrupt, _Stopped):
            summary.interrupted = True
        except LibraryBusy as err:
            busy = True
            _audit_busy(lib, err, len(items) - len(summary.outcomes), len(items))
            raise
        finally:
            # Also when nothing new was enrolled: a run killed after its last commit but before its index
            # save leaves the index behind the database. Not after waiting in vain for the lock: whoever
            # holds it would hold this save up as long again (an enrolment saves the index as it finishes).
            lib.run_persons = None
            if not busy:
                _save_index(lib, on_wait, only_if_behind=True)
                summary.weak_persons = weak_persons(lib, {o.person_id for o in summary.outcomes if o.person_id is not None})
    if summary.interrupted:
        raise KeyboardInterrupt
    return summary


def _save_index(lib: Library, on_wait: Callable[[str], None] | None, only_if_behind: bool = False) -> None:
    """Bring the index up to the database (this run's commits and any other writer's) and save it, under the write
    lock; ``only_if_behind``: only when the saved index is behind the database. A Ctrl-C during the save waits for it."""
    from .index import VoiceIndex

    if only_if_behind and VoiceIndex.saved_generation(lib.root) == lib.store.generation:
        return
    with lib.writing(on_wait=on_wait), ctrl_c_deferred():
        if not only_if_behind or VoiceIndex.saved_generation(lib.root) != lib.store.generation:  # another writer may have
            lib.save_index()


def _told_once(on_wait: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """``on_wait`` once per run (a run takes the lock for each file: a busy library is told once)."""
    if on_wait is None:
        return None
    told: list[str] = []

    def tell(message: str) -> None:
        if not told:
            told.append(message)
            on_wait(message)
    return tell


def _audit_busy(lib: Library, err: LibraryBusy, not_done: int, files: int) -> None:
    """A run refused because the library stayed busy: an audit row with who (the operator) and how many files,
    never their names (a file name often names the person in it)."""
    import sqlite3

    try:
        with lib.store.transaction():
            lib.store.audit("enrol.refused", f"files:{not_done}", error=type(err).__name__, reason=str(err)[:300],
                            files=not_done, of=files)
    except (sqlite3.Error, VoiceprintError):  # never hide the busy library behind an audit failure
        pass


class _Stopped(Exception):
    """``should_stop`` answered True: end the run between files, as an interruption does."""


def _enrol_here(lib: Library, items: list[EnrolItem], embedder, min_speech, stop_on_error, should_stop,
                on_wait=None) -> Iterator[EnrolOutcome]:
    """Each file in this process: look up, prepare, embed, commit (a refusal audited with the file's SHA-256)."""
    for item in items:
        if should_stop is not None and should_stop():
            raise _Stopped
        try:
            outcome = lib._enrol_one(item, embedder, min_speech, on_wait)
        except LibraryBusy:  # the library, not the file: the run stops
            raise
        except VoiceprintError as err:
            outcome = _settled(lib, item, err, stop_on_error)
        yield outcome


def enrol_one(lib: Library, item: EnrolItem, embedder, min_speech: float | None, on_wait=None) -> EnrolOutcome:
    """Enrol one file (its own transaction); "already" when this file and channel are enrolled for this person.
    Prepared without the write lock, committed under it (:func:`commit_locked`)."""
    return lookup(lib, item) or commit_locked(lib, item, prepare(item, embedder, min_speech), on_wait)


def commit_locked(lib: Library, item: EnrolItem, done: PreparedFile, on_wait=None) -> EnrolOutcome:
    """:func:`commit` under the library's write lock, after looking the file up again there: another process
    enrolling the same file may have committed it while this one prepared it (each file is enrolled once)."""
    with lib.writing(on_wait=on_wait):
        return lookup(lib, item, done.sha256) or commit(lib, item, done)


def lookup(lib: Library, item: EnrolItem, sha256: str | None = None) -> EnrolOutcome | None:
    """"already" when this file and channel are enrolled for this person; None when the file needs work.
    ``sha256``: the file's, already known (a prepared file: it is not read again)."""
    path = Path(item.path)
    if sha256 is None and not path.is_file():
        raise AudioError(path, "file not found", "check the path (a manifest's paths are relative to the manifest's folder)")
    normalise_category(item.category)  # an unknown category is refused before any work
    existing = lib.store.enrolled_sample(sha256 or file_sha256(path), item.person, item.id_number, lib.model, item.channel)
    if existing:
        return EnrolOutcome(str(path), "already", existing["person_id"], existing["id"], existing["channel"])
    return None


@dataclass
class PreparedFile:
    """What enrolling a file stores, computed without the library (in a worker or here)."""

    sha256: str
    duration: float
    source_rate: int
    codec: str
    channel: int
    voice: int
    net_speech: float
    quality: dict
    warnings: list[str]
    vector: np.ndarray


def prepare(item: EnrolItem, embedder, min_speech: float | None) -> PreparedFile:
    """Decode, find the speech, check it holds one voice (or the voice asked for), measure, embed."""
    from . import quality as gates
    from .voices import read_voices

    path = Path(item.path)
    rec, voices = read_voices(str(path), embedder, item.channel, min_speech=min_speech)
    chosen = _one_voice(path, voices, item.voice)
    warnings = gates.enrolment_warnings(chosen.quality)
    quality = dict(chosen.quality, voice=chosen.voice, segments=chosen.time_ranges(), warnings=warnings)
    return PreparedFile(rec.sha256, rec.duration, rec.channel_rate, rec.codec, chosen.channel, chosen.voice,
                        chosen.net_speech, quality, warnings, embedder.embed(chosen.speech))


#: Notes an enrolment adds to a file's warnings (the workbench shows them in the page's language: voiceprint.i18n_zh).
MOVED_PHONE_NOTE = "phone {number} was registered to person {owner}: it is now this person's"
NEW_CASE_NOTE = "case {case} was not in the library: it was opened (check the number if you meant an existing case)"


def _moved_phone(store, path: Path, number: str, pid: int, strict: bool) -> list[str]:
    """A note when ``number`` is registered to another person (re-registering moves it, audited as
    ``phone.assign``). Four-eyes (``strict``): refused, since an enrolment waiting for approval would
    take the number at once and a rejection would not give it back."""
    owner = store.person_for_phone(number)
    if owner is None or owner == pid:
        return []
    if strict:
        raise DataError(f"{path}: phone {number} is registered to person {owner}; in a four-eyes library an "
                        "enrolment does not move it - enrol without --phone, and after approval move the number "
                        "with `voiceprint phone add NUMBER --person ...`")
    return [MOVED_PHONE_NOTE.format(number=number, owner=owner)]


def commit(lib: Library, item: EnrolItem, done: PreparedFile) -> EnrolOutcome:
    """Store one prepared file: person, phone, case, recording, voiceprint and audit row in one transaction."""
    path, store = Path(item.path), lib.store
    with store.transaction():
        pending = four_eyes(store)
        newest = store.db.execute("SELECT COALESCE(MAX(id), 0) FROM persons").fetchone()[0]
        pid = store.person_to_enrol(item.person, item.id_number, normalise_category(item.category), item.notes)
        _refuse_an_erased_persons_return(lib, item, pid, newest)
        notes: list[str] = []
        if item.phone:
            notes = _moved_phone(store, path, item.phone, pid, strict=pending)
            store.add_phone(item.phone, pid)
        if item.case:
            if store.case_row(item.case.strip()) is None:  # a mistyped number would open a case nobody else files under
                notes.append(NEW_CASE_NOTE.format(case=item.case.strip()))
            store.add_case(item.case)
            store.link_case(item.case, pid, item.phone or None)
        rid = store.add_recording(done.sha256, done.channel, path.name, done.duration, done.net_speech, done.source_rate,
                                  done.codec, done.quality)
        _refuse_another_voice_of_an_enrolled_recording(store, path, rid, done)
        already = store.voiceprint_of(rid, pid, lib.model)
        if already is not None:
            return EnrolOutcome(str(path), "already", pid, already, done.channel, done.net_speech)
        _refuse_a_voice_of_another_person(store, path, rid, pid, lib.model, done)
        notes += _copies_of_another_persons_sample(lib, done.vector, pid)
        before = store.generation
        vid = store.add_voiceprint(rid, pid, lib.model, done.vector)
        store.audit("enrol", f"voiceprint:{vid}", person=pid, recording=rid, sha256=done.sha256, channel=done.channel,
                    voice=done.voice, **({"warnings": done.warnings} if done.warnings else {}),
                    **({"new_person": True} if pid > newest else {}))  # a rejection (four-eyes) then removes the person
    lib.index_committed_sample(before, vid, pid)
    if lib.run_persons is not None:
        lib.run_persons[_person_key(item)] = pid
    waiting = ["waiting for a second person's approval (four-eyes): not searchable until `voiceprint approve`"] if pending else []
    return EnrolOutcome(str(path), "enrolled", pid, vid, done.channel, done.net_speech, warnings=done.warnings + notes + waiting,
                        pending=pending)


def _person_key(item: EnrolItem) -> tuple[str, str]:
    return (item.person or "").strip(), (item.id_number or "").strip()


def _refuse_an_erased_persons_return(lib: Library, item: EnrolItem, pid: int, newest: int) -> None:
    """A person erased while this run enrolled them (`person delete` from another terminal or the workbench) is not
    made again from the run's later files: an erasure would otherwise be undone, under a new id, without a word."""
    earlier = None if lib.run_persons is None else lib.run_persons.get(_person_key(item))
    if (earlier is not None and pid > newest and earlier != pid
            and lib.store.db.execute("SELECT 1 FROM persons WHERE id = ?", (earlier,)).fetchone() is None):
        raise DataError(f"{item.path}: person {earlier} ({item.person.strip()}) was erased while this enrolment ran, so this "
                        "file is not enrolled - if the erasure was a mistake, enrol their files again")


#: the same voice of the same recording embeds to (almost) the same vector; the two voices of a
#: two-party call, which may be two persons' samples from one file, are far below this
SAME_VOICE_COSINE = 0.95


def _refuse_another_voice_of_an_enrolled_recording(store, path: Path, recording_id: int, done: PreparedFile) -> None:
    """A recording keeps the details (net speech, time ranges) of the one voice enrolled from it: a second voice of the
    same file and channel would be filed with the first one's, and a report would point at the wrong speech."""
    row = store.db.execute("SELECT quality FROM recordings WHERE id = ?", (recording_id,)).fetchone()
    kept = json.loads(row["quality"] or "{}").get("voice") if row else None
    if kept is not None and done.voice is not None and int(kept) != int(done.voice):
        raise DataError(f"{path}: voice {kept} of this recording is already enrolled, and a recording keeps one voice's details - "
                        f"to enrol voice {done.voice} as well, save its part of the call as a file of its own (`voiceprint query` "
                        "shows who speaks when) and enrol that file")


def _copies_of_another_persons_sample(lib: Library, vector, person_id: int) -> list[str]:
    """A note when this voice is all but identical to another person's enrolled sample: a copy of one recording
    (re-encoded, cut, exported from the interview system) filed under a second name. Not refused: a copy is
    told by its vector, not by its bytes, so the technician checks which name is right."""
    if lib.index.size == 0:
        return []
    unit = np.asarray(vector, np.float32) / max(float(np.linalg.norm(vector)), 1e-12)
    scores, ids = lib.index.search_samples(unit, 5)
    info = lib.store.voiceprint_info([int(i) for i in ids[0] if i >= 0])
    for score, vid in zip(scores[0], ids[0], strict=True):
        other = info.get(int(vid))
        if other and float(score) >= SAME_VOICE_COSINE and other["person_id"] not in (None, person_id):
            return [COPY_NOTE.format(vid=int(vid), owner=other["person_id"], cosine=f"{float(score):.3f}")]
    return []


#: the note of a sample that seems a copy of another person's (``_copies_of_another_persons_sample``)
COPY_NOTE = ("this voice is all but identical to voiceprint {vid} of person {owner} (cosine {cosine}): the same recording under two "
             "names? - check which is right (`voiceprint person show {owner}`)")


def _refuse_a_voice_of_another_person(store, path: Path, recording_id: int, person_id: int, model: str, done: PreparedFile) -> None:
    """One voice cannot be two people's: refuse a sample whose recording and voice are already enrolled
    for another person (a file copied into two persons' folders, a wrong name in a manifest)."""
    vector = np.asarray(done.vector, np.float32)
    for vid, other, blob in store.db.execute(
            "SELECT id, person_id, vector FROM voiceprints WHERE recording_id = ? AND model = ? AND person_id IS NOT NULL "
            "AND person_id != ?", (recording_id, model, person_id)):
        theirs = np.frombuffer(blob, np.float32)
        cosine = float(vector @ theirs / max(float(np.linalg.norm(vector) * np.linalg.norm(theirs)), 1e-12))
        if cosine >= SAME_VOICE_COSINE:
            raise DataError(f"{path}: this voice of this recording is already enrolled for person {other} "
                            f"(voiceprint {vid}) - one voice cannot be two people's: correct the name in the manifest, or, if "
                            f"person {other} is the mistake, delete them (`voiceprint person delete {other}` erases that person "
                            "with all their samples) and enrol again")


# -- workers --------------------------------------------------------------------------------------

def worker_count(n_files: int, workers: int | None = None) -> int:
    """Workers for enrolling ``n_files`` (threads, or processes for many: :mod:`voiceprint.preparers`):
    ``workers``, else ``$VOICEPRINT_WORKERS``, else the usable cores; 0 (enrol in the calling thread)
    for fewer than ``MIN_FILES_FOR_WORKERS`` files or one core."""
    if workers is None:
        env = os.environ.get("VOICEPRINT_WORKERS", "").strip()
        workers = int(env) if env.isdigit() else len(os.sched_getaffinity(0))
    if n_files < MIN_FILES_FOR_WORKERS or workers < 2:
        return 0
    return min(workers, n_files)


def _enrol_in_workers(lib: Library, items: list[EnrolItem], embedder, min_speech, n_workers: int,
                      stop_on_error: bool, should_stop, on_wait=None) -> Iterator[EnrolOutcome]:
    """Look every file up here first, prepare the rest in ``n_workers`` workers, commit each in order
    as it comes back (fewer than ``MIN_FILES_FOR_WORKERS`` left to do: here, no worker).

    Only the calling thread writes (SQLite, FAISS), taking the write lock for each commit. Ctrl-C, a stop or an error abandons the workers
    at once: whatever they were preparing is lost, nothing they prepared is half-stored."""
    todo: list[tuple[EnrolItem, EnrolOutcome | VoiceprintError | None]] = []
    for item in items:  # lookups first: a re-run of a finished manifest starts no worker
        try:
            todo.append((item, lookup(lib, item)))
        except VoiceprintError as err:
            todo.append((item, err))  # refused in its turn, after the files before it
    work = [item for item, known in todo if known is None]
    if len(work) >= MIN_FILES_FOR_WORKERS:
        yield from _prepare_in_pool(lib, todo, work, embedder, min_speech, n_workers, stop_on_error, should_stop, on_wait)
        return
    for item, known in todo:
        if known is None:
            yield from _enrol_here(lib, [item], embedder, min_speech, stop_on_error, should_stop, on_wait)
            continue
        if should_stop is not None and should_stop():
            raise _Stopped
        yield _settled(lib, item, known, stop_on_error)


def _settled(lib: Library, item: EnrolItem, result: EnrolOutcome | VoiceprintError, stop_on_error: bool) -> EnrolOutcome:
    """An outcome known without this thread preparing the file; a refusal is audited (and raised
    with ``stop_on_error``) here, in the file's turn."""
    if not isinstance(result, VoiceprintError):
        return result
    from .store import record_failure

    record_failure(lib.store, "enrol.refused", item.path, result)
    if stop_on_error:
        raise result
    return EnrolOutcome(item.path, "refused", reason=str(result), exit_code=result.exit_code)


def _prepare_in_pool(lib: Library, todo: list, work: list[EnrolItem], embedder, min_speech, n_workers: int,
                     stop_on_error: bool, should_stop, on_wait=None) -> Iterator[EnrolOutcome]:
    """Prepare ``work`` in workers, queued in blocks of ``IN_FLIGHT_PER_WORKER`` per worker, two
    blocks ahead, each block largest file first (a long file started last would leave the other
    workers idle at the end); commit every file of ``todo`` in order as its result comes back."""
    from . import preparers

    warm_models(embedder)  # loaded once, here: no race between threads, and forked workers share them
    pool = preparers.start(min(n_workers, len(work)), lambda item: prepare(item, embedder, min_speech), len(work))
    futures: dict = {}
    block = n_workers * IN_FLIGHT_PER_WORKER
    submitted = 0

    def submit_block() -> None:
        nonlocal submitted
        part = range(submitted, min(submitted + block, len(work)))
        for i in sorted(part, key=lambda i: -_file_size(work[i].path)):
            futures[i] = pool.submit(work[i])
        submitted = part.stop

    try:
        submit_block()
        submit_block()
        taken = 0
        for item, known in todo:
            if should_stop is not None and should_stop():
                raise _Stopped
            if known is not None:
                yield _settled(lib, item, known, stop_on_error)
                continue
            if taken and taken % block == 0:  # into the next block: keep two queued
                submit_block()
            done = futures.pop(taken).result()
            taken += 1
            if not isinstance(done, PreparedFile):  # refused in the worker
                yield _settled(lib, item, done, stop_on_error)
                continue
            try:
                outcome = commit_locked(lib, item, done, on_wait)
            except LibraryBusy:  # the library, not the file: the run stops
                raise
            except VoiceprintError as err:
                outcome = _settled(lib, item, err, stop_on_error)
            yield outcome
    finally:
        pool.stop()


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def warm_models(embedder) -> None:
    """Load and run once what preparing a file uses (speaker model and its ONNX network, the
    diarisation model, the VAD), so every worker starts with them loaded and warm."""
    import torch

    from . import synth
    from .audio import speech_segments

    if _WARMED.get("embedder") is embedder:
        return
    speech = synth.synth_speech(2.0, seed=16)
    speech_segments(speech)
    embedder.embed(speech)
    embedder.diarisation_windows(torch.from_numpy(np.stack([speech, speech])), torch.tensor([1.0, 0.75]))
    _WARMED["embedder"] = embedder


_WARMED: dict = {}


def weak_persons(lib: Library, person_ids) -> list[dict]:
    """The given persons whose voiceprint is weak (too little pooled net speech), with what they need."""
    from .quality import voiceprint_strength

    out = []
    for pid, pooled in sorted(lib.store.pooled_net_speech(lib.model, list(person_ids)).items()):
        strength = voiceprint_strength(pooled)
        if strength["weak_voiceprint"]:
            out.append({"person_id": pid, "name": lib.store.person_row(pid)["name"], **strength})
    return out


def _one_voice(path: Path, voices: list, voice: int | None):
    """The voice to enrol: the one asked for, or the only one (a call with several must say which)."""
    if voice is not None:
        if not 0 <= voice < len(voices):
            raise AudioError(path, f"holds {len(voices)} voice(s), voice {voice} does not exist",
                             f"use --voice 0 to {len(voices) - 1} (see `voiceprint query` for who speaks when)")
        voices = [voices[voice]]
    if len(voices) > 1:
        split_by_channel = len({v.channel for v in voices}) > 1
        how = "one per channel" if split_by_channel else "found by diarisation"
        flag = "--channel N" if split_by_channel else "--voice N"
        raise AudioError(path, f"holds {len(voices)} voices ({how})",
                         f"enrol one of them with {flag} (0-based; `voiceprint query` shows who speaks when)")
    return voices[0]


class Manifest(list):
    """The items of a manifest (a list of EnrolItem) and ``duplicates``: rows that repeat an earlier row."""

    def __init__(self, *args):
        super().__init__(*args)
        self.duplicates: list[dict] = []


def read_manifest(path) -> Manifest:
    """Read an enrolment manifest CSV (``path,person,category,phone,case`` plus optional
    ``id_number,channel,notes``), UTF-8, GBK/GB18030 or UTF-16 (Excel's "Unicode text"), its columns separated
    by commas, tabs, semicolons or full-width commas; paths relative to the manifest."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read manifest ({err.strerror})") from err
    # Excel's "Unicode text" is UTF-16 with a byte-order mark (and tabs between columns)
    for encoding in (("utf-16",) if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig", "gb18030")):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise DataError(f"{path}: manifest is neither UTF-8 nor GBK/GB18030 - re-save it as UTF-8")
    header = text.split("\n", 1)[0]
    # a comma-separated file, or what spreadsheets also write: tabs, semicolons, full-width commas (，)
    delimiter = next((d for d in (",", "\t", ";", "\uff0c") if d in header), ",")
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    cols = {c.strip().lower() for c in (reader.fieldnames or [])}
    missing = {"path", "person"} - cols
    if missing:
        found = f" (it has {', '.join(sorted(cols))})" if cols else ""
        raise DataError(f"{path}: manifest lacks column(s) {', '.join(sorted(missing))}{found} - "
                        "expected path,person,category,phone,case")
    items, seen = Manifest(), dict[tuple, int]()
    for line_no, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if not row.get("path") or not row.get("person"):
            raise DataError(f"{path}:{line_no}: empty path or person - fix or delete that row")
        file_path = Path(row["path"])
        if not file_path.is_absolute():
            file_path = path.parent / file_path
        channel = row.get("channel", "")
        key = (str(file_path), row["person"], channel)
        if key in seen:  # a duplicated row enrols once, and is counted
            items.duplicates.append({"path": str(file_path), "line": line_no, "first_line": seen[key]})
            continue
        seen[key] = line_no
        items.append(EnrolItem(str(file_path), row["person"], row.get("category") or "other", row.get("id_number", ""),
                               row.get("phone", ""), row.get("case", ""), int(channel) if channel.isdigit() else None,
                               row.get("notes", "")))
    if not items and not items.duplicates:
        raise DataError(f"{path}: the manifest has a header but no rows - one row per recording: path,person,...")
    return items


def folder_items(folder, person: str | None = None, category: str = "other", phone: str = "", case: str = "") -> list[EnrolItem]:
    """Audio files under a folder: all of ``person``, or (without it) each sub-folder named after its person."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no audio files found (looked for {', '.join(sorted(AUDIO_SUFFIXES))})")
    items = []
    for f in files:
        who = person
        if who is None:
            rel = f.relative_to(folder)
            if len(rel.parts) < 2:
                raise DataError(f"{f}: not in a per-person sub-folder - pass --person, or lay files out as FOLDER/<person>/file")
            who = rel.parts[0]
        items.append(EnrolItem(str(f), who, category, "", phone, case))
    return items
