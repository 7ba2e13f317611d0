"""Fitting a speaker model's scoring back end (``voiceprint backend fit``) on development speakers only.

Only speakers whose id hashes to ``dev`` (:func:`voiceprint.evaluate.split_of`) are used; the ``test``
speakers are never read. Each 16 kHz corpus is used clean and through telephone codecs
(:mod:`voiceprint.telephone`), so one speaker appears in both domains and the within-speaker whitening
learns to ignore the channel.

Hyper-parameters are chosen and the calibration is fitted by two-fold cross-fitting over the
development speakers: the transform and AS-norm cohort are fitted on one half and scored on the
other, so no development score is computed with a cohort holding its own speaker.
The result goes to ``models/<model>/backend/`` (backend.json + backend.npz), read by
:func:`voiceprint.scoring.load_backend`.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from .corpora import shared_data_dir
from .errors import DataError
from .evaluate import (
    DURATION_BUCKETS,
    Item,
    build_trials,
    cllr,
    eer,
    elub,
    embed_items,
    min_dcf,
    read_eval_manifest,
    select_items,
    vector_of,
)
from .fsutil import write_atomic
from .scoring import (
    MODEL_FILE,
    QUALITY_MEASURES,
    Backend,
    backend_dir,
    bounded,
    calibration_features,
    fit_logistic,
    hashed_speaker,
    limits_for,
    speaker_list_hash,
    within_class_whitening,
)

#: Development trials are made with one and with three enrolment recordings per speaker.
ENROL = (1, 3)
#: A short test duration gets bounds of its own (inside its channel pair's) with this many target and non-target trials.
MIN_BOUND_TARGETS = 30
#: Tests with less net speech than this are bounded by the trials of their own duration bucket too.
SHORT_TEST_S = 5.0
#: corpus folder -> (telephone simulations to add, recordings per speaker used)
DEFAULT_PLAN = {
    "speechocean762": (("", "amrnb", "g711u"), 6),
    "hyke_ivr_8k": (("",), None),
    # read Mandarin sentences (48 kHz MP3 from browsers): the centre's language, clean and by phone
    "commonvoice_zh": (("", "amrnb"), None),
}
#: Only corpora whose licence allows passing on derived voiceprints give the AS-norm cohort, which is
#: committed with the model (speechocean762: CC BY 4.0; commonvoice_zh: CC0 1.0). hyke_ivr_8k states
#: no licence: it enters only aggregate statistics (domain mean, whitening, calibration), never
#: individual vectors.
COHORT_CORPORA = {"speechocean762", "commonvoice_zh"}
#: Where each cohort corpus comes from, for the back end's record.
COHORT_SOURCES = {"speechocean762": "speechocean762: CC BY 4.0, github:jimbozhang/speechocean762",
                  "commonvoice_zh": "commonvoice_zh: CC0 1.0, Mozilla Common Voice zh-CN"}
# librispeech_test_other (6 speakers) and fsdd_8k (4) are too small to split: they are kept out of
# fitting entirely and reported on all their speakers as corpora the back end never saw.


def load_dev(plan: dict, model: str | None, echo: Callable[[str], None] = print,
             cached_only: bool = False) -> list[tuple[str, str, list[Item]]]:
    """(corpus, channel, dev items) for every corpus and simulation of the plan (``cached_only``:
    only the recordings already in the embedding cache)."""
    sets = []
    for corpus, (variants, per_speaker) in plan.items():
        manifest = shared_data_dir() / corpus / "manifest.csv"
        embedded: dict[str, list[Item]] = {}
        for variant in variants:
            items = select_items(read_eval_manifest(manifest), "dev", per_speaker)
            embed_items(items, model, variant, cached_only=cached_only)
            embedded[variant] = items
            usable = [i for i in items if not i.refused and i.net_speech >= 1.0]
            sets.append((corpus, variant or "clean", usable))
            echo(f"  {corpus:24s} {variant or 'clean':6s} {len(usable):5d} recordings, "
                 f"{len({i.speaker for i in usable})} speakers")
        if "" in embedded:  # cross-channel trials: native enrolment, telephone test (scored, not fitted on)
            for variant, k in itertools.product([v for v in embedded if v], ENROL):
                # the first k recordings of each speaker native (they enrol it with --enrol k), the rest by phone
                seen: dict[str, int] = {}
                mixed = []
                for native, phone in zip(embedded[""], embedded[variant], strict=True):
                    seen[native.speaker] = seen.get(native.speaker, 0) + 1
                    mixed.append(native if seen[native.speaker] <= k else phone)
                usable = [i for i in mixed if not i.refused and i.net_speech >= 1.0]
                sets.append((corpus, f"clean>{variant}", usable))
    return sets


def enrol_counts(channel: str, items: list[Item]) -> tuple[int, ...]:
    """Enrolment sizes to make trials with: a cross-channel set is made for one size, its native count."""
    if ">" not in channel:
        return ENROL
    natives = Counter(i.speaker for i in items if i.domain == "wideband")
    return (Counter(natives.values()).most_common(1)[0][0],)


def fitting_items(sets) -> list[Item]:
    """The recordings the transform and cohort are fitted on (cross-channel sets only repeat them)."""
    return [i for _, channel, items in sets if ">" not in channel for i in items]


def fit_core(items: list[Item], shrink: float, top_n: int, out_dim: int | None) -> Backend:
    """Domain means, whitening and cohort from these items (calibration left as identity)."""
    x = np.stack([vector_of(i) for i in items]).astype(np.float64)
    domains = np.array([i.domain for i in items])
    means = {d: x[domains == d].mean(axis=0) for d in sorted(set(domains))}
    if "wideband" not in means:
        means["wideband"] = x.mean(axis=0)
    centred = x - np.stack([means[d] for d in domains])
    labels = np.array([i.speaker for i in items])
    transform = within_class_whitening(centred, labels, shrink, out_dim) if shrink < 1.0 else np.eye(x.shape[1])
    backend = Backend(means, transform, np.zeros((1, transform.shape[1])), top_n, {"all": np.array([1.0, 0.0, 0.0])}, (-1e9, 1e9),
                      np.zeros(1))
    if top_n <= 0:  # no AS-norm: no cohort vectors to ship
        backend.cohort = np.zeros((0, transform.shape[1]))
        return backend
    in_cohort = np.array([i.corpus in COHORT_CORPORA for i in items])
    if not in_cohort.any():
        in_cohort[:] = True
    backend.cohort = backend.project(x[in_cohort], domains[in_cohort])
    return backend


def fold_of(speaker: str) -> int:
    """The two-fold split of the development speakers used for cross-fitting (0 or 1)."""
    return int(hashlib.sha256(("fold:" + speaker).encode()).digest()[0] & 1)


def cross_scores(sets, shrink: float, top_n: int, out_dim: int | None):
    """Two-fold cross-fitted dev trials: per (corpus, channel) the score, cosine, label, net speech
    of the enrolment and test side, channel pair and fold of every trial."""
    speakers = sorted({i.speaker for _, _, items in sets for i in items})
    fold = {s: fold_of(s) for s in speakers}
    out: dict[tuple[str, str], dict[str, list]] = {}
    for k in (0, 1):
        train = [i for i in fitting_items(sets) if fold[i.speaker] != k]
        backend = fit_core(train, shrink, top_n, out_dim)
        for corpus, channel, items, enrol in ((c, ch, it, e) for c, ch, it in sets for e in enrol_counts(ch, it)):
            held = [i for i in items if fold[i.speaker] == k]
            ts = build_trials(held, enrol, channel, backend)
            if not ts.tests or ts.score is None or ts.enrol_net is None or ts.pairs is None:
                continue
            tgt = ts.target
            net_t = np.array([t.net_speech for t in ts.tests])
            part = out.setdefault((corpus, channel), {key: [] for key in
                                                      ("score", "cosine", "label", "net_e", "net_t", "pair", "fold")})
            part["score"].append(ts.score.ravel())
            part["cosine"].append(ts.cosine.ravel())
            part["label"].append(tgt.ravel())
            part["net_e"].append(np.broadcast_to(ts.enrol_net[:, None], tgt.shape).ravel())
            part["net_t"].append(np.broadcast_to(net_t[None, :], tgt.shape).ravel())
            part["pair"].append(ts.pairs.ravel())
            part["fold"].append(np.full(tgt.size, k))
    return {key: {k: np.concatenate(v) for k, v in part.items()} for key, part in out.items()}


def calibrate(trials, quality: str):
    """Calibration per channel pair on all development trials, and cross-validated LLRs.

    Returns ``(calibration, cv_llr, llr_limit)``. ``cv_llr``: each fold's trials scored by a
    calibration fitted on the other fold's speakers only, so the development Cllr and the ELUB
    bounds describe speakers the calibration did not see. Every development condition
    (corpus x channel) weighs the same: the few real telephone trials count as much as the many
    simulated ones. A channel pair gets its own calibration when it has 50 target trials.
    """
    y = pooled(trials, "label").astype(bool)
    feats = calibration_features(pooled(trials, "score"), pooled(trials, "net_e"), pooled(trials, "net_t"), quality)
    pairs, fold = pooled(trials, "pair"), pooled(trials, "fold")
    groups = np.concatenate([np.full(len(t["label"]), f"{c}/{ch}") for (c, ch), t in trials.items()])

    def fit(mask):
        cal = {"all": fit_logistic(feats[mask], y[mask], groups=groups[mask])}
        for pair in sorted(set(pairs.tolist())):
            m = mask & (pairs == pair)
            if y[m].sum() >= 50:
                cal[pair] = fit_logistic(feats[m], y[m], groups=groups[m])
        return cal

    def apply(cal, mask, llr):
        for pair in set(pairs[mask].tolist()):
            m = mask & (pairs == pair)
            w = cal.get(pair, cal["all"])
            llr[m] = feats[m] @ w[:-1] + w[-1]

    cv_llr = np.zeros(len(y))
    for k in (0, 1):
        apply(fit(fold != k), fold == k, cv_llr)
    calibration = fit(np.ones(len(y), bool))
    # bounds per channel pair (ELUB): how strong an LR that pair's held-out development trials support; then per pair and
    # short test duration, which only tighten them: a short recording's LR claims no more than the short trials show.
    # Longer tests keep their pair's bounds: their few development trials (60 real calls of 10 s or more) would bound
    # them by how few they are, below the shorter trials that already support the pair's bounds.
    llr_limit = {"all": elub(cv_llr[y], cv_llr[~y])}
    net_t = pooled(trials, "net_t")
    for pair in calibration:
        if pair != "all":
            m = pairs == pair
            llr_limit[pair] = elub(cv_llr[m & y], cv_llr[m & ~y])
            for lo, hi, name in (b for b in DURATION_BUCKETS if b[1] <= SHORT_TEST_S):
                mm = m & (net_t >= lo) & (net_t < hi)
                if y[mm].sum() >= MIN_BOUND_TARGETS and (~y[mm]).sum() >= MIN_BOUND_TARGETS:
                    llr_limit[f"{pair}|{name}"] = elub(cv_llr[mm & y], cv_llr[mm & ~y])
    return calibration, cv_llr, llr_limit


def condition_cllr(trials, cv_llr, llr_limit) -> dict:
    """Cross-validated, bounded Cllr of each development condition."""
    out: dict[str, float] = {}
    start = 0
    for (corpus, channel), t in trials.items():
        n = len(t["label"])
        y = t["label"].astype(bool)
        llr = bounded(cv_llr[start:start + n], t["pair"], t["net_t"], partial(limits_for, llr_limit))
        out[f"{corpus}/{channel}"] = cllr(llr[y], llr[~y])
        start += n
    return out


def summarise(trials) -> dict:
    rows = {}
    for (corpus, channel), t in trials.items():
        y = t["label"].astype(bool)
        rows[f"{corpus}/{channel}"] = {"eer_baseline": eer(t["cosine"][y], t["cosine"][~y]),
                                       "eer_backend": eer(t["score"][y], t["score"][~y]),
                                       "mindcf_backend": min_dcf(t["score"][y], t["score"][~y])}
    return rows


def pooled(trials, key: str) -> np.ndarray:
    return np.concatenate([t[key] for t in trials.values()])


def plan_parts() -> list[str]:
    """Every ``corpus:channel`` of the default plan, as ``--only`` names them."""
    return [f"{c}:{v or 'clean'}" for c, (vs, _) in DEFAULT_PLAN.items() for v in vs]


def unknown_parts(only: list[str]) -> list[str]:
    """The ``--only`` values that name no part of the default plan."""
    return [x for x in only if x not in plan_parts()]


def plan_of(only: list[str] | None = None, per_speaker: int | None = None) -> dict:
    """The default plan, or only its ``corpus:channel`` parts (e.g. ``hyke_ivr_8k:clean speechocean762:amrnb``);
    ``per_speaker`` caps the recordings used of each speaker in every corpus."""
    plan = dict(DEFAULT_PLAN)
    if only:
        if unknown := unknown_parts(only):
            raise DataError(f"no such corpus:channel in the plan: {', '.join(unknown)} - choose from {', '.join(plan_parts())}")
        wanted = [tuple(x.split(":")) for x in only]
        plan = {c: (tuple(v for v in vs if (c, v or "clean") in wanted), n) for c, (vs, n) in plan.items()}
        plan = {c: p for c, p in plan.items() if p[0]}
    if per_speaker:
        plan = {c: (vs, min(n or per_speaker, per_speaker)) for c, (vs, n) in plan.items()}
    return plan


def fit_backend(model: str | None = None, shrinks=(0.05, 0.2, 0.5, 1.0), top_ns=(0, 100, 300), out_dim: int | None = None,
                qualities=("min_duration", "durations"), dry_run: bool = False, only: list[str] | None = None,
                echo: Callable[[str], None] = print, per_speaker: int | None = None, cached_only: bool = False,
                link_reference: str = "") -> Path | None:
    """Fit, report the development figures through ``echo`` and save the back end; the folder written (None on a dry run).

    ``link_reference``: also carry that model's case-linking thresholds over to this one (:func:`transfer_linking`)."""
    t0 = time.time()
    echo("development data (dev speakers only):")
    sets = load_dev(plan_of(only, per_speaker), model, echo, cached_only)
    shrink, top_n, trials, summary = _choose_core(sets, shrinks, top_ns, out_dim, echo)
    fits = _choose_calibration(trials, qualities, echo)
    quality = min(fits, key=lambda q: fits[q][0])
    _, calibration, llr_limit, per = fits[quality]
    echo(f"chosen: quality {quality}")
    y = pooled(trials, "label").astype(bool)
    base = fit_logistic(pooled(trials, "cosine")[:, None], y)
    for key, t in trials.items():
        yy = t["label"].astype(bool)
        name = f"{key[0]}/{key[1]}"
        summary[name].update(cllr_backend=per[name],
                             cllr_baseline=cllr(base[0] * t["cosine"][yy] + base[1], base[0] * t["cosine"][~yy] + base[1]))
    _report(calibration, llr_limit, quality, summary, echo)
    if dry_run:
        return None
    all_items = fitting_items(sets)
    backend = fit_core(all_items, shrink, top_n, out_dim)
    backend.calibration = calibration
    backend.llr_limit = llr_limit
    backend.quality = quality
    # the impostor score distribution, pooled and per channel pair, kept as 20,001 quantiles (false-hit rates down to 1e-4)
    non = np.sort(pooled(trials, "score")[~y])
    backend.nontarget_scores = _kept(non)
    groups = impostor_groups(trials, y)
    backend.pair_nontarget_scores = {k: _kept(np.sort(v)) for k, v in groups.items()}
    backend.meta = _meta(sets, all_items, backend, shrink, out_dim, base, quality, fits, summary)
    backend.meta["nontarget_trials"] = int(len(non))  # what a false-alarm rate can rest on (Backend.false_alarm_rate)
    backend.meta["nontarget_trials_by_pair"] = {k: int(len(v)) for k, v in groups.items()}
    backend.meta["duration_cap"] = duration_caps(trials, calibration)
    folder = backend_dir(model)
    backend.save(folder)
    if link_reference:
        write_linking(model, transfer_linking(sets, model, link_reference, cached_only, echo), echo)
    echo(f"saved {folder} ({time.time() - t0:.0f} s)")
    return folder


