"""Enrolment: what to enrol (items from a file, a folder or a manifest) and enrolling it.

``Library.enrol``/``enrol_many`` delegate here. Each file commits on its own, so an interruption
keeps every file already reported and a re-run skips them (enrolment is idempotent by file hash,
channel and person); refusals are collected, not raised. Voices below the quality gates
(:mod:`voiceprint.quality`) are refused unless forced.
"""

from __future__ import annotations

import csv
import io
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import AudioError, DataError, VoiceprintError
from .store import audit_failure, normalise_category
from .voices import AUDIO_SUFFIXES, file_sha256

if TYPE_CHECKING:
    from .library import Library

#: How often a long enrolment persists the index, in files (the database commits every file).
INDEX_SAVE_EVERY = 200
#: Most files embedded together in one batch (and so looked up and prepared ahead of their commit).
EMBED_BATCH = 8
#: Files queued ahead stop at this many bytes (one file at least), so long calls are not decoded side by side.
AHEAD_BYTES = 64 << 20


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


@dataclass
class EnrolSummary:
    outcomes: list[EnrolOutcome] = field(default_factory=list)
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def refused(self) -> list[EnrolOutcome]:
        return [o for o in self.outcomes if o.status == "refused"]


def enrol_many(lib: Library, items: Iterable[EnrolItem], min_speech: float | None = None,
               progress: Callable[[EnrolOutcome], None] | None = None, stop_on_error: bool = False,
               on_wait: Callable[[str], None] | None = None, force: bool = False,
               should_stop: Callable[[], bool] | None = None) -> EnrolSummary:
    """Enrol many recordings under the library's write lock (see :meth:`voiceprint.library.Library.enrol_many`).

    A worker thread prepares the next files (decode, VAD, quality, diarisation) while this thread
    embeds the prepared ones in length-sorted batches and commits them in order, each file in its
    own transaction: what has been reported is on disk whatever happens next.
    """
    from .index import VoiceIndex

    summary = EnrolSummary()
    embedder = lib.embedder()
    with lib.writing(on_wait=on_wait), Pipeline(lib, items, embedder, min_speech, force) as ahead:
        since_save = 0
        try:
            while True:
                if should_stop is not None and should_stop():
                    summary.interrupted = True
                    break
                job = ahead.next()
                if job is None:
                    break
                try:
                    outcome = lib._enrol_one(job.item, embedder, min_speech, force, job=job)
                except VoiceprintError as err:
                    if stop_on_error:
                        raise
                    outcome = EnrolOutcome(job.item.path, "refused", reason=str(err))
                summary.outcomes.append(outcome)
                if outcome.status == "enrolled":
                    since_save += 1
                    if since_save >= INDEX_SAVE_EVERY:
                        lib.save_index()
                        since_save = 0
                if progress:
                    progress(outcome)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            # Also when nothing new was enrolled: a run killed after its last commit but
            # before its index save leaves the index behind the database.
            if since_save or VoiceIndex.saved_generation(lib.root) != lib.store.generation:
                lib.save_index()
    if summary.interrupted:
        raise KeyboardInterrupt
    return summary


@dataclass
class Prepared:
    """A file made ready to commit: its recording, the voice chosen, the gates' verdict (and later its voiceprint)."""

    rec: Any
    chosen: Any
    problems: list
    quality: dict
    vector: np.ndarray | None = None


def _existing(lib: Library, item: EnrolItem) -> dict | None:
    """The voiceprint already enrolled from this file for this person, if any (SQLite: the main thread only)."""
    path = Path(item.path)
    if not path.is_file():
        raise AudioError(path, "file not found", "check the path (manifest paths are relative to the manifest)")
    return lib.store.enrolled_sample(file_sha256(path), item.person, item.id_number, lib.model, item.channel)


