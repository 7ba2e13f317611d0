"""The lead graph: numbers, persons, cases, voices and handsets, joined by edges that carry their evidence.

Nodes are strings: ``number:+86139...``, ``person:12`` (a library person), ``reg:<ID number>`` (a person
known only from the subscriber registry), ``case:AJ2026-0815``, ``voice:7`` (a voice heard in a case
recording), ``cluster:3`` (an unknown voice linked across cases), ``handset:<IMEI>``. Edges
(``lead_edges`` in the library database) are grouped by the *origin* they are built from:

- ``library``: number registered to person (phones), number called the victim in case (the case file),
  voice heard in case (case recordings), voice member of an unknown-voice cluster;
- ``registry``: number registered to person (the imported subscriber registry Parquet);
- ``cdr``: number scored by the calling screen (the rule score over ``calls features``), with its reasons
  and its calibrated log10 LR (``voiceprint/calls/calibration_rule.json``);
- ``handset``: number used a handset (IMEI) that other numbers used too (the imported calls Parquet);
- ``community``: two numbers share a calling community: both in contact with at least two rare
  counter-parties (ones that at most 20 numbers reach), as ``calls features`` counts them;
- ``voice``: voice matches person, the back end's calibrated log10 LR: the top hits of every case voice among
  all enrolled persons (searched once per voice, again only when the enrolled voiceprints change);
- ``reach``: the same LR for every enrolled person a number path leads to from the voice's case.

Each origin is rebuilt only when its inputs changed (``lead_state`` keeps a fingerprint per origin: file
size and mtime for the CDR files, the audit trail and voiceprint generation for the library), so repeated
``voiceprint leads`` calls are cheap and a new case file or recording refreshes only what depends on it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .errors import DataError
from .store import casefile
from .store.schema import id_key

#: Handsets used by more numbers than this are SIM boxes or data artefacts, not one den's phones.
MAX_NUMBERS_PER_HANDSET = 20
#: Voice hits kept per case voice (besides the persons a number path leads to).
VOICE_TOP = 5
ORIGINS = ("library", "registry", "cdr", "handset", "community", "voice", "reach")
SOURCE_KEYS = ("calls", "features", "registry", "calibration")
MADE_BY = {"calls": "`voiceprint calls import`", "features": "`voiceprint calls features`",
           "registry": "`voiceprint calls import FILE --kind registry`", "calibration": "scripts/fit_cdr_calibration.py"}

Edge = tuple[str, str, str, "float | None", dict]


def default_calibration() -> Path:
    return Path(__file__).resolve().parent / "calls" / "calibration_rule.json"


def sources(store) -> dict:
    """The CDR files this library's lead graph is built from (remembered from the last refresh)."""
    return json.loads(store.get_meta("graph.sources", "{}") or "{}")


def _configure(lib, given: dict) -> tuple[dict, bool]:
    """The remembered sources with the ones given now, and whether they changed (saved by ``refresh``
    only once the graph is built from them: a wrong file must not be remembered for the next run)."""
    from .calls.ingest import imported_table

    known = sources(lib.store)
    changed = False
    for key in SOURCE_KEYS:
        value = given.get(key)
        if value is None:
            continue
        path = Path(value)
        if not path.exists():
            raise DataError(f"{path}: no such file - give the {key} file made by {MADE_BY[key]}")
        if key in ("calls", "registry"):
            imported_table(path, key)  # a raw or another kind of table is refused here, not deep in SQL
        if known.get(key) != str(path.resolve()):
            known[key] = str(path.resolve())
            changed = True
    return known, changed


def _file_fp(path: str | None) -> str:
    if not path:
        return "-"
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: the lead graph was built from this file and it is gone - pass its replacement "
                        "(--calls/--features/--registry) to `voiceprint leads`")
    st = p.stat()
    return f"{p}:{st.st_size}:{st.st_mtime_ns}"


#: Audit actions that change nothing the graph reads (searches, reports, the graph itself).
READ_ONLY_ACTIONS = ("query", "verify", "screen", "leads", "graph.refresh")


def _library_fp(store) -> str:
    audit_id = casefile.last_audit_id_except(store, READ_ONLY_ACTIONS)
    return f"{audit_id}:{store.generation}"


