"""Scores that mean something: a fitted back end, AS-norm, and calibration to likelihood ratios.

A raw cosine between two ECAPA embeddings has no fixed meaning: its distribution moves with the
channel (8 kHz telephone vs 16 kHz), the duration and the language. The back end fitted by
``voiceprint backend fit`` (:mod:`voiceprint.fitting`) on a speaker-disjoint development split turns it into evidence:

1. **Domain centring** - subtract the mean embedding of the input's domain (``wideband`` or
   ``narrowband``, decided by the source rate and codec: :func:`domain_of`).
2. **Within-speaker whitening** - a linear map learned on the development speakers, each seen
   through several channels (clean and telephone-codec versions of the same recordings), that
   shrinks the directions in which one speaker's recordings vary (channel, session), then
   length normalisation.
3. **AS-norm** (adaptive symmetric score normalisation) - the cosine of the two transformed
   vectors, normalised by the mean and spread of each side's top-N scores against a cohort of
   development impostors.
4. **Calibration** - linear logistic regression from the normalised score and a quality measure
   (the log net speech of each side, and each times the score: :func:`calibration_features`) to
   the natural-log likelihood ratio ``llr``, bounded per channel
   pair where the development trials stop supporting it (empirical lower and upper bounds, ELUB:
   :func:`voiceprint.evaluate.elub`): beyond them an LR would claim more than the validation data show.

The back end lives in ``models/<model>/backend/``: ``backend.json`` (parameters, what it was
fitted on, development figures) and ``backend.npz`` (means, transform, cohort). Other modules use::

    backend = load_backend("ecapa-voxceleb")          # None when none is fitted
    model = backend.model(enrol_vectors, enrol_domains)      # raw embeddings in, one speaker model out
    score = backend.score(model, backend.project(test_vector, test_domain))
    llr = backend.llr(score, enrol_net, test_net, pair_of(majority(enrol_domains), test_domain))
    verbal(llr / math.log(10)), backend.expected_false_hits(score, library_size)
    # or, for one comparison, everything at once: evidence(backend, score, library_size, ...)
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError
from .fsutil import atomic_output, write_atomic

#: Codecs that carry 8 kHz telephone audio whatever the container's rate. Not G.722: it is the 16 kHz
#: (50-7,000 Hz) "HD voice" codec, wideband speech.
NARROWBAND_CODECS = {"amr_nb", "amrnb", "pcm_mulaw", "pcm_alaw", "gsm", "gsm_ms", "g723_1", "g729"}
BACKEND_DIR = "backend"
MODEL_FILE = 0o644  # a fitted back end holds no personal data and ships with the model


def pair_of(domain_a: str, domain_b: str) -> str:
    """Channel pair of a comparison, which selects its calibration: ``wideband``, ``narrowband`` or ``cross``."""
    return domain_a if domain_a == domain_b else "cross"


def majority(domains) -> str:
    """The domain of a speaker model enrolled from several recordings: the more frequent one (ties: wideband)."""
    domains = list(domains)
    return "narrowband" if domains.count("narrowband") > domains.count("wideband") else "wideband"


def domain_of(source_rate: int, codec: str = "") -> str:
    """``"narrowband"`` for 8 kHz-origin (telephone) audio, else ``"wideband"``."""
    if (source_rate and source_rate <= 8000) or (codec or "").lower() in NARROWBAND_CODECS:
        return "narrowband"
    return "wideband"


# --------------------------------------------------------------------------------------------------
# ENFSI verbal scale and 1:N false hits
# --------------------------------------------------------------------------------------------------

#: ENFSI Guideline for Evaluative Reporting (2015): lower bound of log10 LR -> verbal support.
#: |log10 LR| below log10(2): the first step of ENFSI's scale is LR 2
NO_SUPPORT_LOG10 = math.log10(2)
_ENFSI = ((6.0, "extremely strong"), (4.0, "very strong"), (3.0, "strong"), (2.0, "moderately strong"),
          (1.0, "moderate"), (0.0, "weak"))


def verbal(log10_lr: float | None) -> str | None:
    """The ENFSI verbal equivalent of a log10 likelihood ratio, for the same- or different-speaker side.

    LR 2-10 weak, 10-100 moderate, 100-1,000 moderately strong, 1,000-10,000 strong,
    10,000-1,000,000 very strong, above extremely strong; the mirror image below 1. ENFSI's scale
    starts at 2: an LR between 1/2 and 2 supports neither proposition appreciably.
    """
    if log10_lr is None or not np.isfinite(log10_lr):
        return None
    if abs(log10_lr) < NO_SUPPORT_LOG10:
        return "no appreciable support for either proposition"
    side = "same speaker" if log10_lr > 0 else "different speakers"
    mag = abs(log10_lr)
    for bound, words in _ENFSI:
        if mag >= bound:
            return f"{words} support for {side}"
    return f"weak support for {side}"  # pragma: no cover - mag >= 0 always matches


# --------------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------------


#: Net speech (s) outside which the calibration's duration term is held constant: the development
#: trials have 1 to ~30 s, and a linear term must not be extrapolated to sub-second digits.
DURATION_RANGE = (1.0, 30.0)


#: Quality-measure functions the calibration can use besides the score (``Backend.quality``):
#: ``durations`` - log net speech of the enrolment side and of the test side, and each of them times
#: the score, so that both the offset and the weight of the score follow the speech behind each side
#: (a 25 s enrolment call against a 3 s query is not a 3 s against 3 s comparison);
#: ``min_duration`` - log of the shorter side's net speech only (back ends fitted before session 4);
#: ``none`` - the score alone. Each maps to the names of its features, in the order of the weights.
QUALITY_MEASURES = {
    "durations": ("score", "log(enrol net speech)", "log(test net speech)", "score*log(enrol)", "score*log(test)"),
    "min_duration": ("score", "log(min net speech)"),
    "none": ("score",),
}


def calibration_features(scores, net_enrol=None, net_test=None, quality: str = "min_duration") -> np.ndarray:
    """The calibration's inputs for each trial: array of shape ``broadcast(scores, nets) + (k,)``.

    Net speech in seconds (``None``: 10 s), clipped to ``DURATION_RANGE`` before the log. The
    calibration weights are these features' coefficients followed by an offset.
    """
    s = np.asarray(scores, np.float64)
    le = np.log(np.clip(np.asarray(10.0 if net_enrol is None else net_enrol, np.float64), *DURATION_RANGE))
    lt = np.log(np.clip(np.asarray(10.0 if net_test is None else net_test, np.float64), *DURATION_RANGE))
    s, le, lt = np.broadcast_arrays(s, le, lt)
    if quality == "durations":
        return np.stack([s, le, lt, s * le, s * lt], axis=-1)
    if quality == "min_duration":
        return np.stack([s, np.minimum(le, lt)], axis=-1)
    if quality == "none":
        return s[..., None]
    raise ModelError(f"unknown calibration quality measure {quality!r} (known: {', '.join(QUALITY_MEASURES)})")


def fit_logistic(features: np.ndarray, labels: np.ndarray, prior: float = 0.5, groups=None) -> np.ndarray:
    """Prior-weighted linear logistic regression (the classic FoCal/BOSARIS calibration).

    Returns weights ``w`` (last = offset) such that ``features @ w[:-1] + w[-1]`` is a
    natural-log likelihood ratio; targets and non-targets are weighted to an effective ``prior``.
    With ``groups`` (one label per trial, e.g. the corpus), every group weighs the same, however
    many trials it has.
    """
    from scipy.optimize import minimize

    x = np.column_stack([np.atleast_2d(features.T).T, np.ones(len(labels))]).astype(np.float64)
    y = np.asarray(labels, bool)
    nt, nn = int(y.sum()), int((~y).sum())
    if nt == 0 or nn == 0:
        raise ModelError("calibration needs both target and non-target trials")
    offset = math.log(prior / (1 - prior))
    sign = np.where(y, 1.0, -1.0)
    groups = np.zeros(len(y), int) if groups is None else np.asarray(groups)
    weight = np.zeros(len(y))
    names = [g for g in np.unique(groups) if y[groups == g].any() and (~y[groups == g]).any()]
    for g in names:
        m = groups == g
        weight[m & y] = prior / (y[m].sum() * len(names))
        weight[m & ~y] = (1 - prior) / ((~y[m]).sum() * len(names))

    def loss(w):
        z = sign * (x @ w + offset)
        return float(np.sum(weight * np.logaddexp(0.0, -z))), -(x.T @ (weight * sign * _sigmoid(-z)))

    w0 = np.zeros(x.shape[1])
    w0[0] = 1.0
    res = minimize(loss, w0, jac=True, method="L-BFGS-B")
    return res.x


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


# --------------------------------------------------------------------------------------------------
# The back end
# --------------------------------------------------------------------------------------------------


#: The fewest development impostor trials (of n) a false-alarm rate may rest on: below 3/n it is not resolved.
RESOLVED_TRIALS = 3.0


@dataclass
class Backend:
    """A fitted back end: transform, AS-norm cohort and calibration (see the module docstring)."""

    means: dict[str, np.ndarray]  # domain -> mean of raw embeddings
    transform: np.ndarray  # (dim, out_dim): applied after centring
    cohort: np.ndarray  # (n, out_dim) transformed, length-normalised impostor vectors
    top_n: int  # AS-norm's top-N cohort scores; 0: no AS-norm
    calibration: dict  # channel pair (pair_of) or "all" -> weights of calibration_features(..., quality) and offset
    llr_limit: dict | float | tuple[float, float]  # channel pair or "all" -> (lowest, highest) llr the development data support (ELUB)
    nontarget_scores: np.ndarray  # sorted normalised non-target scores of the development trials
    meta: dict = field(default_factory=dict)
    quality: str = "min_duration"  # the calibration's quality measure (QUALITY_MEASURES)
    #: channel pair, and pair and test duration ("narrowband|>=10s") -> their own sorted impostor scores: telephone
    #: impostors score higher than wideband ones, and long real calls higher than short coded sentences
    pair_nontarget_scores: dict[str, np.ndarray] = field(default_factory=dict)

    # -- vectors ----------------------------------------------------------------------------
    def project(self, vectors: np.ndarray, domains) -> np.ndarray:
        """Centre each raw embedding on its domain's mean, apply the transform, length-normalise."""
        v = np.atleast_2d(np.asarray(vectors, np.float64))
        doms = [domains] * len(v) if isinstance(domains, str) else list(domains)
        mean_rows = np.stack([self.means.get(d, self.means["wideband"]) for d in doms])
        y = (v - mean_rows) @ self.transform
        return _rownorm(y)

    def model(self, vectors: np.ndarray, domains) -> np.ndarray:
        """One speaker model from several enrolment recordings: the normalised mean of the projections."""
        return _rownorm(self.project(vectors, domains).mean(axis=0, keepdims=True))[0]

    # -- scores -----------------------------------------------------------------------------
    @property
    def uses_as_norm(self) -> bool:
        return self.top_n > 0 and len(self.cohort) > 0

    def score_meaning(self) -> str:
        """What :meth:`score` is, in words (for results and reports)."""
        base = "cosine after domain centring and within-speaker whitening"
        return f"AS-norm of the {base}" if self.uses_as_norm else f"the {base} (no AS-norm)"

    def calibration_data(self) -> str:
        """What the calibration (and the cohort, if any) was fitted on, from the fit's record, in words."""
        fitted = {k: n for k, n in self.meta.get("corpora", {}).items() if ">" not in k}  # cross sets reuse recordings
        speakers = len(self.meta.get("speakers_hashed", []))
        text = (f"{sum(fitted.values())} recordings of {speakers} development speakers "
                f"({', '.join(f'{k} {n}' for k, n in fitted.items())})") if fitted else "development speakers"
        if self.uses_as_norm and self.meta.get("cohort"):
            text += f"; AS-norm cohort: {self.meta['cohort']}"
        return text

    def cohort_stats(self, projected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread of each vector's top-N cohort scores (the AS-norm statistics).

        A back end fitted without AS-norm (``top_n`` 0) gives mean 0 and spread 1, so the normalised
        score is the plain cosine of the projections."""
        projected = np.atleast_2d(projected)
        if not self.uses_as_norm:
            return np.zeros(len(projected)), np.ones(len(projected))
        s = projected @ self.cohort.T
        n = min(self.top_n, s.shape[1])
        top = -np.partition(-s, n - 1, axis=1)[:, :n]
        return top.mean(axis=1), np.maximum(top.std(axis=1), 1e-3)

    def score(self, models: np.ndarray, tests: np.ndarray) -> np.ndarray:
        """AS-normalised score matrix (models x tests) between projected enrolment models and tests."""
        models, tests = np.atleast_2d(models), np.atleast_2d(tests)
        raw = models @ tests.T
        me, se = self.cohort_stats(models)
        mt, st = self.cohort_stats(tests)
        return 0.5 * ((raw - me[:, None]) / se[:, None] + (raw - mt[None, :]) / st[None, :])

    def llr(self, scores, net_a=None, net_b=None, pair="all") -> np.ndarray:
        """Natural-log likelihood ratio of normalised scores.

        ``net_a``/``net_b``: net speech (seconds) of the enrolment and the test side; ``pair``: the
        channel pair (:func:`pair_of`), one for all scores or an array of them - each pair has its
        own calibration and bounds.
        """
        s, ne, nt = np.broadcast_arrays(np.asarray(scores, np.float64), np.asarray(10.0 if net_a is None else net_a, np.float64),
                                        np.asarray(10.0 if net_b is None else net_b, np.float64))
        pairs = np.broadcast_to(np.asarray(pair), s.shape)
        ne, nt = ne.copy(), nt.copy()
        for name in set(pairs.ravel().tolist()) if pairs.size else ():  # no extrapolation past the durations it was fitted on
            cap_e, cap_t = self.duration_cap(name)
            m = pairs == name
            ne[m], nt[m] = np.minimum(ne[m], cap_e), np.minimum(nt[m], cap_t)
        feats = calibration_features(s, ne, nt, self.quality)
        out = np.zeros(feats.shape[:-1])
        for name in set(pairs.ravel().tolist()) if pairs.size else ():
            w = np.asarray(self.calibration.get(name, self.calibration["all"]), np.float64)
            if len(w) != feats.shape[-1] + 1:
                raise ModelError(f"calibration {name!r} has {len(w)} weights, quality measure {self.quality!r} "
                                 f"needs {feats.shape[-1] + 1} - refit with `voiceprint backend fit`")
            out = np.where(pairs == name, feats @ w[:-1] + w[-1], out)
        return bounded(out, pairs, net_b, self.llr_limits)

    def llr_limits(self, pair: str = "all", net_test: float | None = None) -> tuple[float, float]:
        """The (lowest, highest) llr this channel pair's development trials support (:func:`limits_for`)."""
        return limits_for(self.llr_limit, pair, net_test)

    def impostor_scores(self, pair: str | None = None, net_test: float | None = None) -> tuple[np.ndarray, int]:
        """The sorted development impostor scores of a channel pair and the test's duration bucket, else of the pair,
        else of all pairs pooled; and how many trials they stand for (they may be quantiles of more)."""
        counts = self.meta.get("nontarget_trials_by_pair") or {}
        for key in (speech_limit_key(str(pair), net_test), pair):
            if key is not None and key in self.pair_nontarget_scores:
                non = self.pair_nontarget_scores[str(key)]
                return non, max(int(counts.get(str(key)) or len(non)), len(non))
        non = self.nontarget_scores
        return non, max(int(self.meta.get("nontarget_trials") or len(non)), len(non))

    def false_alarm_rate(self, scores, pair: str | None = None, net_test: float | None = None) -> np.ndarray:
        """Share of development impostor trials of this channel pair scoring at or above each score: the empirical share
        while at least 10 of the n trials do, beyond that a Gaussian tail, but never below 3/n. n trials cannot show a
        rate lower than that (3/n is the 95 % upper bound when none of them score so high); the Gaussian went on to one
        in 10^5 and beyond, which the data cannot support.

        With the test's net speech, never below the rate read the same way from the impostors of that duration either:
        long real calls' impostors score higher than the short coded sentences that make up most of a pair, which made a
        long telephone stranger's hit read as one in thousands while its LR said "different speakers". Their few trials
        do not set the floor: the pair's 3/n does."""
        s = np.asarray(scores, np.float64)
        non, trials = self.impostor_scores(pair)
        rate = _tail_rate(non, trials, s)
        key = speech_limit_key(str(pair), net_test) if pair is not None else None
        if key in self.pair_nontarget_scores:  # floored at the pair's 3/n, not at the bucket's coarser one
            rate = np.maximum(rate, _tail_rate(self.pair_nontarget_scores[str(key)], trials, s))
        return rate

    def expected_false_hits(self, scores, library_size: int, pair: str | None = None, net_test: float | None = None) -> np.ndarray:
        """How many of ``library_size`` persons who are not the speaker would score this high or higher (impostors of the
        comparison's channel pair and the test's duration)."""
        return self.false_alarm_rate(scores, pair, net_test) * max(int(library_size), 0)

    def duration_cap(self, pair: str) -> tuple[float, float]:
        """The longest enrolment and test net speech the calibration of ``pair`` was fitted on (99th percentile of its
        development trials): longer recordings are scored as that long. Its duration terms, extrapolated past the
        data, made the LR of a 30-minute call of the enrolled speaker fall to "weak support"."""
        caps = self.meta.get("duration_cap") or {}
        cap = caps.get(pair) or caps.get("all")
        if not cap:
            return DURATION_RANGE[1], DURATION_RANGE[1]
        return float(cap[0]), float(cap[1])

    # -- persistence ------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {f"mean_{d}": m for d, m in self.means.items()}
        arrays |= {"transform": self.transform, "cohort": self.cohort.astype(np.float32),
                   "nontarget_scores": self.nontarget_scores.astype(np.float32)}
        keys = sorted(self.pair_nontarget_scores)  # "narrowband|>=10s" is no name for an array: numbered, named in the meta
        arrays |= {f"nontarget_scores_{i}": self.pair_nontarget_scores[k].astype(np.float32) for i, k in enumerate(keys)}
        with atomic_output(folder / "backend.npz", MODEL_FILE) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)  # a file object: given a path, savez would append ".npz" to the temporary name
        meta = dict(self.meta)
        meta.update(top_n=self.top_n, quality_measure=self.quality,
                    calibration={k: [float(x) for x in w] for k, w in self.calibration.items()},
                    llr_limit={k: list(stored_limit(self.llr_limit, k)) for k in self._limit_keys()}, nontarget_keys=keys,
                    domains=sorted(self.means), npz_sha256=_file_sha(folder / "backend.npz"))
        write_atomic(folder / "backend.json", json.dumps(meta, indent=2), MODEL_FILE)
        if folder.name == BACKEND_DIR and (folder.parent / "model.json").exists():
            record_evidence_hashes(folder.parent)  # a fitted back end is trusted by whoever fits it

    def _limit_keys(self) -> list[str]:
        return sorted(self.llr_limit) if isinstance(self.llr_limit, dict) else ["all"]

    @classmethod
    def load(cls, folder: Path) -> Backend:
        meta = json.loads((folder / "backend.json").read_text(encoding="utf-8"))
        if meta.get("npz_sha256") and meta["npz_sha256"] != _file_sha(folder / "backend.npz"):
            raise ModelError(f"{folder}/backend.npz fails its checksum - refit it with `voiceprint backend fit`")
        z = np.load(folder / "backend.npz")
        means = {d: z[f"mean_{d}"].astype(np.float64) for d in meta["domains"]}
        pairs = {k: np.sort(z[f"nontarget_scores_{i}"].astype(np.float64)) for i, k in enumerate(meta.get("nontarget_keys") or [])}
        return cls(means, z["transform"].astype(np.float64), z["cohort"].astype(np.float64), int(meta["top_n"]),
                   {k: np.asarray(w, float) for k, w in meta["calibration"].items()},
                   _limits(meta["llr_limit"]),
                   np.sort(z["nontarget_scores"].astype(np.float64)), meta,
                   meta.get("quality_measure", "min_duration"), pairs)


