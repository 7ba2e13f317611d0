"""What the workbench's pages show, read from the library. Each function takes the ``Library``
(it runs on the workbench's one library thread) and returns plain dicts, the same for the HTML
page and its ``/api/`` twin. Every read of biometric or case data writes an audit row."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import time
from pathlib import Path

from .. import incoming
from ..errors import AudioError, DataError, NotFound
from ..store import audit_chain_head, browse, pending_voiceprints, verify_audit_chain
from . import accounts

SAFE_NAME = re.compile(r"[^\w.\- ]+", re.UNICODE)


def audit_read(lib, action: str, target: str = "", **detail) -> None:
    """The audit row every read of biometric or case data writes (its own transaction)."""
    with lib.store.transaction():
        lib.store.audit(action, target, **detail)


# -- uploads -----------------------------------------------------------------------------------
#: bytes of a stored upload's name: file systems allow 255, and a Chinese name takes 3 a character
MAX_NAME_BYTES = 180


def _fits(name: str) -> str:
    """``name`` cut (before its suffix, on a character boundary) to ``MAX_NAME_BYTES`` of UTF-8."""
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    stem, suffix = Path(name).stem, Path(name).suffix[:16]
    room = MAX_NAME_BYTES - len(suffix.encode("utf-8")) - 3
    cut = stem.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return f"{cut}...{suffix}"


def receive(lib, fileobj, original_name: str, chunk: int = 1 << 20, taken=()) -> tuple[Path, str, int, str]:
    """Copy an upload into the library's incoming folder (0600): (path, sha256, size, safe name).

    The file keeps its (sanitised) name inside a fresh folder, so what the library records as the
    recording's name is what the user uploaded; nothing is kept until it has decoded. A name already
    ``taken`` by another file of the same form becomes "name (2).wav": a batch is keyed by name."""
    import hashlib

    name = _fits(SAFE_NAME.sub("_", Path(original_name or "upload").name).strip() or "upload")
    if name in taken:
        stem, suffix = Path(name).stem, Path(name).suffix
        name = next(f"{stem} ({k}){suffix}" for k in range(2, len(taken) + 3) if f"{stem} ({k}){suffix}" not in taken)
    incoming.sweep(lib.root)  # what a stopped server was receiving goes before anything new comes in
    folder = incoming.hold_new(lib.root)  # held by this process until kept or discarded
    path = folder / name
    h, size = hashlib.sha256(), 0
    try:
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            while True:
                block = fileobj.read(chunk)
                if not block:
                    break
                h.update(block)
                size += len(block)
                out.write(block)
    except BaseException:  # a full disk, a broken upload: its partial file goes at once, not at the next start
        incoming.release(folder)
        raise
    return path, h.hexdigest(), size, name


def discard(path: Path) -> None:
    """Remove an incoming upload and its folder (a refused upload leaves nothing behind)."""
    incoming.release(path.parent)


def keep(lib, path: Path, sha: str, name: str, size: int) -> None:
    """Keep an upload under its content address; its incoming folder goes whether or not that worked."""
    try:
        accounts.keep_upload(lib, path, sha, name, size)
    finally:
        incoming.release(path.parent)


def query_upload(lib, path: Path, sha: str, name: str, size: int, top: int) -> list[dict]:
    """Query one uploaded recording (decoding it is the type check); kept only when it decoded."""
    try:
        voices = lib.query(path, top=top)
    except AudioError as err:
        discard(path)
        raise AudioError(name, err.reason, err.hint) from None
    except BaseException:
        discard(path)
        raise
    keep(lib, path, sha, name, size)
    for v in voices:
        v["file"] = name
    return voices


def sample_audio(lib, voices: list[dict]) -> dict[int, str]:
    """voiceprint id -> SHA-256 of its recording, for best-matching samples whose audio the library keeps."""
    ids = [h["sample"]["voiceprint"] for v in voices for h in v.get("hits", []) if h.get("sample")]
    info = lib.store.voiceprint_info(ids)
    return {vid: i["sha256"] for vid, i in info.items() if accounts.has_upload(lib.store, i["sha256"])}


def wav_bytes(lib, sha: str) -> bytes:
    """A stored recording as 16 kHz mono WAV that any browser plays (AMR and G.711 do not play natively)."""
    import wave

    import numpy as np

    from .. import audio

    path = accounts.upload_path(lib.root, sha)
    if not re.fullmatch(r"[0-9a-f]{64}", sha) or not path.exists():
        raise NotFound("no such recording under the library")
    rec = audio.load_recording(str(path), channels="mix")
    pcm = (np.clip(rec.channels[0].samples, -1, 1) * 32767).astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rec.channels[0].sample_rate)
        w.writeframes(pcm)
    audit_read(lib, "audio.play", f"sha256:{sha[:16]}")
    return buf.getvalue()


# -- persons, cases, phones --------------------------------------------------------------------
def persons(lib, q: str = "", limit: int = 200) -> dict:
    q = (q or "").strip()
    total, rows = browse.search_persons(lib.store, q, limit)
    audit_read(lib, "person.search", "", results=total)
    return {"q": q, "total": int(total), "persons": rows}


def person(lib, pid: int) -> dict:
    card = lib.person(int(pid))
    card["samples"] = _samples(lib, int(pid))
    audit_read(lib, "person.view", f"person:{int(pid)}")
    return card


def _samples(lib, pid: int) -> list[dict]:
    """A person's voice samples as their card shows them, with whether the workbench keeps each one's audio."""
    return [dict(r) | {"audio": accounts.has_upload(lib.store, r["sha256"])} for r in browse.person_recordings(lib.store, pid)]


def cases(lib, q: str = "") -> dict:
    out = browse.search_cases(lib.store, q)
    audit_read(lib, "case.search", "", results=len(out))
    return {"q": q or "", "cases": out}


def case(lib, case_number: str) -> dict:
    cid = lib.store.case_id(case_number)
    card = browse.case_card(lib.store, cid)
    best = best_hits_now(lib, cid)
    for voice in card["recordings"]:
        voice["best"] = best.get(voice["id"])
    audit_read(lib, "case.view", f"case:{cid}", **({"voices_compared": len(best)} if best else {}))  # each searched the library
    return card


def open_case(lib, case_number: str, title: str = "", date: str = "", area: str = "") -> str:
    """Open a case (its number, title, date, area); an existing number is refused, not merged into."""
    from ..errors import DataError

    number = (case_number or "").strip()
    if (row := lib.store.case_row(number)) is not None:
        raise DataError(f"case {row['case_number']} already exists - open it from the list, or choose another number")
    with lib.writing():
        lib.add_case(number, title.strip(), date.strip() or None, area.strip())
    return str(lib.store.case_row(number)["case_number"])  # as the library keeps it (half-width forms)


def file_uploads(lib, case_number: str, uploads: dict) -> list[dict]:
    """File uploaded recordings under a case (``uploads``: name -> (path, sha, size)): each voice is matched to the
    library or kept as an unknown voice (``voiceprint.linking``); a file that decoded is kept as evidence, a refused
    one leaves nothing behind."""
    lib.store.case_id(case_number)  # NotFound before any work
    by_path = {str(path): (name, path, sha, size) for name, (path, sha, size) in uploads.items()}
    rows = lib.links.add_recordings(case_number, [path for path, _sha, _size in uploads.values()])
    filed = {r["file"] for r in rows if r["status"] != "refused"}
    for key, (name, path, sha, size) in by_path.items():
        if key in filed:
            keep(lib, path, sha, name, size)
        else:
            discard(path)
    for r in rows:
        name, path = by_path[r["file"]][:2]
        r["file"] = name
        r["reason"] = str(r.get("reason") or "").replace(str(path.parent) + "/", "")
    return rows


def best_hits_now(lib, case_id: int) -> dict[int, dict]:
    """Each voice of a case against today's library: its best hit's person and evidence (log10 LR with a
    back end, else the cosine), calibrated for the recording's channel and speech as a query is.

    What a voice matched when it was filed stays on record; persons enrolled since then may be closer."""
    import numpy as np

    from ..quality import QUERY_WEAK_SPEECH_S
    from ..scoring import domain_of
    from ..store import casefile

    if lib.index.persons.ntotal == 0:
        return {}
    best = {}
    for cv_id, _, blob, domain, rate, codec, net in casefile.case_voice_vectors(lib.store, lib.model, case_id=case_id):
        if blob is None:
            continue  # filed before case voices' vectors were kept
        hits = lib.search_vector(np.frombuffer(blob, np.float32), 1, domain or domain_of(int(rate or 0), codec or ""), float(net))
        if hits:
            hit = hits[0]
            best[int(cv_id)] = {"person_id": hit["person"]["id"], "person": hit["person"]["name"], "log10_lr": hit.get("log10_lr"),
                                "at_bound": hit.get("at_bound"), "verbal": hit.get("verbal"), "cosine": hit["cosine"],
                                "weak": float(net) < QUERY_WEAK_SPEECH_S}  # as a query of so little speech is marked
    return best


def phones(lib, q: str = "") -> dict:
    digits = browse.phone_digits(q)  # full-width digits too; a query of no digits finds no phone (not every one)
    out = browse.search_phones(lib.store, digits) if digits or not browse.folded(q) else []
    audit_read(lib, "phone.search", "", results=len(out))
    return {"q": q or "", "phones": out}


def phone(lib, number: str) -> dict:
    """The reverse strike: phone -> registered person -> their cases -> their voice samples, and the calls the
    number made to case victims (:meth:`Library.phone`, which audits the reads)."""
    try:
        data = lib.phone(number)
    except NotFound:
        raise NotFound(f"no phone {number!r} in the library: neither registered to a person nor a case's calling number") from None
    if data["person"] is not None:
        data["person"]["samples"] = _samples(lib, int(data["person"]["person"]["id"]))
    return data


# -- enrolment ---------------------------------------------------------------------------------
def enrol_uploads(lib, items: list, uploads: dict) -> list[dict]:
    """Enrol uploaded files (``uploads``: name -> (path, sha, size)); kept under the library when enrolled.
    A short or noisy file is enrolled with its warning; a person whose pooled speech is still
    below the gate says "weak voiceprint" beside each of their files. The workers are threads here
    (a server thread never forks: :mod:`voiceprint.preparers`)."""
    summary = lib.enrol_many(items)
    weak = {w["person_id"]: w["needs"] for w in summary.weak_persons}
    out = []
    for item, outcome in zip(items, summary.outcomes, strict=False):
        path, sha, size = uploads[Path(item.path).name]
        if outcome.status in ("enrolled", "already"):
            keep(lib, path, sha, Path(path).name, size)
        else:
            discard(path)
        pending = bool(outcome.voiceprint_id and browse.is_pending(lib.store, outcome.voiceprint_id))
        out.append({"file": Path(item.path).name, "person": item.person, "status": "pending approval" if pending and outcome.status == "enrolled"
                    else outcome.status, "voiceprint": outcome.voiceprint_id, "person_id": outcome.person_id,
                    "net_speech": outcome.net_speech, "reason": outcome.reason.replace(str(path.parent) + "/", ""),
                    "warnings": "; ".join(outcome.warnings), "weak": weak.get(outcome.person_id, "")})
    return out


def manifest_items(lib, text: str, uploads: dict, name: str = "manifest.csv") -> list:
    """Rows of an uploaded manifest whose ``path`` names one of the uploaded files; a refusal names the
    manifest as the user uploaded it (``name``), never the server's copy."""
    from ..library import read_manifest

    if not uploads:
        raise DataError("choose the recording(s) to enrol")
    folder = Path(next(iter(uploads.values()))[0]).parent  # an upload's own folder: held, so a kill leaves it to the sweep
    tmp = folder / f"manifest-{secrets.token_hex(4)}.csv"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as fh:
        fh.write(text)
    try:
        items = read_manifest(tmp)
    except DataError as err:
        raise DataError(str(err).replace(str(tmp), Path(name).name)) from None
    finally:
        tmp.unlink()
    for it in items:
        name = Path(it.path).name
        if name not in uploads:
            raise DataError(f"manifest row for {name!r}: that file was not uploaded with the manifest - select it too")
        it.path = str(uploads[name][0])
    return items