def _enrolled_fp(store, model: str) -> str:
    """Changes when enrolled voiceprints change (the persons every case voice is searched against)."""
    n, top = casefile.enrolled_count_and_top(store, model)
    return f"{model}:{n}:{top}:{store.generation}"


def refresh(lib, calls=None, features=None, registry=None, calibration=None, force: bool = False, need_cdr: bool = True) -> dict:
    """Bring the lead graph up to date with the library and the CDR files; returns what each origin did.

    An origin whose fingerprint is unchanged is kept. ``voice`` (each case voice's top hits among all enrolled
    persons, the costly part) is extended with the new case voices only, unless the enrolled voiceprints changed.
    """
    srcs, changed = _configure(lib, {"calls": calls, "features": features, "registry": registry, "calibration": calibration})
    cal = srcs.get("calibration") or str(default_calibration())

    def file_fp(*paths) -> str | None:
        """The files' fingerprint; None when one is gone and no CDR evidence is asked for (its edges are kept)."""
        try:
            return "|".join(_file_fp(p) for p in paths)
        except DataError:
            if need_cdr:
                raise
            return None

    fps: dict[str, str | None] = {
        "library": _library_fp(lib.store),
        "registry": file_fp(srcs.get("registry")),
        "cdr": file_fp(srcs.get("features"), cal),
        "handset": file_fp(srcs.get("calls")),
        "community": file_fp(srcs.get("calls")),
        "voice": _enrolled_fp(lib.store, lib.model),
    }
    fps["reach"] = "|".join(str(fps[k]) for k in ("library", "registry", "handset", "community", "voice"))
    builders: dict[str, Callable[[bool], Iterable[Edge]]] = {
        "library": lambda full: library_edges(lib.store),
        "registry": lambda full: registry_edges(srcs.get("registry")),
        "cdr": lambda full: cdr_edges(srcs.get("features"), cal),
        "handset": lambda full: handset_edges(srcs.get("calls")),
        "community": lambda full: community_edges(srcs.get("calls")),
        "voice": lambda full: voice_edges(lib, only_new=not full),
        "reach": lambda full: reach_edges(lib),
    }
    report = {}
    for origin in ORIGINS:
        fp = fps[origin]
        if fp is None:
            report[origin] = "kept (its CDR file is gone; voice leads do not need it)"
            continue
        built_at = casefile.lead_fingerprint(lib.store, origin)
        full = force or built_at is None or built_at != fp
        if not full and origin != "voice":
            report[origin] = "unchanged"
            continue
        t0 = time.time()
        edges = list(builders[origin](full))
        if not full and not edges:
            report[origin] = "unchanged"
            continue
        with lib.writing(), lib.store.transaction():
            casefile.store_lead_edges(lib.store, origin, edges, full, fp)
            lib.store.audit("graph.refresh", f"origin:{origin}", edges=len(edges), full=full)
        report[origin] = f"{'rebuilt' if full else 'extended'} ({len(edges)} edges, {time.time() - t0:.2f} s)"
    if changed:
        with lib.writing(), lib.store.transaction():
            lib.store.set_meta("graph.sources", json.dumps(srcs))
    return report


# -- builders -----------------------------------------------------------------------------------
def library_edges(store) -> Iterator[Edge]:
    """Phones of persons, the case file's calls, voices heard in cases and their unknown-voice clusters."""
    for number, pid in casefile.registered_phones(store):
        yield f"number:{number}", f"person:{pid}", "registered_to", None, {"source": "library"}
    calls: dict[tuple[str, str], dict] = {}
    for case_number, number, called_at, victim in casefile.call_rows(store):
        ev = calls.setdefault((number, case_number), {"called_at": [], "victim_number": victim})
        if called_at:
            ev["called_at"].append(called_at)
    for (number, case_number), ev in calls.items():
        yield f"number:{number}", f"case:{case_number}", "called_victim", None, ev
    for r in casefile.heard_in_rows(store):
        yield (f"voice:{r[0]}", f"case:{r[1]}", "heard_in", None,
               {"file": r[2], "channel": r[3], "voice": r[4], "segments": json.loads(r[5]), "net_speech": r[6]})
    for cv_id, cluster, status in casefile.case_voice_clusters(store):
        yield f"voice:{cv_id}", f"cluster:{cluster}", "member_of", None, {"status": status}