def stored_limit(llr_limit, key: str) -> tuple[float, float]:
    """The (lowest, highest) llr ``llr_limit`` holds under ``key`` (a channel pair, or pair and test duration), else under
    its pair, else under "all"."""
    lim: Any = llr_limit
    if isinstance(lim, dict):
        lim = lim.get(key, lim.get(key.split("|")[0], lim["all"]))
    if np.ndim(lim) == 0:  # one bound for both sides (back ends fitted before per-side limits)
        return -float(lim), float(lim)
    return float(lim[0]), float(lim[1])


def limits_for(llr_limit, pair: str = "all", net_test: float | None = None) -> tuple[float, float]:
    """The (lowest, highest) llr a channel pair's development trials support; with the test side's net speech, also no
    more than the trials of that much speech support (:func:`speech_limit_key`), which only tightens the pair's."""
    lo, hi = stored_limit(llr_limit, pair)
    key = speech_limit_key(pair, net_test)
    if key is not None and isinstance(llr_limit, dict) and key in llr_limit:
        b_lo, b_hi = stored_limit(llr_limit, key)
        lo, hi = max(lo, b_lo), min(hi, b_hi)
    return lo, hi


def _tail_rate(non: np.ndarray, trials: int, s: np.ndarray) -> np.ndarray:
    """Share of the sorted impostor scores ``non`` at or above ``s``, as :meth:`Backend.false_alarm_rate` reads it: the
    empirical share where 10 of them score so high, beyond that a Gaussian tail, floored at 3 in ``trials``."""
    n = len(non)
    empirical = 1.0 - np.searchsorted(non, s, side="left") / n
    from scipy.stats import norm

    mu, sd = float(non.mean()), float(non.std())
    tail = norm.sf(s, mu, sd)
    return np.where(empirical * n >= 10, empirical, np.clip(tail, RESOLVED_TRIALS / trials, 10.0 / n))


