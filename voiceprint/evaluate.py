"""Speaker-recognition evaluation on labelled corpora: trials, EER, minDCF, Cllr, top-k, plots.

The embeddings are made exactly as the library makes them (:func:`voiceprint.voices.read_voices`
on channel 0, then ``Embedder.embed``), optionally after a telephone-codec round trip
(:mod:`voiceprint.telephone`), and cached in ``out/cache/embeddings.sqlite``.

Trials: per corpus (one manifest), the first ``enrol`` recordings of each speaker (manifest
order) enrol it - the speaker model is the normalised mean of their embeddings, as in the
library - and every other recording is a test scored against every enrolled speaker of the
corpus. Two systems are scored side by side: the plain cosine (``baseline``) and the fitted
back end of :mod:`voiceprint.scoring` (``backend``).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import AudioError, DataError, not_a_text_table

log = logging.getLogger("voiceprint")

#: Embeddings are cached down to this much net speech; ``min_speech`` filters afterwards.
EMBED_FLOOR_SECONDS = 0.1
#: Net-speech buckets (seconds) of the test recording.
DURATION_BUCKETS = ((0.0, 2.0, "<2s"), (2.0, 5.0, "2-5s"), (5.0, 10.0, "5-10s"), (10.0, float("inf"), ">=10s"))
P_TARGET = 0.01


def cache_path() -> Path:
    env = os.environ.get("VOICEPRINT_CACHE")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "out" / "cache" / "embeddings.sqlite"


# --------------------------------------------------------------------------------------------------
# Manifests and embeddings
# --------------------------------------------------------------------------------------------------


@dataclass
class Item:
    """One recording of a corpus and, once embedded, its voiceprint."""

    path: str
    speaker: str
    corpus: str
    vector: np.ndarray | None = None
    net_speech: float = 0.0
    source_rate: int = 0
    codec: str = ""
    refused: str = ""
    channel_rate: int = 0  # 8000 for telephone-band sound, whatever the file's rate (audio.Recording.channel_rate)

    @property
    def domain(self) -> str:
        """The channel as the library tells it, by the sound (a call saved as a 16 kHz WAV is narrowband)."""
        from .scoring import domain_of

        return domain_of(self.channel_rate or self.source_rate, self.codec)


def read_eval_manifest(path: str | os.PathLike) -> list[Item]:
    """Rows of a ``path,speaker`` CSV (paths relative to the manifest); corpus = the manifest's folder name."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise not_a_text_table(path) from None
    except OSError as err:
        raise DataError(f"{path}: cannot read manifest ({err.strerror})") from err
    if "\x00" in text:
        raise not_a_text_table(path)
    reader = csv.DictReader(text.splitlines())
    cols = {c.strip().lower() for c in reader.fieldnames or []}
    if not {"path", "speaker"} <= cols:
        raise DataError(f"{path}: an evaluation manifest needs columns path,speaker - found {', '.join(sorted(cols))}")
    corpus = path.parent.name or path.stem
    items = []
    for row in reader:
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if not row["path"] or not row["speaker"]:
            continue
        p = Path(row["path"])
        items.append(Item(str(p if p.is_absolute() else path.parent / p), row["speaker"], corpus))
    if not items:
        raise DataError(f"{path}: manifest has no rows")
    return items