def pending(lib) -> list[dict]:
    """The enrolments waiting for approval (names, recordings): a read of biometric data, audited."""
    rows = pending_voiceprints(lib.store)
    for r in rows:
        r["audio"] = accounts.has_upload(lib.store, r["sha256"])
    audit_read(lib, "pending.view", "", pending=len(rows))
    return rows


# -- links, leads, audit -----------------------------------------------------------------------
def links(lib, min_cases: int = 2) -> list[dict]:
    from ..linking import clusters

    found = clusters(lib, min_cases=min_cases)
    audit_read(lib, "link.view", "", clusters=len(found))
    return found


def read_leads(path: Path) -> list[dict]:
    """The rows of a leads file from ``voiceprint calls leads --out leads.json``; NotFound or DataError in one line."""
    how = "write it with `voiceprint calls leads --out leads.json`"
    if not Path(path).is_file():
        raise NotFound(f"{path}: no such leads file - {how}")
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a leads JSON file ({str(err).splitlines()[0]}) - {how}") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise DataError(f"{path}: not a leads JSON file (a list of leads) - {how}")
    return rows


def leads(lib, path: Path | None) -> dict:
    """Ranked CDR leads (from ``voiceprint calls leads --out leads.json``), each followed into the library."""
    if path is None:
        return {"source": None, "leads": []}
    rows = read_leads(path)
    for r in rows:
        hit = lib.lookup_person(phone=r.get("number"))
        r["library"] = None if hit is None else {"id": hit["person"]["id"], "name": hit["person"]["name"],
                                                 "category": hit["person"]["category"], "cases": [c["case_number"] for c in hit["cases"]]}
        if isinstance(r.get("reasons"), str):
            r["reasons"] = [x.strip() for x in r["reasons"].split(";") if x.strip()]
    audit_read(lib, "leads.view", "", leads=len(rows))
    return {"source": Path(path).name, "leads": rows}


def audit_rows(lib, action: str = "", operator: str = "", since: str = "", limit: int = 500) -> dict:
    since_ts = None
    if since:
        try:
            from datetime import datetime

            since_ts = datetime.fromisoformat(since).timestamp()
        except ValueError as err:
            raise DataError(f"since={since!r} is not a date - use YYYY-MM-DD") from err
    rows = [r | {"time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["ts"]))}
            for r in browse.filtered_audit(lib.store, action, operator, since_ts, limit)]
    chain, head = verify_audit_chain(lib.store), audit_chain_head(lib.store)  # the head of what was verified
    audit_read(lib, "audit.view", "", rows=len(rows))  # this view's own row comes after it
    return {"rows": rows, "chain": chain, "head": head, "filters": {"action": action, "operator": operator, "since": since}}


def audit_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "time", "operator", "action", "target", "detail", "hash"])
    for r in rows:
        w.writerow([r["id"], r["time"], r["operator"], r["action"], r["target"], r["detail"], r["hash"]])
    return buf.getvalue()