def speech_limit_key(pair: str, net_test: float | None) -> str | None:
    """The key of a channel pair's bounds for tests with this much net speech (``"narrowband|<2s"``), buckets as
    :data:`voiceprint.evaluate.DURATION_BUCKETS`; None without a duration."""
    if net_test is None or not np.isfinite(net_test):
        return None
    from .evaluate import _bucket

    return f"{pair}|{_bucket(float(net_test))}"


def bounded(llr, pairs, net_test, limits: Callable[[str, float | None], tuple[float, float]]) -> np.ndarray:
    """Each llr clipped to what its channel pair's development trials support, and (given ``net_test``) to what those
    of as much test speech support. ``limits(pair, net_test)``: :meth:`Backend.llr_limits` or the fit's own."""
    out = np.array(llr, dtype=np.float64, copy=True)
    pairs = np.broadcast_to(np.asarray(pairs), out.shape)
    if net_test is None:
        nets = np.full(out.shape, np.nan)
    else:
        nets = np.broadcast_to(np.asarray(net_test, np.float64), out.shape)
    from .evaluate import DURATION_BUCKETS

    edges = np.array([lo for lo, _, _ in DURATION_BUCKETS[1:]])
    bucket = np.where(np.isnan(nets), -1, np.searchsorted(edges, np.nan_to_num(nets), side="right"))
    for pair in set(pairs.ravel().tolist()) if pairs.size else ():
        for b in set(bucket[pairs == pair].ravel().tolist()):
            m = (pairs == pair) & (bucket == b)
            lo, hi = limits(pair, None if b < 0 else DURATION_BUCKETS[b][0])
            out[m] = np.clip(out[m], lo, hi)
    return out