def prepare(item: EnrolItem, embedder, min_speech: float | None, force: bool, rec=None) -> Prepared:
    """Everything of an enrolment before the embedding that needs no database: decode, VAD, quality, diarisation, gates."""
    from . import quality as gates
    from .voices import read_voices

    path = Path(item.path)
    rec, voices = read_voices(str(path), embedder, item.channel, min_speech=min_speech, rec=rec)
    chosen = _one_voice(path, rec, voices, item.voice)
    problems = gates.check_enrolment(chosen.quality, str(path), force)
    quality = dict(chosen.quality, voice=chosen.voice, segments=chosen.time_ranges(), forced=problems)
    return Prepared(rec, chosen, problems, quality)


@audit_failure("enrol.refused")  # a refused file leaves an audit row with its full SHA-256
def enrol_one(lib: Library, item: EnrolItem, embedder, min_speech: float | None, force: bool = False, job: Job | None = None) -> EnrolOutcome:
    """Enrol one file (its own transaction); "already" when this file and channel are enrolled for this person.

    ``job`` carries what :class:`Pipeline` looked up and prepared ahead; its exceptions are raised
    here, so refusals are audited the same way."""
    path = Path(item.path)
    category = normalise_category(item.category)
    existing, ready = job.result() if job is not None else (_existing(lib, item), None)
    if existing:
        return EnrolOutcome(str(path), "already", existing["person_id"], existing["id"], existing["channel"])
    if ready is None:
        ready = prepare(item, embedder, min_speech, force)
    vector = ready.vector if ready.vector is not None else embedder.embed(ready.chosen.speech)
    rec, chosen, net = ready.rec, ready.chosen, ready.chosen.net_speech
    store = lib.store
    with store.transaction():
        pid = store.add_person(item.person, item.id_number, category, item.notes)
        if item.phone:
            store.add_phone(item.phone, pid)
        if item.case:
            store.add_case(item.case)
            store.link_case(item.case, pid, item.phone or None)
        rid = store.add_recording(rec.sha256, chosen.channel, path.name, rec.duration, net, rec.source_rate, rec.codec, ready.quality)
        already = store.voiceprint_of(rid, pid, lib.model)
        if already is not None:
            return EnrolOutcome(str(path), "already", pid, already, chosen.channel, net)
        vid = store.add_voiceprint(rid, pid, lib.model, vector)
        store.audit("enrol", f"voiceprint:{vid}", person=pid, recording=rid, sha256=rec.sha256, channel=chosen.channel,
                    voice=chosen.voice, **({"forced": ready.problems} if ready.problems else {}))
    return EnrolOutcome(str(path), "enrolled", pid, vid, chosen.channel, net)


def prepare_group(items: list[EnrolItem], embedder, min_speech: float | None, force: bool) -> list[Prepared | VoiceprintError]:
    """:func:`prepare` of several files, their VAD windows scored together (``audio.score_speech_together``);
    a file's refusal is returned in its place."""
    from . import audio

    recs: list = []
    for item in items:
        try:
            recs.append(audio.load_recording(item.path, channels="each" if item.channel is None else item.channel))
        except VoiceprintError as err:
            recs.append(err)
    audio.score_speech_together([(ch.samples, ch.sample_rate) for rec in recs if not isinstance(rec, VoiceprintError)
                                 for ch in rec.channels])
    out: list[Prepared | VoiceprintError] = []
    for item, rec in zip(items, recs, strict=True):
        try:
            if isinstance(rec, VoiceprintError):
                raise rec
            out.append(prepare(item, embedder, min_speech, force, rec=rec))
        except VoiceprintError as err:
            out.append(err)
    return out


@dataclass
class Job:
    """One item of a :class:`Pipeline`: the lookup done when it was queued, and the worker's preparation."""

    item: EnrolItem
    size: int = 0
    existing: dict | None = None
    error: BaseException | None = None
    future: Future | None = None  # of its group's prepare_group
    index: int = 0

    def prepared(self) -> Prepared | None:
        if self.future is None or self.error is not None:
            return None
        res = self.future.result()[self.index]
        if isinstance(res, VoiceprintError):
            raise res
        return res

    def result(self) -> tuple[dict | None, Prepared | None]:
        if self.error is not None:
            raise self.error
        return self.existing, self.prepared()