def embed_items(items: list[Item], model: str | None = None, variant: str = "", progress=None,
                cached_only: bool = False, max_speech: float | None = None) -> list[Item]:
    """Fill ``vector``/``net_speech``/``source_rate``/``codec`` (or ``refused``) of each item, via the cache.

    ``variant`` names a telephone simulation of :mod:`voiceprint.telephone` ("" = the file as it is).
    ``cached_only``: an item not in the cache is refused instead of embedded (fitting scripts on a
    busy machine use what was embedded). ``max_speech``: embed only the first that many seconds of
    the audio the model would embed (speech with its context), a short-sample condition made from
    longer recordings; ``net_speech`` is then at most that.
    """
    from .audio import TARGET_RATE
    from .cache import EmbeddingCache, cache_key
    from .embedding import get_embedder, load_spec
    from .telephone import simulated
    from .voices import file_sha256, read_voices

    spec = load_spec(model)
    if spec.kind == "fusion":
        if max_speech:
            raise DataError("--test-speech is not supported for fusion models")
        return _embed_fused(items, spec, variant, progress, cached_only)
    key_variant = f"{variant}|first{max_speech:g}s" if max_speech else variant
    cache = EmbeddingCache(cache_path())
    try:
        for n, item in enumerate(items):
            if not Path(item.path).is_file():
                item.refused = f"{item.path}: file not found"
                continue
            key = cache_key(spec.fingerprint, file_sha256(item.path), 0, key_variant)
            hit = cache.get(key)
            if hit is None and cached_only:
                item.refused = f"{item.path}: not in the embedding cache"
                continue
            if hit is None:
                try:
                    rec, [voice] = _read_channel0(item.path, variant, simulated, read_voices)
                except AudioError as err:
                    item.refused = str(err)
                    continue
                speech, net = voice.speech, voice.net_speech
                if max_speech:
                    speech, net = speech[:int(max_speech * TARGET_RATE)], min(net, max_speech)
                vector = get_embedder(spec.name).embed(speech)
                info = {"net_speech": net, "source_rate": rec.source_rate, "channel_rate": rec.channel_rate,
                        "codec": rec.codec, "duration": round(rec.duration, 3)}
                cache.put(key, vector, info)
                hit = (vector, info)
            elif "channel_rate" not in hit[1]:  # cached before the channel was told by the sound
                try:
                    hit[1]["channel_rate"] = _channel_rate(item.path, variant, int(hit[1].get("source_rate", 0)))
                except AudioError as err:
                    item.refused = str(err)
                    continue
                cache.put(key, hit[0], hit[1])
            item.vector, info = hit
            item.net_speech = float(info.get("net_speech", 0.0))
            item.source_rate = int(info.get("source_rate", 0))
            item.channel_rate = int(info.get("channel_rate", 0))
            item.codec = str(info.get("codec", ""))
            if progress:
                progress(n + 1, len(items))
    finally:
        cache.close()
    return items


def _channel_rate(path: str, variant: str, source_rate: int) -> int:
    """The rate of the channel the speech came through (decoding only; no VAD, no model)."""
    from .audio import PHONE_BAND_RATE, load_recording
    from .telephone import simulated

    if source_rate and source_rate <= PHONE_BAND_RATE:
        return source_rate
    if variant:
        with simulated(path, variant) as tmp:
            return load_recording(tmp, channels=0).channel_rate
    return load_recording(path, channels=0).channel_rate


def _read_channel0(path: str, variant: str, simulated, read_voices):
    """Channel 0 of a file (after the telephone simulation ``variant``, if any) as one voice, not diarised."""
    if variant:
        with simulated(path, variant) as tmp:
            return read_voices(tmp, None, channel=0, diarise=False, min_speech=EMBED_FLOOR_SECONDS, measure=False)
    return read_voices(path, None, channel=0, diarise=False, min_speech=EMBED_FLOOR_SECONDS, measure=False)


def vector_of(item: Item) -> np.ndarray:
    """The voiceprint of an embedded, unrefused item."""
    if item.vector is None:
        raise DataError(f"{item.path}: not embedded{' (' + item.refused + ')' if item.refused else ''}")
    return item.vector


def _embed_fused(items: list[Item], spec, variant: str, progress=None, cached_only: bool = False) -> list[Item]:
    """A fusion model's vectors, composed from each component's (cached) vectors."""
    from dataclasses import replace

    from .embedding import fuse, fusion_centres

    centres = fusion_centres(spec)
    parts = []
    for name, _ in spec.components:
        copies = [replace(item, vector=None, refused="") for item in items]
        parts.append(embed_items(copies, name, variant, progress, cached_only))
    for n, item in enumerate(items):
        first = parts[0][n]
        item.net_speech, item.source_rate, item.codec, item.channel_rate = first.net_speech, first.source_rate, first.codec, first.channel_rate
        item.refused = next((p[n].refused for p in parts if p[n].refused), "")
        item.vector = None if item.refused else fuse(spec, [vector_of(p[n]) for p in parts], centres)
    return items