def _kept(sorted_scores: np.ndarray) -> np.ndarray:
    """Sorted scores as the back end keeps them: all of them, or 20,001 quantiles of more."""
    return sorted_scores if len(sorted_scores) <= 20001 else np.quantile(sorted_scores, np.linspace(0, 1, 20001))


#: A channel pair's test-duration bucket keeps impostor scores of its own with this many development impostor trials.
MIN_BUCKET_IMPOSTORS = 500


def impostor_groups(trials, y: np.ndarray) -> dict[str, np.ndarray]:
    """Development impostor scores per channel pair, and per pair and test-duration bucket ("narrowband|>=10s") where
    the bucket has :data:`MIN_BUCKET_IMPOSTORS`: what a false-hit rate is read from."""
    scores, pairs, net_t = pooled(trials, "score"), pooled(trials, "pair"), pooled(trials, "net_t")
    groups: dict[str, np.ndarray] = {}
    for pair in sorted(set(pairs.tolist())):
        m = ~y & (pairs == pair)
        groups[str(pair)] = scores[m]
        for lo, hi, name in DURATION_BUCKETS:
            mm = m & (net_t >= lo) & (net_t < hi)
            if mm.sum() >= MIN_BUCKET_IMPOSTORS:
                groups[f"{pair}|{name}"] = scores[mm]
    return groups