def registry_edges(path: str | None) -> Iterator[Edge]:
    """Number registered to person, from an imported registry Parquet (``calls import --kind registry``)."""
    if not path:
        return
    from .calls.graphsrc import registry_rows

    cols, rows = registry_rows(path)
    if "number" not in cols or "name" not in cols:
        raise DataError(f"{path}: not a registry (needs number and name) - import it with `voiceprint calls import FILE --kind registry`")
    ix = {c: i for i, c in enumerate(cols)}
    for r in rows:
        name = r[ix["name"]]
        idn = id_key(str(r[ix["id_number"]])) if "id_number" in ix and r[ix["id_number"]] else ""
        if not r[ix["number"]] or not (name or idn):
            continue
        ev = {"name": name, "id_number": idn, "source": "registry"}
        if "home_county" in ix:
            ev["home_county"] = r[ix["home_county"]]
        yield f"number:{r[ix['number']]}", f"reg:{idn or name}", "registered_to", None, ev


def load_calibration(path: str | Path | None = None) -> dict:
    p = Path(path) if path else default_calibration()
    try:
        cal = json.loads(p.read_text(encoding="utf-8"))
        cal["llr"]["intercept"], cal["llr"]["slope"], cal["llr_limit"][1]  # noqa: B018 - shape check
    except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
        raise DataError(f"{p}: not a CDR score calibration ({err}) - make one with scripts/fit_cdr_calibration.py") from err
    return cal


def cdr_log10_lr(score: float, cal: dict) -> float:
    """The calling screen's rule score as a bounded log10 likelihood ratio (fraud number vs normal number)."""
    llr = cal["llr"]["intercept"] + cal["llr"]["slope"] * float(score)
    lo, hi = cal["llr_limit"]
    return round(min(max(llr, lo), hi) / math.log(10), 3)


def cdr_edges(features: str | None, calibration: str | None) -> Iterator[Edge]:
    """Every number of the feature table, with its rule score, reasons and calibrated log10 LR."""
    if not features:
        return
    from .calls.scoring import load_feature_table, rule_reasons, rule_score

    cal = load_calibration(calibration)
    table = load_feature_table(features)
    if table.canonical.empty:
        raise DataError(f"{features}: no calling-screen signals in this table - pass the output of `voiceprint calls features`")
    scores, signals = rule_score(table.canonical)
    medians = table.canonical.median(numeric_only=True).to_dict()
    reasons = rule_reasons(table.canonical, signals, medians, top=3)
    for number, score, why in zip(table.frame.index, scores, reasons, strict=False):
        yield (f"number:{number}", "screen", "cdr_score", cdr_log10_lr(score, cal),
               {"score": round(float(score), 4), "reasons": why})


def handset_edges(calls: str | None) -> Iterator[Edge]:
    """Numbers on handsets (IMEIs) shared by 2..MAX_NUMBERS_PER_HANDSET numbers, from the calls Parquet."""
    if not calls:
        return
    from .calls.graphsrc import shared_handset_rows

    rows = shared_handset_rows(calls, MAX_NUMBERS_PER_HANDSET)
    for number, imei, n in rows:
        yield f"number:{number}", f"handset:{imei}", "uses_handset", None, {"calls": int(n)}


def community_edges(calls: str | None) -> Iterator[Edge]:
    """Numbers sharing a calling community: both in contact with at least ``COMMUNITY_MIN_SHARED`` rare counter-parties
    (the pairs behind ``calls features``' community_size), from the calls Parquet."""
    if not calls:
        return
    from .calls.features import COMMUNITY_MIN_SHARED, RARE_CONTACT_MAX_DEGREE
    from .calls.graphsrc import shared_contact_rows

    for a, b, shared in shared_contact_rows(calls, RARE_CONTACT_MAX_DEGREE, COMMUNITY_MIN_SHARED):
        yield f"number:{a}", f"number:{b}", "shares_contacts", None, {"shared_contacts": int(shared)}


def _case_voice_rows(lib, only_unsearched: bool = False) -> list:
    """(case voice id, case number, raw vector blob, domain, rate, codec, net speech) of the filed case voices."""
    return casefile.case_voice_vectors(lib.store, lib.model, only_unsearched)