def select_items(items: list[Item], speakers: str = "all", per_speaker: int | None = None) -> list[Item]:
    """Keep one split of the speakers (``all``, ``dev`` or ``test``: :func:`split_of`) and at most
    ``per_speaker`` recordings of each, in manifest order."""
    if speakers not in ("all", "dev", "test"):
        raise DataError(f"unknown speaker split {speakers!r} - use all, dev or test")
    counts: dict[str, int] = {}
    out = []
    for item in items:
        if speakers != "all" and split_of(item.speaker) != speakers:
            continue
        counts[item.speaker] = counts.get(item.speaker, 0) + 1
        if per_speaker is None or counts[item.speaker] <= per_speaker:
            out.append(item)
    return out


def split_of(speaker: str) -> str:
    """Deterministic speaker-disjoint split: ``dev`` (back-end fitting) or ``test`` (reporting), ~50/50.

    Decided by the first byte of SHA-256 of the speaker id, so it never depends on which files
    or corpora are loaded together.
    """
    return "dev" if hashlib.sha256(speaker.encode("utf-8")).digest()[0] < 128 else "test"


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


def _rates(tar: np.ndarray, non: np.ndarray):
    """Miss and false-alarm rates at every distinct threshold (accept when score >= threshold), ascending."""
    thresholds = np.append(np.unique(np.concatenate([tar, non])), np.inf)
    miss = np.searchsorted(np.sort(tar), thresholds, side="left") / len(tar)
    fa = 1.0 - np.searchsorted(np.sort(non), thresholds, side="left") / len(non)
    return miss, fa


def eer(tar, non) -> float:
    """Equal error rate: at the threshold where the miss and false-alarm rates are closest, their mean.

    (The common "ROC point nearest the diagonal" definition; ``scripts/check_scores.py``
    recomputes it independently from a trial file.)
    """
    tar, non = np.asarray(tar, float), np.asarray(non, float)
    if not len(tar) or not len(non):
        return float("nan")
    miss, fa = _rates(tar, non)
    i = int(np.argmin(np.abs(miss - fa)))
    return float((miss[i] + fa[i]) / 2)


def min_dcf(tar, non, p_target: float = P_TARGET) -> float:
    """Minimum normalised detection cost (C_miss = C_fa = 1)."""
    tar, non = np.asarray(tar, float), np.asarray(non, float)
    if not len(tar) or not len(non):
        return float("nan")
    miss, fa = _rates(tar, non)
    cost = p_target * miss + (1 - p_target) * fa
    return float(cost.min() / min(p_target, 1 - p_target))


def cllr(tar_llr, non_llr) -> float:
    """Log-likelihood-ratio cost (bits) of natural-log LRs: 0 perfect, 1 = an uninformative system."""
    tar_llr, non_llr = np.asarray(tar_llr, float), np.asarray(non_llr, float)
    if not len(tar_llr) or not len(non_llr):
        return float("nan")
    return float((np.mean(np.logaddexp(0, -tar_llr)) + np.mean(np.logaddexp(0, non_llr))) / (2 * np.log(2)))


