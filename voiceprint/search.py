"""Search and comparison: who is speaking (``query``, 1:N) and is it the same voice (``verify``, 1:1).

``Library.query``/``verify`` delegate here. A person's score is the cosine between the query and
the mean of their samples; with a fitted back end (:mod:`voiceprint.scoring`) the nearest persons
by cosine are re-ranked by the calibrated LLR of each person's channel pair (ties by the back-end
score: raw scores of different channel pairs are never compared) and each hit carries its likelihood
ratio and the expected number of false hits. Results are :class:`Hit` and :class:`VoiceResult` dataclasses;
their ``to_dict`` is what ``--json`` prints and what the ``Library`` verbs return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .store import assert_sealed, audit_failure

if TYPE_CHECKING:
    from .library import Library

#: With a fitted back end, this many nearest persons by cosine are re-ranked by their calibrated LLR.
RERANK_CANDIDATES = 200


@dataclass
class Hit:
    """One enrolled person as a candidate for a voice, with the evidence for it."""

    rank: int
    person: dict
    score: float
    cosine: float
    evidence: dict  # scoring.evidence: log10 LR, verbal scale, expected false hits (None without a back end)
    sample: dict | None  # the best-matching single voice sample
    voice_samples: int
    phones: list[str]
    cases: list[dict]
    voiceprint: dict  # quality.voiceprint_strength: pooled net speech, weak_voiceprint

    def to_dict(self) -> dict:
        return {"rank": self.rank, "person": self.person, "score": self.score, "cosine": self.cosine, **self.evidence,
                "sample": self.sample, "voice_samples": self.voice_samples, "weak_voiceprint": self.voiceprint["weak_voiceprint"],
                "enrolled_net_speech": self.voiceprint["net_speech"], "phones": self.phones, "cases": self.cases}


@dataclass
class VoiceResult:
    """One voice of a query recording and its hits (an investigative lead, not an identification)."""

    file: str
    sha256: str
    channel: int
    voice: int
    segments: list[list[float]]
    duration: float
    net_speech: float
    source_rate: int
    codec: str
    quality: dict
    warnings: list[str]
    library_size: int
    scoring: str
    hits: list[Hit] = field(default_factory=list)
    kind: str = "investigative lead"
    domain: str = ""  # narrowband (telephone sound, whatever the file's rate) or wideband: which calibration was used

    def to_dict(self) -> dict:
        return {"file": self.file, "sha256": self.sha256, "channel": self.channel, "voice": self.voice,
                "segments": self.segments, "duration": self.duration, "net_speech": self.net_speech,
                "source_rate": self.source_rate, "codec": self.codec, "domain": self.domain, "quality": self.quality, "warnings": self.warnings,
                "library_size": self.library_size, "kind": self.kind, "scoring": self.scoring,
                "hits": [h.to_dict() for h in self.hits]}


@audit_failure("query.failed")  # a failed query leaves an audit row with the file's full SHA-256
def query(lib: Library, path, top: int = 5, channel: int | None = None, min_speech: float | None = None) -> list[VoiceResult]:
    """One result per voice of the recording (each channel of a stereo call, each diarised speaker of a mono one)."""
    from . import quality as gates
    from .scoring import scoring_note

    rec, voices = lib.call_voices(str(path), channel, min_speech)
    rec.channels.clear()  # the voices hold their own speech: free the waveform (460 MB for 2 h) before embedding
    embedder = lib.embedder()
    enrolled_from = lib.store.persons_enrolled_from(rec.sha256, lib.model)
    results = []
    for v in voices:
        vector = embedder.embed(v.speech)
        hits = search(lib, vector, top, rec.domain, v.net_speech)
        warnings = gates.query_warnings(v.quality) + _same_file_warnings(hits, enrolled_from)
        results.append(VoiceResult(
            str(path), rec.sha256, v.channel, v.voice, v.time_ranges(), round(rec.duration, 3), v.net_speech,
            rec.source_rate, rec.codec, v.quality, warnings, int(lib.index.persons.ntotal),
            scoring_note(lib.model), hits, domain=rec.domain))
    with lib.store.transaction():
        lib.store.audit("query", f"sha256:{rec.sha256}", voices=len(results),
                        hits=[[h.person["id"] for h in r.hits] for r in results])
    return results


def _same_file_warnings(hits: list[Hit], enrolled_from: set[int]) -> list[str]:
    """A questioned recording that is itself an enrolled sample matches its own person at the top of the
    scale: that compares a file with itself, not two recordings of one voice, and the result must say so."""
    same = [h for h in hits if h.person["id"] in enrolled_from]
    return [f"the questioned recording is itself enrolled as a sample of person {h.person['id']} ({h.person['name']}; "
            "same SHA-256): its match compares the file with itself, not two recordings of one voice" for h in same]


def search(lib: Library, vector: np.ndarray, top: int, domain: str = "wideband", net_speech: float | None = None) -> list[Hit]:
    """Rank persons. With a fitted back end the nearest persons by cosine are re-ranked by the calibrated
    LLR of each person's channel pair (ties by back-end score) and each hit carries its LR and expected
    false hits; without one, ``score`` is the raw cosine."""
    from . import scoring

    index = lib.index
    if index.persons.ntotal == 0:
        return []
    backend = scoring.load_backend(lib.model)
    size = int(index.persons.ntotal)
    k = top if backend is None else min(size, max(RERANK_CANDIDATES, top * 20))
    p_scores, p_ids = index.search_persons(vector, k)
    cosines = {int(pid): float(sc) for sc, pid in zip(p_scores[0], p_ids[0]) if pid >= 0}
    assert_sealed(lib.store, cosines)  # candidates' rows are checked before they are scored
    pairs: dict[int, Any] = {}
    candidates: dict = {}
    if backend is None:
        ranked = list(cosines.items())[:top]
    else:
        candidates = person_samples(lib, list(cosines))
        scored = scoring.rescore(backend, vector, domain, candidates)
        ranked = rank_by_llr(backend, scored, candidates, net_speech)[:top]
        pairs = {pid: pair for pid, (_, pair) in scored.items()}
    best_sample = _best_samples(lib, vector, top)
    hits: list[Hit] = []
    for pid, score in ranked:
        card = lib.person_card(int(pid))
        sample = best_sample.get(int(pid))
        enrol_net = candidates[pid][2] if pid in candidates else card["voiceprint"]["net_speech"]
        hits.append(Hit(
            len(hits) + 1, card["person"], round(float(score), 4), round(cosines[pid], 4),
            scoring.evidence(backend, score, size, enrol_net, net_speech, pairs.get(pid, "all")),
            None if sample is None else {"voiceprint": int(sample[1]["id"]), "file": sample[1]["original_name"],
                                         "channel": sample[1]["channel"], "score": round(sample[0], 4)},
            card["voice_samples"], card["phones"], card["cases"], card["voiceprint"]))
    return hits


def rank_by_llr(backend, scored: dict, candidates: dict, net_speech: float | None) -> list[tuple[int, float]]:
    """(person id, score), best first, by the calibrated LLR of each person's own channel pair.

    A library holds interviews (wideband) and intercepted calls (narrowband) side by side, and a
    raw score means something different for each channel pair; the LLR does not. Ties (two LLRs at
    the pair's bound) fall back to the score."""
    pids = list(scored)
    if not pids:
        return []
    scores = np.array([scored[p][0] for p in pids])
    enrol_net = np.array([candidates[p][2] for p in pids], np.float64)
    test_net = None if net_speech is None else np.full(len(pids), float(net_speech))
    llrs = backend.llr(scores, enrol_net, test_net, np.array([scored[p][1] for p in pids]))
    order = sorted(range(len(pids)), key=lambda i: (-float(llrs[i]), -float(scores[i])))
    return [(pids[i], float(scores[i])) for i in order]


def _best_samples(lib: Library, vector: np.ndarray, top: int) -> dict[int, tuple[float, dict]]:
    """person id -> (score, voiceprint info) of the person's best-matching single sample among the nearest."""
    s_scores, s_ids = lib.index.search_samples(vector, max(top * 4, 20))
    sample_info = lib.store.voiceprint_info([i for i in s_ids[0] if i >= 0])
    best: dict[int, tuple[float, dict]] = {}
    for score, vid in zip(s_scores[0], s_ids[0]):
        info = sample_info.get(int(vid))
        if info and info["person_id"] not in best:
            best[info["person_id"]] = (float(score), info)
    return best


def person_samples(lib: Library, person_ids: list[int]) -> dict:
    """person id -> (raw sample vectors, their domains, total net speech), for back-end scoring."""
    from .scoring import domain_of

    out: dict[int, tuple[list, list, float]] = {}
    for pid, vec, rate, codec, net in lib.store.person_vectors(lib.model, person_ids):
        vecs, doms, total = out.get(pid, ([], [], 0.0))
        vecs.append(vec)
        doms.append(domain_of(rate, codec))
        out[pid] = (vecs, doms, total + net)
    return {pid: (np.stack(v), d, t) for pid, (v, d, t) in out.items()}


def verify(lib: Library, a, b, channel_a: int | None = None, channel_b: int | None = None) -> dict:
    """1:1 comparison of two recordings (an evaluative comparison): the back-end score, the raw cosine
    and, with a fitted back end, the likelihood ratio and its ENFSI verbal equivalent.

    A recording holding several voices (a stereo call, a mono two-party call) is compared voice by
    voice, as ``query`` reports it: the result is the best-scoring pair, and ``comparisons`` lists
    every pair with the channel, voice and time ranges of each side.
    """
    from . import scoring

    embedder = lib.embedder()
    sides = {key: _verify_voices(lib, path, ch, embedder) for key, path, ch in (("a", a, channel_a), ("b", b, channel_b))}
    backend = scoring.load_backend(lib.model)
    pairs = [_compare(backend, va, vb) for va in sides["a"] for vb in sides["b"]]
    best = max(pairs, key=lambda p: p["score"])
    with lib.store.transaction():
        lib.store.audit("verify", "", a=sides["a"][0]["sha256"], b=sides["b"][0]["sha256"],
                        **({"comparisons": len(pairs)} if len(pairs) > 1 else {}))
    several = len(pairs) > 1
    out = {"kind": "evaluative comparison", **{k: _side(best[k], several) for k in ("a", "b")},
           **{k: v for k, v in best.items() if k not in ("a", "b")}, "scoring": scoring.scoring_note(lib.model)}
    if several:
        out["comparisons"] = [{**{k: _side(p[k], True) for k in ("a", "b")}, **{k: v for k, v in p.items() if k not in ("a", "b")}}
                              for p in pairs]
    if out["a"]["sha256"] == out["b"]["sha256"] and out["a"]["channel"] == out["b"]["channel"]:
        out["a"]["warnings"] = list(out["a"]["warnings"]) + [SAME_FILE_WARNING]  # a file against itself matches any speaker
    return out


#: the warning of a 1:1 comparison of a recording with itself
SAME_FILE_WARNING = ("both sides are the same recording (same SHA-256 and channel): a recording always matches itself, so this "
                     "comparison says nothing about who is speaking - compare it with a different recording")


def _verify_voices(lib: Library, path, channel: int | None, embedder) -> list[dict]:
    from . import quality as gates

    rec, voices = lib.call_voices(str(path), channel)
    return [{"file": str(path), "sha256": rec.sha256, "channel": v.channel, "voice": v.voice, "segments": v.time_ranges(),
             "net_speech": v.net_speech, "vector": embedder.embed(v.speech), "domain": rec.domain,
             "warnings": gates.comparison_warnings(v.quality)}
            for v in voices]


def _compare(backend, va: dict, vb: dict) -> dict:
    """Score voice ``vb`` against ``va`` taken as the model."""
    from . import scoring

    cosine = float(np.dot(va["vector"], vb["vector"]))
    score = cosine
    if backend is not None:
        model = backend.model(va["vector"], va["domain"])
        score = float(backend.score(model, backend.project(vb["vector"], vb["domain"]))[0, 0])
    evidence = scoring.evidence(backend, score, 1, va["net_speech"], vb["net_speech"], scoring.pair_of(va["domain"], vb["domain"]),
                                symmetric=True)
    return {"a": va, "b": vb, "score": round(score, 4), "cosine": round(cosine, 4), **evidence}


def _side(v: dict, several: bool) -> dict:
    """One side as reported: without the vector; with its voice and time ranges when a recording held several voices."""
    keep = ("file", "sha256", "channel", "net_speech", "domain", "warnings") + (("voice", "segments") if several else ())
    return {k: v[k] for k in keep}