class Pipeline:
    """Enrolment items looked up (main thread), prepared (one worker thread) and embedded in batches, in order.

    Up to two groups of ``EMBED_BATCH`` files are queued ahead, fewer when their files add up to more than
    ``AHEAD_BYTES`` (long calls are prepared one at a time); the worker prepares each refill as one
    group (:func:`prepare_group`). When the next file comes up, the prepared files queued behind it
    are embedded with it in one :meth:`Embedder.embed_many` call.
    """

    def __init__(self, lib: Library, items: Iterable[EnrolItem], embedder, min_speech: float | None, force: bool):
        self.lib, self.items, self.embedder = lib, iter(items), embedder
        self.min_speech, self.force = min_speech, force
        self.queue: deque[Job] = deque()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="enrol-prepare")

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _fill(self) -> None:
        """Queue the next ``EMBED_BATCH`` files as one group for the worker while a group is still queued,
        so that the worker prepares one group while this thread embeds and commits the one before."""
        if len(self.queue) > EMBED_BATCH:
            return
        group: list[Job] = []
        while len(self.queue) < 2 * EMBED_BATCH and (not self.queue or sum(j.size for j in self.queue) < AHEAD_BYTES):
            item = next(self.items, None)
            if item is None:
                break
            job = Job(item)
            try:
                job.existing = _existing(self.lib, item)
                job.size = Path(item.path).stat().st_size
            except VoiceprintError as err:
                job.error = err
            if job.error is None and not job.existing:
                job.index = len(group)
                group.append(job)
            self.queue.append(job)
        if group:
            future = self.pool.submit(prepare_group, [j.item for j in group], self.embedder, self.min_speech, self.force)
            for job in group:
                job.future = future

    def next(self) -> Job | None:
        """The next item, with its voiceprint computed (together with those of the prepared items behind it)."""
        self._fill()
        if not self.queue:
            return None
        head = self.queue[0]
        if head.future is not None and head.error is None:
            ready = []
            for job in self.queue:  # the head waits; the rest join the batch only if already prepared
                if job.future is None or (job is not head and not job.future.done()):
                    continue
                try:
                    prep = job.prepared()
                except VoiceprintError:
                    continue  # raised again when that item comes up (and audited there)
                if prep is not None and prep.vector is None:
                    ready.append(prep)
            try:
                vectors = self.embedder.embed_many([p.chosen.speech for p in ready]) if ready else []
            except VoiceprintError:
                vectors = []  # each is embedded alone in enrol_one, where a refusal is audited
            for prep, vec in zip(ready, vectors, strict=False):
                prep.vector = vec
        return self.queue.popleft()


def _one_voice(path: Path, rec, voices: list, voice: int | None):
    """The voice to enrol: the one asked for, or the only one (a call with several must say which)."""
    if voice is not None:
        if not 0 <= voice < len(voices):
            raise AudioError(path, f"holds {len(voices)} voice(s), voice {voice} does not exist",
                             f"use --voice 0 to {len(voices) - 1} (see `voiceprint query` for who speaks when)")
        voices = [voices[voice]]
    if len(voices) > 1:
        how = "one per channel" if rec.n_channels > 1 else "found by diarisation"
        flag = "--channel N" if rec.n_channels > 1 else "--voice N"
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
    ``id_number,channel,notes``), UTF-8 or GBK/GB18030; paths relative to the manifest."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read manifest ({err.strerror})") from err
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise DataError(f"{path}: manifest is neither UTF-8 nor GBK/GB18030 - re-save it as UTF-8")
    reader = csv.DictReader(io.StringIO(text))
    cols = {c.strip().lower() for c in (reader.fieldnames or [])}
    missing = {"path", "person"} - cols
    if missing:
        raise DataError(f"{path}: manifest lacks column(s) {', '.join(sorted(missing))} - expected path,person,category,phone,case")
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