def elub(tar_llr, non_llr, add_misleading: int = 1) -> tuple[float, float]:
    """Empirical lower and upper bounds (natural-log LR) that validation trials can support.

    Vergeer et al. 2016 (Science & Justice 56: 482-491): with ``add_misleading`` maximally misleading
    trials added to each side, the upper bound is the lowest LR threshold t > 1 at which the system's
    normalised Bayes error, P(miss at t) + t * P(false alarm at t), is no longer below the
    uninformative system's 1; the lower bound mirrors it (P(miss)/t + P(false alarm) for t < 1).
    LRs beyond these bounds claim more than the data behind them can show.
    """
    tar = np.sort(np.asarray(tar_llr, float))
    non = np.sort(np.asarray(non_llr, float))
    if not len(tar) or not len(non):
        return (float("-inf"), float("inf"))
    n_t, n_n = len(tar) + add_misleading, len(non) + add_misleading
    hi_max = np.log(n_n) + 1.0
    lo_min = -np.log(n_t) - 1.0
    upper = np.linspace(0.0, hi_max, 2001)[1:]
    miss = (np.searchsorted(tar, upper, side="left") + add_misleading) / n_t
    fa = (len(non) - np.searchsorted(non, upper, side="left") + add_misleading) / n_n
    crossed = miss + np.exp(upper) * fa >= 1.0
    hi = float(upper[np.argmax(crossed)]) if crossed.any() else float(hi_max)
    lower = -np.linspace(0.0, -lo_min, 2001)[1:]
    miss = (np.searchsorted(tar, lower, side="right") + add_misleading) / n_t
    fa = (len(non) - np.searchsorted(non, lower, side="right") + add_misleading) / n_n
    crossed = miss * np.exp(-lower) + fa >= 1.0
    lo = float(lower[np.argmax(crossed)]) if crossed.any() else float(lo_min)
    return lo, hi


def pav_llr(tar, non) -> tuple[np.ndarray, np.ndarray]:
    """Optimally calibrated LLRs (pool-adjacent-violators on the scores), for Cllr_min."""
    scores = np.concatenate([tar, non])
    labels = np.concatenate([np.ones(len(tar)), np.zeros(len(non))])
    order = np.lexsort((-labels, scores))  # ties: targets first (the pessimistic PAV convention)
    y = labels[order]
    # pool adjacent violators
    vals, wts, sizes = [], [], []
    for v in y:
        vals.append(v)
        wts.append(1.0)
        sizes.append(1)
        while len(vals) > 1 and vals[-2] >= vals[-1]:
            w = wts[-2] + wts[-1]
            v2 = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / w
            s = sizes[-2] + sizes[-1]
            vals[-2:], wts[-2:], sizes[-2:] = [v2], [w], [s]
    post = np.repeat(vals, sizes)
    eps = 1e-12
    post = np.clip(post, eps, 1 - eps)
    prior_logodds = np.log(len(tar) / len(non))
    llr_sorted = np.log(post) - np.log1p(-post) - prior_logodds
    llr = np.empty_like(llr_sorted)
    llr[order] = llr_sorted
    return llr[: len(tar)], llr[len(tar):]


def cllr_min(tar, non) -> float:
    tar, non = np.asarray(tar, float), np.asarray(non, float)
    if not len(tar) or not len(non):
        return float("nan")
    return cllr(*pav_llr(tar, non))


# --------------------------------------------------------------------------------------------------
# Trials
# --------------------------------------------------------------------------------------------------


@dataclass
class TrialSet:
    """Every test recording of one corpus against every enrolled speaker of that corpus."""

    corpus: str
    condition: str  # telephone simulation ("native" when none: the files as recorded)
    speakers: list[str]
    tests: list[Item]
    cosine: np.ndarray  # (speakers, tests) plain cosine
    score: np.ndarray | None = None  # back-end normalised score
    llr: np.ndarray | None = None  # natural log
    enrol_net: np.ndarray | None = None
    pairs: np.ndarray | None = None  # channel pair of each trial (selects the calibration)

    @property
    def target(self) -> np.ndarray:
        spk = np.array(self.speakers)
        return spk[:, None] == np.array([t.speaker for t in self.tests])[None, :]