def voice_edges(lib, only_new: bool = False) -> Iterator[Edge]:
    """Voice matches person: each case voice's top hits among all enrolled persons (``only_new``: voices not yet searched)."""
    import numpy as np

    from . import scoring
    from .search import search

    if scoring.load_backend(lib.model) is None:
        return  # no calibrated back end: voice comparisons carry no LR, so they are not evidence here
    rows = _case_voice_rows(lib, only_new)
    if not rows or lib.index.persons.ntotal == 0:
        return
    for cv_id, _, blob, domain, rate, codec, net in rows:
        if blob is None:
            continue  # matched at filing before vectors were kept: re-file the recording to score it
        domain = domain or scoring.domain_of(int(rate or 0), codec or "")
        yield f"voice:{cv_id}", "library", "searched", None, {"persons": int(lib.index.persons.ntotal)}
        found = search(lib, np.frombuffer(blob, np.float32), VOICE_TOP, domain, float(net))
        for hit in (h.to_dict() for h in found):
            if hit.get("log10_lr") is None:
                continue
            yield (f"voice:{cv_id}", f"person:{hit['person']['id']}", "matches", hit["log10_lr"],
                   {"llr": hit["llr"], "score": hit["score"], "verbal": hit["verbal"], "rank": hit["rank"],
                    "sample": (hit.get("sample") or {}).get("file")})


def reach_edges(lib) -> Iterator[Edge]:
    """Voice matches person, for every enrolled person a number path reaches from the voice's case (not already a top hit)."""
    import numpy as np

    from . import scoring
    from .search import person_samples

    backend = scoring.load_backend(lib.model)
    if backend is None:
        return
    store = lib.store
    reach = _reachable_persons(store)
    seen: dict[str, set[int]] = {}
    for src, dst in casefile.lead_edge_pairs(store, "voice", "matches"):
        seen.setdefault(src, set()).add(int(dst[7:]))
    rows = [r for r in _case_voice_rows(lib) if r[2] is not None and reach.get(r[1])]
    if not rows:
        return
    size = max(int(lib.index.persons.ntotal), 1)
    for cv_id, case_number, blob, domain, rate, codec, net in rows:
        extra = sorted(p for p in reach[case_number] if p not in seen.get(f"voice:{cv_id}", set()))
        samples = person_samples(lib, extra)
        domain = domain or scoring.domain_of(int(rate or 0), codec or "")
        for pid, (score, pair) in scoring.rescore(backend, np.frombuffer(blob, np.float32), domain, samples).items():
            ev = scoring.evidence(backend, score, size, samples[pid][2], float(net), pair)
            yield (f"voice:{cv_id}", f"person:{pid}", "matches", ev["log10_lr"],
                   {"llr": ev["llr"], "score": round(score, 4), "verbal": ev["verbal"], "rank": None})


def _reachable_persons(store) -> dict[str, set[int]]:
    """case number -> library persons a number path reaches (caller's owner, or an owner on the caller's handset
    or in its calling community)."""
    owners: dict[str, set[int]] = {}
    for number, pid in casefile.registered_phones(store):
        owners.setdefault(number, set()).add(int(pid))
    by_id = {idn: pid for pid, idn in casefile.id_numbers(store)}
    for src, dst in casefile.lead_edge_pairs(store, "registry"):
        owner = by_id.get(dst[4:])
        if owner is not None:
            owners.setdefault(src[7:], set()).add(owner)
    handsets: dict[str, set[str]] = {}
    on_handset: dict[str, set[str]] = {}
    for src, dst in casefile.lead_edge_pairs(store, "handset"):
        handsets.setdefault(src[7:], set()).add(dst)
        on_handset.setdefault(dst, set()).add(src[7:])
    near: dict[str, set[str]] = {n: {m for h in hs for m in on_handset[h]} for n, hs in handsets.items()}
    for src, dst in casefile.lead_edge_pairs(store, "community"):
        near.setdefault(src[7:], set()).add(dst[7:])
        near.setdefault(dst[7:], set()).add(src[7:])
    out: dict[str, set[int]] = {}
    for case_number, number in casefile.case_call_numbers(store):
        numbers = {number} | near.get(number, set())
        out.setdefault(case_number, set()).update(p for n in numbers for p in owners.get(n, ()))
    return out