def duration_caps(trials, calibration: dict) -> dict[str, list[float]]:
    """Per calibration (channel pair, "all"): the 99th percentile of the enrolment and of the test net speech of its
    development trials, past which :meth:`voiceprint.scoring.Backend.llr` does not extrapolate its duration terms."""
    net_e, net_t, pairs = pooled(trials, "net_e"), pooled(trials, "net_t"), pooled(trials, "pair")
    caps = {}
    for name in calibration:
        m = np.ones(len(pairs), bool) if name == "all" else pairs == name
        if m.any():
            caps[name] = [round(float(np.percentile(net_e[m], 99)), 2), round(float(np.percentile(net_t[m], 99)), 2)]
    return caps


def _choose_core(sets, shrinks, top_ns, out_dim, echo):
    """The (shrink, top_n) with the lowest mean cross-fitted development EER, with its trials and summary."""
    best = None
    for shrink in shrinks:
        for top_n in top_ns:
            trials = cross_scores(sets, shrink, top_n, out_dim)
            summary = summarise(trials)
            mean_eer = float(np.mean([r["eer_backend"] for r in summary.values()]))
            echo(f"shrink {shrink:4.2f} top_n {top_n:4d}: mean dev EER {100 * mean_eer:.2f} %  "
                 + "  ".join(f"{k} {100 * r['eer_backend']:.2f}" for k, r in summary.items()))
            if best is None or mean_eer < best[0]:
                best = (mean_eer, shrink, top_n, trials, summary)
    if best is None:
        raise DataError("nothing to fit: give at least one --shrink and one --top-n value")
    _, shrink, top_n, trials, summary = best
    echo(f"chosen: shrink {shrink}, top_n {top_n}")
    echo("baseline (plain cosine) dev EER: " + "  ".join(f"{k} {100 * r['eer_baseline']:.2f}" for k, r in summary.items()))
    return shrink, top_n, trials, summary