def build_trials(items: list[Item], enrol: int, condition: str, backend=None) -> TrialSet:
    """Enrol the first ``enrol`` usable recordings of each speaker; the rest are tests."""
    by_speaker: dict[str, list[Item]] = {}
    tests: list[Item] = []
    for item in items:
        got = by_speaker.setdefault(item.speaker, [])
        if len(got) < enrol:
            got.append(item)
        else:
            tests.append(item)
    speakers = [s for s, got in by_speaker.items() if len(got) == enrol]
    tests = [t for t in tests if t.speaker in set(speakers)]
    corpus = items[0].corpus if items else ""
    if not speakers or not tests:
        return TrialSet(corpus, condition, speakers, tests, np.zeros((len(speakers), len(tests))))
    raw_models = np.stack([_unit(np.mean([vector_of(i) for i in by_speaker[s]], axis=0)) for s in speakers])
    test_vecs = np.stack([vector_of(t) for t in tests])
    ts = TrialSet(corpus, condition, speakers, tests, raw_models @ test_vecs.T)
    ts.enrol_net = np.array([sum(i.net_speech for i in by_speaker[s]) for s in speakers])
    if backend is not None:
        models = np.stack([backend.model(np.stack([vector_of(i) for i in by_speaker[s]]), [i.domain for i in by_speaker[s]])
                           for s in speakers])
        projected = backend.project(test_vecs, [t.domain for t in tests])
        ts.score = backend.score(models, projected)
        net_t = np.array([t.net_speech for t in tests])
        from .scoring import majority, pair_of

        enrol_dom = [majority(i.domain for i in by_speaker[s]) for s in speakers]
        pairs = np.array([[pair_of(e, t.domain) for t in tests] for e in enrol_dom])
        ts.llr = backend.llr(ts.score, ts.enrol_net[:, None], net_t[None, :], pairs)
        ts.pairs = pairs
    return ts


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _bucket(net: float) -> str:
    for lo, hi, name in DURATION_BUCKETS:
        if lo <= net < hi:
            return name
    return DURATION_BUCKETS[-1][2]


def metrics(ts: TrialSet, columns: np.ndarray | None = None, baseline_calibration=None) -> dict:
    """EER, minDCF, Cllr, Cllr_min, top-1/top-5 of the baseline and the back end on (a subset of) tests."""
    cols = np.arange(len(ts.tests)) if columns is None else np.asarray(columns)
    tgt = ts.target[:, cols]
    row: dict[str, Any] = {"speakers": len(ts.speakers), "tests": int(len(cols)), "target_trials": int(tgt.sum()),
                           "nontarget_trials": int((~tgt).sum())}
    systems: list[tuple[str, np.ndarray, np.ndarray | None]] = [("baseline", ts.cosine[:, cols], None)]
    if baseline_calibration is not None:
        a, b = baseline_calibration
        systems[0] = ("baseline", ts.cosine[:, cols], a * ts.cosine[:, cols] + b)
    if ts.score is not None and ts.llr is not None:
        systems.append(("backend", ts.score[:, cols], ts.llr[:, cols]))
    for name, s, llr in systems:
        tar, non = s[tgt], s[~tgt]
        row[f"eer_{name}"] = eer(tar, non)
        row[f"mindcf_{name}"] = min_dcf(tar, non)
        row[f"cllr_{name}"] = cllr(llr[tgt], llr[~tgt]) if llr is not None else None
        row[f"cllr_min_{name}"] = cllr_min(tar, non)
        has_target = tgt.any(axis=0)
        if has_target.any():
            sub = s[:, has_target]
            true = sub[tgt[:, has_target].argmax(axis=0), np.arange(sub.shape[1])]
            rank = (sub > true[None, :]).sum(axis=0)
            row[f"top1_{name}"] = float(np.mean(rank < 1))
            row[f"top5_{name}"] = float(np.mean(rank < 5))
        else:
            row[f"top1_{name}"] = row[f"top5_{name}"] = None
    return row


