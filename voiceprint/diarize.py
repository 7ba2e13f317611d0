"""Who spoke when in a mono recording: split a two-party call into one :class:`Voice` per speaker.

A victim's or a monitored line's recording holds the fraudster and the victim on one channel;
enrolling or querying it whole would mix them. The steps:

1. the speech segments from the VAD (``audio.speech_segments``);
2. sliding windows of ``WINDOW_S`` (hop ``HOP_S``) inside each segment, each embedded by the
   speaker model (in batches - the windows are short, so this costs about as much as
   embedding the speech once);
3. agglomerative clustering (average linkage, cosine) cut at ``SPLIT_THRESHOLD``, so the
   number of speakers is estimated, not assumed: windows that all agree give one voice;
4. resegmentation: every 0.1 s frame of speech goes to the speaker whose centroid the windows
   covering it resemble most (windows centred nearer the frame weigh more), runs shorter than ``MIN_RUN_S`` are absorbed by their
   neighbours, and a speaker left with less than ``MIN_VOICE_S`` of speech is dropped into
   the next-best one;
5. merging: each voice is embedded whole by the speaker model and voices the calibrated back end
   calls one speaker (log LR at least ``MERGE_MIN_LLR``) are merged (:func:`merge_same_speaker`),
   so a caller whose windows drift (tone, noise, codec) is not split into several voices.

Recordings with less than ``MIN_DIARIZE_SPEECH_S`` of speech are taken as one voice without
any windowing: there is too little to tell two people apart, and no extra cost. Longer ones are
first screened with a sparse pass (one window every 3 s); only when one of those windows
disagrees with the others are the rest embedded and clustered, so a one-voice call costs about
1.5x a plain embedding (``scripts/bench_one_voice.py``) and gets exactly the same voiceprint.
``SPLIT_THRESHOLD`` was chosen on a development split of real speech (see
``scripts/eval_diarization.py`` and ``docs/accuracy.md``).

Long calls (intercepts run for hours) are bounded: at most ``MAX_WINDOWS`` windows are embedded
(spread over the call with a longer hop), at most ``MAX_CLUSTER_WINDOWS`` are clustered exactly
(the rest join the nearest centroid), frames find their windows by binary search, and each voice
embeds at most ``audio.MAX_EMBED_SPEECH_S`` of its speech; a 2-hour call then costs minutes, not
hours (``scripts/bench_long.py``, ``docs/benchmarks.md``). Calls under the bounds (about 20 minutes
of speech) are diarised exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .audio import SpeechSegment, embedding_audio, progress_hook, spread_segments

WINDOW_S = 1.5
HOP_S = 0.75
#: Shortest stretch of speech embedded as a window of its own (shorter segments take neighbours' labels).
MIN_WINDOW_S = 0.5
FRAME_S = 0.1
#: Windows whose clusters' average cosine stays above this are one speaker (tuned on the dev split).
SPLIT_THRESHOLD = 0.30
MIN_DIARIZE_SPEECH_S = 4.0
MIN_RUN_S = 0.5
MIN_VOICE_S = 1.0
MAX_SPEAKERS = 4
#: A cluster is a speaker only with at least this many windows and this share of them.
MIN_CLUSTER_WINDOWS = 3
MINOR_SHARE = 0.1
#: Windows per ECAPA batch: 32 cost ~950 MB of activations for ~9 % less CPU than 8 (~180 MB).
BATCH = 8
#: The sparse first pass embeds one window in this many (windows start every HOP_S seconds).
COARSE_EVERY = 4
#: At most this many windows are embedded (well under a CPU-minute on 2 cores): a call with more speech
#: (over ~8 minutes) gets its windows spread out with a longer hop, and frames between two windows
#: take the speaker of the nearer one. Shorter calls are diarised exactly as before.
MAX_WINDOWS = 600
#: Average-linkage clustering costs O(n^2) memory and time: at most this many windows (evenly spread)
#: are clustered exactly, the others join the nearest centroid of those clusters.
MAX_CLUSTER_WINDOWS = 1000
#: Two diarised voices whose whole-voice comparison reaches this natural-log LR are merged
#: (:func:`merge_same_speaker`). -1 is the Bayes decision at prior odds of e (73 %) that two clusters
#: of one recording are one speaker - clustering splits a fifth of single real calls - and was
#: chosen on development speakers: no false split of a real call from -1 down (1 of 128 at 0,
#: ``scripts/eval_splits.py``), two-party DER 4.36 % at -1 and -2 (3.85 % at 0,
#: ``scripts/eval_diarization.py``); docs/models.md.
MERGE_MIN_LLR = -1.0


@dataclass
class Voice:
    """One speaker of a recording: where they speak (seconds) and the audio embedded for them
    (their speech with context, concatenated: ``audio.embedding_audio``)."""

    index: int
    segments: list[SpeechSegment]
    speech: np.ndarray = field(repr=False)
    sample_rate: int = 16000

    @property
    def net_speech(self) -> float:
        return float(sum(s.duration for s in self.segments))

    def time_ranges(self) -> list[list[float]]:
        return [[round(s.start, 2), round(s.end, 2)] for s in self.segments]


def window_spans(segments: list[SpeechSegment], hop: float = HOP_S) -> list[tuple[float, float]]:
    """Windows of ``WINDOW_S`` with ``hop`` inside each speech segment (the last one flush with its end)."""
    spans: list[tuple[float, float]] = []
    for s in segments:
        if s.duration < MIN_WINDOW_S:
            continue
        if s.duration <= WINDOW_S:
            spans.append((s.start, s.end))
            continue
        t = s.start
        while t + WINDOW_S < s.end:
            spans.append((t, t + WINDOW_S))
            t += hop
        spans.append((s.end - WINDOW_S, s.end))
    return spans


def bounded_spans(segments: list[SpeechSegment], max_windows: int | None = None) -> list[tuple[float, float]]:
    """:func:`window_spans`, unless there would be more than ``max_windows`` (default ``MAX_WINDOWS``):
    then a hop long enough to stay near that many, and if short segments still make too many, an even
    subset of them."""
    max_windows = MAX_WINDOWS if max_windows is None else max_windows
    spans = window_spans(segments)
    if len(spans) <= max_windows:
        return spans
    spans = window_spans(segments, hop=HOP_S * len(spans) / max_windows)
    if len(spans) > max_windows:
        keep = np.unique(np.linspace(0, len(spans) - 1, max_windows).round().astype(int))
        spans = [spans[i] for i in keep]
    return spans


def embed_windows(samples: np.ndarray, spans: list[tuple[float, float]], embedder, sr: int = 16000,
                  progress=None, done: int = 0, total: int = 0) -> np.ndarray:
    """L2-normalised embeddings [n, dim] of each span, computed in padded batches by the embedder's
    diarisation model (:meth:`voiceprint.embedding.Embedder.diarisation_windows`).

    ``progress("voices", done + embedded so far, total)`` is called after each batch."""
    import torch

    out = []
    with torch.inference_mode():
        for b in range(0, len(spans), BATCH):
            chunk = [samples[int(round(a * sr)) : int(round(e * sr))] for a, e in spans[b : b + BATCH]]
            longest = max(len(c) for c in chunk)
            wavs = torch.zeros(len(chunk), longest)
            for i, c in enumerate(chunk):
                wavs[i, : len(c)] = torch.from_numpy(np.ascontiguousarray(c))
            lens = torch.tensor([len(c) / longest for c in chunk])
            out.append(embedder.diarisation_windows(wavs, lens))
            if progress is not None:
                progress("voices", done + b + len(chunk), total or len(spans))
    x = np.vstack(out).astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def cluster_windows(vectors: np.ndarray, threshold: float = SPLIT_THRESHOLD, merge_minor: bool = True) -> np.ndarray:
    """Labels 0..k-1 from average-linkage clustering on cosine, cut where clusters' mean cosine < ``threshold``.

    More than ``MAX_CLUSTER_WINDOWS`` vectors: an even subset is clustered, the rest take the label of
    the nearest centroid of its clusters."""
    if len(vectors) > MAX_CLUSTER_WINDOWS:
        sub = np.unique(np.linspace(0, len(vectors) - 1, MAX_CLUSTER_WINDOWS).round().astype(int))
        sub_labels = cluster_windows(vectors[sub], threshold, merge_minor)
        cents = _centroids(vectors[sub], sub_labels)
        labels = np.argmax(vectors @ cents.T, axis=1)
        labels[sub] = sub_labels
        _, labels = np.unique(labels, return_inverse=True)
        return labels
    if len(vectors) < 2:
        return np.zeros(len(vectors), dtype=int)
    from scipy.cluster.hierarchy import fcluster, linkage

    tree = linkage(vectors, method="average", metric="cosine")
    labels = fcluster(tree, t=1.0 - threshold, criterion="distance")
    if labels.max() > MAX_SPEAKERS:
        labels = fcluster(tree, t=MAX_SPEAKERS, criterion="maxclust")
    _, labels = np.unique(labels, return_inverse=True)
    return _merge_minor(vectors, labels) if merge_minor else labels


def _centroids(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unit-length mean of each label's vectors, in label order."""
    cents = np.vstack([vectors[labels == j].mean(axis=0) for j in range(int(labels.max()) + 1)])
    return cents / np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-9)