def _choose_calibration(trials, qualities, echo) -> dict:
    """quality measure -> (mean cross-validated dev Cllr, calibration, llr bounds, Cllr per condition)."""
    fits = {}
    for quality in qualities:
        calibration, cv_llr, llr_limit = calibrate(trials, quality)
        per = condition_cllr(trials, cv_llr, llr_limit)
        fits[quality] = (float(np.mean(list(per.values()))), calibration, llr_limit, per)
        echo(f"quality {quality:12s}: mean cross-validated dev Cllr {fits[quality][0]:.3f}  "
             + "  ".join(f"{k} {v:.3f}" for k, v in per.items()))
    if not fits:
        raise DataError(f"no calibration quality measure given - use one of {', '.join(QUALITY_MEASURES)}")
    return fits


def _report(calibration, llr_limit, quality, summary, echo) -> None:
    names = QUALITY_MEASURES[quality]
    for pair, w in calibration.items():
        echo(f"calibration {pair:10s} llr = " + " + ".join(f"{c:.3f}*{n}" for c, n in zip(w, names)) + f" + {w[-1]:.3f}")
    for pair, (lo, hi) in llr_limit.items():
        echo(f"llr bounds (ELUB) {pair:16s} [{lo:.2f}, {hi:.2f}]  (log10 [{lo / np.log(10):.2f}, {hi / np.log(10):.2f}])")
    for k, r in summary.items():
        echo(f"  {k:32s} EER {100 * r['eer_baseline']:.2f} -> {100 * r['eer_backend']:.2f} %   "
             f"Cllr {r['cllr_baseline']:.3f} -> {r['cllr_backend']:.3f} (cross-validated)")