def condition_rows(ts: TrialSet, baseline_calibration=None) -> list[dict]:
    """Metrics for all tests of a trial set, then per native rate and per net-speech bucket."""
    rows = []
    groups = [("all", np.arange(len(ts.tests)))]
    rates = np.array(["8kHz" if t.domain == "narrowband" else "16kHz" for t in ts.tests])
    if len(set(rates)) > 1:
        groups += [(r, np.flatnonzero(rates == r)) for r in sorted(set(rates))]
    buckets = np.array([_bucket(t.net_speech) for t in ts.tests])
    groups += [(f"speech {b}", np.flatnonzero(buckets == b)) for _, _, b in DURATION_BUCKETS if (buckets == b).any()]
    for name, cols in groups:
        present = sorted(set(rates[cols]), key=len)
        row = {"corpus": ts.corpus, "channel": ts.condition, "rate": "+".join(present), "subset": name}
        row.update(metrics(ts, cols, baseline_calibration))
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------
# The whole evaluation
# --------------------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    rows: list[dict]
    trial_sets: list[TrialSet]
    refused: list[Item]
    backend_meta: dict | None
    overlap_speakers: list[str] = field(default_factory=list)


def _check_tests_left(manifest, items: list[Item], enrol: int) -> None:
    """Refuse, before any audio is read, an ``enrol`` that leaves no speaker a recording to test."""
    if not items:
        raise DataError(f"{manifest}: no recordings to evaluate (of the speakers the split chose) - try --speakers all")
    most = max(Counter(i.speaker for i in items).values())
    if most <= enrol:
        raise DataError(f"{manifest}: no speaker has more than {enrol} recording(s) (at most {most}) - nothing would be left to test: "
                        "lower --enrol (or raise --per-speaker)")


def evaluate(manifests, enrol: int = 1, model: str | None = None, simulate: str = "", min_speech: float = 1.0,
             speakers: str = "all", per_speaker: int | None = None, use_backend: bool = True, progress=None,
             simulate_tests_only: bool = False, test_speech: float | None = None) -> Evaluation:
    """Embed (cached) and score every manifest; one trial set per manifest.

    ``simulate_tests_only``: enrol from the recordings as they are and pass only the tests through
    the ``simulate`` codec - the usual case of a 16 kHz interview enrolled and an 8 kHz call searched.
    ``test_speech``: the tests keep only their first that many seconds of speech (enrolments whole),
    e.g. 0.8 for sub-second samples such as isolated words; lower ``min_speech`` to match.
    """
    from .scoring import hashed_speaker, load_backend

    if enrol < 1:
        raise DataError("--enrol must be at least 1")
    backend = load_backend(model) if use_backend else None
    fitted_on = set(backend.meta.get("speakers_hashed", [])) if backend else set()
    base_cal = tuple(backend.meta["baseline_calibration"]) if backend and "baseline_calibration" in backend.meta else None
    rows, sets, refused, overlap = [], [], [], set()
    for manifest in manifests:
        items = select_items(read_eval_manifest(manifest), speakers, per_speaker)
        _check_tests_left(manifest, items, enrol)
        embed_items(items, model, simulate, progress)
        condition = simulate or "native"
        if simulate and simulate_tests_only:
            native = embed_items(select_items(read_eval_manifest(manifest), speakers, per_speaker), model, "", progress)
            seen: dict[str, int] = {}
            for n, item in enumerate(items):
                seen[item.speaker] = seen.get(item.speaker, 0) + 1
                if seen[item.speaker] <= enrol:
                    items[n] = native[n]
            condition = f"native enrol, {simulate} test"
        if test_speech:
            short = embed_items(select_items(read_eval_manifest(manifest), speakers, per_speaker), model, simulate,
                                progress, max_speech=test_speech)
            enrolled: dict[str, int] = {}
            for n, item in enumerate(items):  # the enrolments are the first usable recordings (build_trials)
                if enrolled.get(item.speaker, 0) >= enrol:
                    items[n] = short[n]
                elif not item.refused and item.net_speech >= min_speech:
                    enrolled[item.speaker] = enrolled.get(item.speaker, 0) + 1
            condition = f"{condition}, tests cut to {test_speech:g} s"
        for item in items:
            if not item.refused and item.net_speech < min_speech:
                item.refused = f"{item.path}: only {item.net_speech:.2f} s of speech (need {min_speech:.2f} s; see --min-speech)"
        refused += [i for i in items if i.refused]
        usable = [i for i in items if not i.refused]
        overlap |= {i.speaker for i in usable if hashed_speaker(i.speaker) in fitted_on}
        ts = build_trials(usable, enrol, condition, backend)
        sets.append(ts)
        if ts.tests:
            rows += condition_rows(ts, base_cal)
    return Evaluation(rows, sets, refused, backend.meta if backend else None, sorted(overlap))