def _limits(stored) -> dict:
    """``llr_limit`` as saved: a dict per channel pair, or (older back ends) one pair or one number."""
    if isinstance(stored, dict):
        return {k: tuple(float(x) for x in v) for k, v in stored.items()}
    return {"all": tuple(np.broadcast_to(stored, 2).astype(float).tolist())}


def _rownorm(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    n[n == 0] = 1.0
    return x / n


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def backend_dir(model: str | None = None) -> Path:
    from .embedding import load_spec

    return load_spec(model).home / BACKEND_DIR


_LOADED: dict[str, Backend | None] = {}


def load_backend(model: str | None = None) -> Backend | None:
    """The fitted back end of a speaker model, or None when none has been fitted (raw cosine only)."""
    from .embedding import load_spec

    spec = load_spec(model)
    folder = spec.home / BACKEND_DIR
    key = str(folder)
    if key not in _LOADED:
        verify_backend_files(spec)
        _LOADED[key] = Backend.load(folder) if (folder / "backend.json").exists() else None
    return _LOADED[key]


# --------------------------------------------------------------------------------------------------
# Hashes of the files the evidence depends on (``evidence_sha256`` in model.json)
# --------------------------------------------------------------------------------------------------

EVIDENCE_KEY = "evidence_sha256"


def evidence_files(home: Path) -> list[str]:
    """Files under a model folder that decide reported scores and LRs, relative to it: the fitted back
    end (``backend/backend.json``, ``backend/backend.npz``), its held-out validation (``backend/validation.json``,
    :mod:`voiceprint.validation`) and a fusion's ``centres.npz``."""
    names = [f"{BACKEND_DIR}/backend.json", f"{BACKEND_DIR}/backend.npz", f"{BACKEND_DIR}/validation.json", "centres.npz"]
    return [n for n in names if (home / n).exists()]


def record_evidence_hashes(home: Path) -> dict:
    """Write the SHA-256 of each evidence file into ``home/model.json`` (the model's own hashes are untouched)."""
    meta_path = home / "model.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta[EVIDENCE_KEY] = {name: _file_sha(home / name) for name in evidence_files(home)}
    write_atomic(meta_path, json.dumps(meta, indent=2, ensure_ascii=False) + "\n", MODEL_FILE)
    return meta[EVIDENCE_KEY]


def verify_backend_files(spec) -> None:
    """Refuse a back end (or fusion centres) whose files differ from the hashes in ``model.json``.

    A back end that exists but is not hashed is refused too: editing ``backend.json`` (its LR limits,
    its calibration) would otherwise change reported LRs silently. No ``backend.json`` at all is
    "no back end": results then say they are raw cosines.
    """
    meta = json.loads((spec.home / "model.json").read_text(encoding="utf-8"))
    recorded = meta.get(EVIDENCE_KEY, {})
    has_backend = (spec.home / BACKEND_DIR / "backend.json").exists()
    if has_backend and f"{BACKEND_DIR}/backend.json" not in recorded:
        raise ModelError(f"model {spec.name}: {spec.home / BACKEND_DIR} is not hashed in model.json - refit it with "
                         f"`voiceprint backend fit`, or review it and run `voiceprint models trust-evidence {spec.name} --trust`")
    for name, expected in recorded.items():
        path = spec.home / name
        if name.startswith(f"{BACKEND_DIR}/") and not has_backend:
            continue  # the back end was removed: no LRs are reported, and the results say so
        if not path.exists():
            raise ModelError(f"model {spec.name}: {name} is missing from {spec.home} but model.json lists it - restore it")
        if _file_sha(path) != expected:
            raise ModelError(f"model {spec.name}: {name} fails its checksum - the files that turn scores into evidence were "
                             "altered; restore them, or refit with `voiceprint backend fit`")


def evidence(backend: Backend | None, score: float, library_size: int, net_a: float | None = None,
             net_b: float | None = None, pair: str = "all", symmetric: bool = False) -> dict:
    """What one comparison means: natural-log and log10 LR, the ENFSI verbal equivalent, and the
    expected number of false hits at this score in a library of ``library_size`` persons.

    ``symmetric``: two single recordings compared 1:1, neither of them the enrolment side: the mean
    of the LLR with each as the enrolment, so swapping the files cannot change the evidence (the
    calibration weighs the enrolment's and the test's net speech differently).
    Without a back end every field is None (the raw cosine has no calibrated meaning).
    """
    if backend is None:
        return {"llr": None, "log10_lr": None, "verbal": None, "expected_false_hits": None, "calibration": None, "at_bound": None}
    llr = float(backend.llr(score, net_a, net_b, pair))
    calibration = pair if pair in backend.calibration else "all"  # as Backend.llr chooses it
    lo, hi = backend.llr_limits(calibration, net_b)
    if symmetric:  # the mean of both roles' LLRs, bounded as the shorter recording's trials bound it, in either role
        llr = 0.5 * (llr + float(backend.llr(score, net_b, net_a, pair)))
        shorter = min(net_a, net_b) if net_a is not None and net_b is not None else None
        lo, hi = backend.llr_limits(calibration, shorter)
        llr = min(max(llr, lo), hi)
    return {"llr": round(llr, 3), "log10_lr": round(llr / math.log(10), 3), "verbal": verbal(llr / math.log(10)),
            "expected_false_hits": float(f"{float(backend.expected_false_hits(score, library_size, calibration, net_b)):.3g}"),
            # which calibration gave it, and whether it sits at that calibration's ELUB bound: the data
            # support no stronger (weaker) value, so the LR is "at least" ("at most") this
            "calibration": calibration,
            "at_bound": "upper" if llr >= hi - 1e-6 else "lower" if llr <= lo + 1e-6 else None}


def bound_mark(at_bound: str | None) -> str:
    """What goes before an LR at its ELUB bound: the data support no stronger ("≥") or weaker ("≤") value."""
    return {"upper": "≥ ", "lower": "≤ "}.get(at_bound or "", "")


def lr_shown(log10_lr: float | None) -> str:
    """The likelihood ratio itself as a report prints it: "9,310" or "1/159", never "9.31e+03"; three
    significant figures below 100 ("2.35", "1/4.6")."""
    if log10_lr is None or not math.isfinite(log10_lr):
        return "n/a"
    lr = 10 ** abs(log10_lr)
    text = f"{lr:,.0f}" if lr >= 100 else f"{lr:.3g}"
    return text if log10_lr >= 0 else f"1/{text}"


def shown_log10_lr(evidence: dict):
    """log10 LR as a person reads it in a table: "≥ 3.969" at the upper ELUB bound (no stronger value is supported)."""
    value = evidence.get("log10_lr")
    return value if value is None or not evidence.get("at_bound") else f"{bound_mark(evidence['at_bound'])}{value}"


def scoring_note(model: str | None = None) -> str:
    """One line saying what ``score`` means in query and verify results."""
    backend = load_backend(model)
    if backend is None:
        return ("score = raw cosine; no back end is fitted for this model, so llr, verbal and expected_false_hits "
                "are null (fit one with `voiceprint backend fit`)")
    return (f"score = {backend.score_meaning()} (cosine = raw cosine); llr = natural-log likelihood ratio "
            f"calibrated on development speakers ({backend.meta.get('fitted_at', '?')})")


def rescore(backend: Backend, query: np.ndarray, query_domain: str, persons: dict) -> dict:
    """Back-end scores of one raw query vector against persons.

    ``persons``: person id -> (raw sample vectors [n, dim], their domains, their total net speech).
    Returns person id -> (normalised score, channel pair), exactly as
    :func:`voiceprint.evaluate.build_trials` scores.
    """
    if not persons:
        return {}
    pids = list(persons)
    models = np.stack([backend.model(persons[p][0], persons[p][1]) for p in pids])
    scores = backend.score(models, backend.project(query, query_domain))[:, 0]
    return {p: (float(s), pair_of(majority(persons[p][1]), query_domain)) for p, s in zip(pids, scores)}


# --------------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------------


def within_class_whitening(x: np.ndarray, labels: np.ndarray, shrink: float, out_dim: int | None = None) -> np.ndarray:
    """Transform that whitens the within-speaker covariance (shrunk toward a scaled identity).

    With ``out_dim`` the result is further reduced by LDA to the ``out_dim`` directions with the
    largest between-speaker variance after whitening.
    """
    labels = np.asarray(labels)
    uniq, inv = np.unique(labels, return_inverse=True)
    sums = np.zeros((len(uniq), x.shape[1]))
    np.add.at(sums, inv, x)
    counts = np.bincount(inv).astype(float)
    class_means = sums / counts[:, None]
    within = x - class_means[inv]
    sw = within.T @ within / len(x)
    sw = (1 - shrink) * sw + shrink * np.trace(sw) / len(sw) * np.eye(len(sw))
    evals, evecs = np.linalg.eigh(sw)
    w = evecs / np.sqrt(np.maximum(evals, 1e-10))
    if out_dim:
        mu = x.mean(axis=0)
        sb = ((class_means - mu) * counts[:, None]).T @ (class_means - mu) / len(x)
        sb_w = w.T @ sb @ w
        e2, v2 = np.linalg.eigh(sb_w)
        w = w @ v2[:, np.argsort(e2)[::-1][:out_dim]]
    return w


def hashed_speaker(speaker: str) -> str:
    """A speaker id as stored in backend.json: enough to detect overlap, not to read the id back."""
    return hashlib.sha256(("voiceprint-speaker:" + speaker).encode("utf-8")).hexdigest()[:16]


def speaker_list_hash(speakers) -> str:
    return hashlib.sha256("\n".join(sorted(set(speakers))).encode()).hexdigest()