def _meta(sets, all_items, backend, shrink, out_dim, base, quality, fits, summary) -> dict:
    speakers = sorted({i.speaker for i in all_items})
    cohort = {i.corpus for i in all_items if i.corpus in COHORT_CORPORA}
    names = QUALITY_MEASURES[quality]
    return {
        "version": 1,
        "fitted_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "fitted_by": "voiceprint backend fit",
        "split_rule": "voiceprint.evaluate.split_of: sha256(speaker id)[0] < 128 -> dev",
        "corpora": {f"{c}/{ch}": len(items) for c, ch, items in sets},
        "speakers_hashed": [hashed_speaker(s) for s in speakers],
        "speakers_sha256": speaker_list_hash(speakers),
        "cohort": (f"{len(backend.cohort)} vectors of development speakers of {', '.join(sorted(cohort))} "
                   f"({'; '.join(COHORT_SOURCES[c] for c in sorted(cohort))}), clean and codec-simulated")
                  if backend.uses_as_norm else "none (no AS-norm)",
        "shrink": shrink,
        "out_dim": out_dim,
        "baseline_calibration": [float(base[0]), float(base[1])],
        "score": backend.score_meaning(),
        "llr": "natural log; calibration per channel pair (wideband, narrowband, cross; 'all' otherwise), "
               f"weights [{', '.join(names)}, offset] (voiceprint.scoring.calibration_features, "
               f"quality measure {quality!r}); bounds: ELUB of the cross-validated development LLRs",
        "quality_measures_tried": {q: round(f[0], 4) for q, f in fits.items()},
        "enrol_per_dev_trial": list(ENROL),
        "dev_figures": summary,
    }