SCORE_COLUMNS = ["corpus", "channel", "enrol_speaker", "test_path", "test_speaker", "target", "cosine", "score", "llr",
                 "test_net_speech"]


def write_scores(path, trial_sets: list[TrialSet]) -> int:
    """Every trial as CSV (``score`` = back-end score, or the cosine when none is fitted; ``llr`` natural log).

    The file appears whole or not at all, private (it names the recordings)."""
    from .fsutil import atomic_output

    n = 0
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(SCORE_COLUMNS)
        for ts in trial_sets:
            tgt = ts.target
            for j, test in enumerate(ts.tests):
                for i, spk in enumerate(ts.speakers):
                    score = ts.score[i, j] if ts.score is not None else ts.cosine[i, j]
                    llr = "" if ts.llr is None else f"{ts.llr[i, j]:.6f}"
                    w.writerow([ts.corpus, ts.condition, spk, test.path, test.speaker, int(tgt[i, j]),
                                f"{ts.cosine[i, j]:.6f}", f"{score:.6f}", llr, f"{test.net_speech:.3f}"])
                    n += 1
    return n


def plot(trial_sets: list[TrialSet], folder) -> list[Path]:
    """DET plot (baseline and back end) and Tippett plot (back-end LLRs) per trial set, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for ts in trial_sets:
        if not ts.tests:
            continue
        tgt = ts.target
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{ts.corpus}_{ts.condition}").strip("_")
        fig, ax = plt.subplots(figsize=(5, 5))
        systems = [("plain cosine", ts.cosine)] + ([("back end", ts.score)] if ts.score is not None else [])
        for label, s in systems:
            miss, fa = _rates(s[tgt], s[~tgt])
            keep = (miss > 0) & (fa > 0) & (miss < 1) & (fa < 1)
            e = eer(s[tgt], s[~tgt])
            ax.plot(norm.ppf(fa[keep]), norm.ppf(miss[keep]), label=f"{label} (EER {100 * e:.2f} %)")
        ticks = np.array([0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
        ax.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
        ax.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
        ax.set_xlim(norm.ppf(0.0005), norm.ppf(0.5))
        ax.set_ylim(norm.ppf(0.0005), norm.ppf(0.5))
        ax.set_xlabel("false alarm rate (%)")
        ax.set_ylabel("miss rate (%)")
        ax.set_title(f"DET - {name}")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
        path = folder / f"det_{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
        if ts.llr is not None:
            fig, ax = plt.subplots(figsize=(6, 4))
            l10 = ts.llr / np.log(10)
            for label, vals, style in (("same speaker", l10[tgt], "-"), ("different speakers", l10[~tgt], "--")):
                xs = np.sort(vals)
                ax.plot(xs, 1.0 - np.arange(len(xs)) / len(xs), style, label=f"{label} ({len(xs)})")
            ax.axvline(0, color="grey", lw=0.8)
            ax.set_xlabel("log10 likelihood ratio")
            ax.set_ylabel("proportion of trials with log10 LR >= x")
            ax.set_title(f"Tippett - {name}")
            ax.legend(fontsize=8)
            ax.grid(True, alpha=0.3)
            path = folder / f"tippett_{name}.png"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(fig)
            written.append(path)
    return written