def _merge_minor(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Fold clusters of fewer than ``MINOR_SHARE`` of the windows (overlaps, coughs, noise) into the nearest major one."""
    sizes = np.bincount(labels)
    major = [j for j in range(len(sizes)) if sizes[j] >= max(MIN_CLUSTER_WINDOWS, MINOR_SHARE * len(labels))]
    if not major:
        return np.zeros(len(labels), dtype=int)
    cents = np.vstack([vectors[labels == j].mean(axis=0) for j in major])
    cents /= np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-9)
    out = np.array([major.index(lab) if lab in major else -1 for lab in labels])
    minor = out < 0
    if minor.any():
        out[minor] = np.argmax(vectors[minor] @ cents.T, axis=1)
    return out


def diarize(samples: np.ndarray, segments: list[SpeechSegment], embedder, sr: int = 16000,
            threshold: float = SPLIT_THRESHOLD, window_vectors: np.ndarray | None = None, progress=None,
            domain: str | None = None) -> list[Voice]:
    """One :class:`Voice` per speaker found in ``samples`` (mono), ordered by when they first speak.

    ``domain`` (``scoring.domain_of`` of the recording): merge voices the back end calls one
    speaker (:func:`merge_same_speaker`); None skips that step.

    ``window_vectors`` may carry precomputed embeddings of :func:`window_spans` (evaluations cache them).
    ``progress``: optional ``progress("voices", windows embedded, windows)`` hook (``audio.reporting``).
    """
    segments = sorted(segments, key=lambda s: s.start)

    def one() -> list[Voice]:
        return [Voice(0, list(segments), embedding_audio(samples, spread_segments(segments), sr), sr)]

    if sum(s.duration for s in segments) < MIN_DIARIZE_SPEECH_S:
        return one()
    spans = window_spans(segments)
    thinned = window_vectors is None and len(spans) > MAX_WINDOWS  # a long call: windows spread out
    if thinned:
        spans = bounded_spans(segments)
    if len(spans) < 3:
        return one()
    vectors = _window_vectors(samples, spans, embedder, sr, threshold, window_vectors, progress_hook(progress))
    if vectors is None:
        return one()
    labels = cluster_windows(vectors, threshold)
    if labels.max() == 0:
        return one()
    frames, frame_labels = _resegment(segments, spans, vectors, labels)
    voices = _voices_from_frames(samples, segments, frames, frame_labels, sr)
    # Not after thinned windows: frames between far-apart windows take the nearer window's speaker,
    # so each voice of a long call holds some of the other's turns and whole-voice embeddings look
    # alike (a 2-hour two-party call was merged into one voice); long calls have hundreds of
    # windows per cluster, and the false splits the merge repairs come from short recordings.
    if domain is not None and len(voices) > 1 and not thinned:
        voices = merge_same_speaker(samples, voices, embedder, domain, sr)
    return voices if len(voices) > 1 else one()


def _window_vectors(samples, spans, embedder, sr, threshold, window_vectors, progress) -> np.ndarray | None:
    """Embeddings of all ``spans``, or None when a sparse first pass (every ``COARSE_EVERY``-th
    window, about half an embedding's compute) finds not one window that disagrees with the rest:
    the recording is one voice and the other windows are never embedded."""
    coarse = list(range(0, len(spans), COARSE_EVERY))
    rest = [i for i in range(len(spans)) if i % COARSE_EVERY]
    if window_vectors is not None:
        first = window_vectors[coarse]
    else:
        first = embed_windows(samples, [spans[i] for i in coarse], embedder, sr, progress, 0, len(spans))
    if len(coarse) >= 2 and cluster_windows(first, threshold, merge_minor=False).max() == 0:
        if progress is not None:
            progress("voices", len(spans), len(spans))
        return None
    if window_vectors is not None:
        return window_vectors
    vectors = np.zeros((len(spans), first.shape[1]))
    vectors[coarse] = first
    if rest:
        vectors[rest] = embed_windows(samples, [spans[i] for i in rest], embedder, sr, progress, len(coarse), len(spans))
    return vectors


def _frame_votes(segments, spans, win_scores) -> tuple[list[tuple[float, float]], np.ndarray]:
    """Every ``FRAME_S`` frame of speech and the speaker its covering windows resemble most
    (windows centred nearer the frame weigh more; a frame no window covers takes the nearest window).

    Windows are sorted by start and none is longer than ``WINDOW_S``, so the windows covering a
    frame are found by binary search among those starting in the ``WINDOW_S`` before it."""
    starts = np.array([a for a, _ in spans])
    ends = np.array([e for _, e in spans])
    mids = (starts + ends) / 2
    order = np.argsort(starts, kind="stable")
    starts_sorted = starts[order]
    frames, frame_labels = [], []
    for s in segments:
        n = max(1, int(round(s.duration / FRAME_S)))
        edges = np.linspace(s.start, s.end, n + 1)
        for a, e in zip(edges[:-1], edges[1:], strict=True):
            m = (a + e) / 2
            lo = int(np.searchsorted(starts_sorted, m - WINDOW_S - 1e-9, side="left"))
            hi = int(np.searchsorted(starts_sorted, m, side="right"))
            cand = order[lo:hi]
            cover = np.sort(cand[ends[cand] >= m])
            if not len(cover):  # a short segment with no window: take the nearest window(s)
                dist = np.abs(mids - m)
                cover = np.flatnonzero(dist == dist.min())
            # windows centred near the frame speak for it most (triangular weights)
            weight = np.maximum(1.0 - np.abs(mids[cover] - m) / (WINDOW_S / 2), 0.0) + 1e-3
            frames.append((a, e))
            frame_labels.append(int(np.argmax(weight @ win_scores[cover])))
    return frames, np.array(frame_labels)


def _resegment(segments, spans, vectors, labels):
    """Label every ``FRAME_S`` frame of speech by the centroid its covering windows resemble most."""
    k = int(labels.max()) + 1
    centroids = _centroids(vectors, labels)
    frames, frame_labels = _frame_votes(segments, spans, vectors @ centroids.T)
    # drop speakers left with too little speech into their next-best speaker, smallest first
    while True:
        counts = np.bincount(frame_labels, minlength=k) * FRAME_S
        alive = [j for j in range(k) if counts[j] > 0]
        small = [j for j in alive if counts[j] < MIN_VOICE_S]
        if not small or len(alive) == 1:
            break
        j = min(small, key=lambda j: counts[j])
        others = [o for o in alive if o != j]
        target = others[int(np.argmax(centroids[others] @ centroids[j]))]
        frame_labels[frame_labels == j] = target
    _absorb_short_runs(frames, frame_labels)
    return frames, frame_labels


def _absorb_short_runs(frames, labels) -> None:
    """Relabel runs shorter than ``MIN_RUN_S`` (within contiguous speech) with the longer neighbour's label."""
    min_frames = max(1, int(round(MIN_RUN_S / FRAME_S)))
    for _ in range(3):
        runs, start = [], 0
        for i in range(1, len(labels) + 1):
            if i == len(labels) or labels[i] != labels[start] or frames[i][0] - frames[i - 1][1] > 1e-3:
                runs.append((start, i))
                start = i
        changed = False
        for r, (a, b) in enumerate(runs):
            if b - a >= min_frames:
                continue
            before = runs[r - 1] if r > 0 and frames[a][0] - frames[runs[r - 1][1] - 1][1] < 1e-3 else None
            after = runs[r + 1] if r + 1 < len(runs) and frames[runs[r + 1][0]][0] - frames[b - 1][1] < 1e-3 else None
            pick = max((x for x in (before, after) if x), key=lambda x: x[1] - x[0], default=None)
            if pick and labels[pick[0]] != labels[a]:
                labels[a:b] = labels[pick[0]]
                changed = True
        if not changed:
            break


def _voices_from_frames(samples, segments, frames, labels, sr) -> list[Voice]:
    by_label: dict[int, list[SpeechSegment]] = {}
    for (a, e), lab in zip(frames, labels, strict=True):
        segs = by_label.setdefault(int(lab), [])
        if segs and abs(segs[-1].end - a) < 1e-3:
            segs[-1] = SpeechSegment(segs[-1].start, round(e, 4))
        else:
            segs.append(SpeechSegment(round(a, 4), round(e, 4)))
    ordered = sorted(by_label.values(), key=lambda segs: segs[0].start)
    ordered = [segs for segs in ordered if sum(s.duration for s in segs) >= MIN_VOICE_S] or ordered[:1]
    return _build_voices(samples, ordered, sr)


def _build_voices(samples, groups: list[list[SpeechSegment]], sr) -> list[Voice]:
    """One Voice per group of segments, in the order given; each embeds its own speech with context
    that avoids the other voices' segments."""
    return [Voice(i, segs, embedding_audio(samples, spread_segments(segs), sr,
                                           avoid=[o for j, other in enumerate(groups) if j != i for o in other]), sr)
            for i, segs in enumerate(groups)]


def merge_same_speaker(samples: np.ndarray, voices: list[Voice], embedder, domain: str, sr: int = 16000,
                       min_llr: float | None = None) -> list[Voice]:
    """Merge diarised voices that the calibrated back end says are one speaker.

    Window clustering cuts on a raw cosine of 1.5 s windows; a caller who changes tone, a noisy
    stretch or a codec burst can form a cluster of its own. Each voice is embedded whole by the
    speaker model and every pair scored by its back end; the pair with the highest LLR is merged
    while that LLR is at least ``min_llr`` (default ``MERGE_MIN_LLR``), and the survivors are
    re-embedded. Without a fitted back end the voices are returned unchanged."""
    from .scoring import load_backend

    backend = load_backend(embedder.spec.name) if len(voices) > 1 else None
    if backend is None:
        return voices
    threshold = MERGE_MIN_LLR if min_llr is None else min_llr
    groups = [list(v.segments) for v in voices]
    while len(voices) > 1:
        vectors = np.stack([embedder.embed(v.speech) for v in voices])
        projected = backend.project(vectors, domain)
        nets = np.array([v.net_speech for v in voices])
        llr = backend.llr(backend.score(projected, projected), nets[:, None], nets[None, :], domain)
        np.fill_diagonal(llr, -np.inf)
        i, j = np.unravel_index(int(np.argmax(llr)), llr.shape)
        if llr[i, j] < threshold:
            break
        groups[min(i, j)] = sorted(groups[i] + groups[j], key=lambda s: s.start)
        del groups[max(i, j)]
        voices = _build_voices(samples, groups, sr)
    return voices