def transfer_linking(sets, model: str | None, reference: str, cached_only: bool = False,
                     echo: Callable[[str], None] = print) -> dict:
    """Case-linking thresholds for ``model`` carried over from ``reference`` (whose thresholds were
    tuned by ``scripts/eval_linking.py``): on the same clean development recordings, each of this
    model's cosine thresholds (plain, and centred on the recordings' mean) is set where its
    different-speaker pairs cross at the rate the reference's threshold lets them through, so a
    link means as rare a coincidence with either model. The LLR threshold is in calibrated units
    and is kept as it is."""
    from . import linking

    ref_links = linking.thresholds(reference)
    corpora = {x for x, _, _ in sets}
    ref_sets = load_dev({c: (("",), n) for c, (vs, n) in plan_of(None).items() if "" in vs and c in corpora},
                        reference, echo, cached_only)
    ours = {i.path: i.vector for _, ch, items in sets if ch == "clean" for i in items}
    pairs_ref: dict[str, list] = {"cosine": [], "centred": []}
    pairs_our: dict[str, list] = {"cosine": [], "centred": []}
    for _, _, items in ref_sets:
        items = [i for i in items if i.path in ours]
        if len(items) < 3:
            continue
        for vecs, out in (([vector_of(i) for i in items], pairs_ref), ([ours[i.path] for i in items], pairs_our)):
            x = np.stack(vecs).astype(np.float64)
            c = x - x.mean(0)
            c /= np.linalg.norm(c, axis=1, keepdims=True)
            spk = np.array([i.speaker for i in items])
            upper = np.triu(np.ones((len(items), len(items)), bool), 1) & (spk[:, None] != spk[None, :])
            out["cosine"].append((x @ x.T)[upper])
            out["centred"].append((c @ c.T)[upper])
    found = {}
    for kind in ("cosine", "centred"):
        ref_non, our_non = np.concatenate(pairs_ref[kind]), np.concatenate(pairs_our[kind])
        rate = float(np.mean(ref_non >= ref_links[kind]))
        found[kind] = round(float(np.quantile(our_non, 1.0 - rate)), 3)
        echo(f"linking {kind}: {reference} {ref_links[kind]:.3f} lets {100 * rate:.3f} % of {len(ref_non)} "
             f"different-speaker pairs through; {model} at the same rate: {found[kind]:.3f}")
    found["llr"] = ref_links["llr"]
    return found


def write_linking(model: str | None, thresholds: dict, echo: Callable[[str], None] = print) -> None:
    """Record the linking thresholds in ``models/<model>/model.json`` (``"linking"``), keeping the rest."""
    import json

    from .embedding import load_spec

    path = load_spec(model).home / "model.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["linking"] = thresholds
    write_atomic(path, json.dumps(meta, indent=2) + "\n", MODEL_FILE)
    echo(f"linking thresholds {thresholds} -> {path}")
