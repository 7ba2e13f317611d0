"""Diarisation: windows, speaker-count estimation, resegmentation, and real two-party calls."""

import csv

import audiogen
import numpy as np
import pytest

from voiceprint import diarize
from voiceprint.audio import SpeechSegment

SHARED = audiogen.shared_data_dir()


def _group(rng, centre, n, spread=0.04):
    """``n`` unit vectors around the direction of ``centre`` (cosine ~0.8 to each other)."""
    centre = centre / np.linalg.norm(centre)
    x = centre[None, :] + spread * rng.normal(size=(n, len(centre)))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_windows_cover_each_segment_with_the_hop():
    spans = diarize.window_spans([SpeechSegment(0.0, 3.0), SpeechSegment(4.0, 4.3), SpeechSegment(5.0, 6.0)])
    assert spans[:3] == [(0.0, 1.5), (0.75, 2.25), (1.5, 3.0)]
    assert (5.0, 6.0) in spans  # a short segment is one window
    assert all(not (4.0 <= a < 4.3) for a, _ in spans)  # too short to embed alone


def test_speaker_count_is_estimated_not_assumed():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=192), rng.normal(size=192)
    one = _group(rng, a, 20)
    assert diarize.cluster_windows(one).max() == 0
    two = np.vstack([_group(rng, a, 15), _group(rng, b, 15)])
    labels = diarize.cluster_windows(two)
    assert labels.max() == 1 and len(set(labels[:15])) == 1 and labels[0] != labels[-1]


def test_a_handful_of_odd_windows_is_not_a_speaker():
    rng = np.random.default_rng(1)
    a, c = rng.normal(size=192), rng.normal(size=192)
    x = np.vstack([_group(rng, a, 28), _group(rng, c, 2)])
    assert diarize.cluster_windows(x).max() == 0


def _turn_at_6s():
    """12 s of speech whose window embeddings change speaker at 6 s: (segments, window vectors, samples)."""
    rng = np.random.default_rng(2)
    segs = [SpeechSegment(0.0, 12.0)]
    a, b = rng.normal(size=192), rng.normal(size=192)
    vecs = np.vstack([_group(rng, (a if (s + e) / 2 < 6.0 else b), 1) for s, e in diarize.window_spans(segs)])
    return segs, vecs, np.zeros(12 * 16000, np.float32)


def test_resegmentation_finds_the_turn_between_two_speakers():
    """Given window embeddings that change speaker at 6 s, the voices' time ranges split there."""
    segs, vecs, samples = _turn_at_6s()
    voices = diarize.diarize(samples, segs, embedder=None, window_vectors=vecs)
    assert len(voices) == 2
    first, second = voices
    assert abs(first.segments[-1].end - 6.0) <= 0.5 and abs(second.segments[0].start - 6.0) <= 0.5
    assert abs(first.net_speech + second.net_speech - 12.0) < 1e-6
    assert len(first.speech) == pytest.approx(first.net_speech * 16000, abs=16 * len(first.segments))


def test_short_recordings_are_one_voice_without_any_embedding():
    samples = np.zeros(5 * 16000, np.float32)
    voices = diarize.diarize(samples, [SpeechSegment(0.5, 3.0)], embedder=None)  # None: would fail if used
    assert len(voices) == 1 and voices[0].time_ranges() == [[0.5, 3.0]]


@pytest.mark.skipif(SHARED is None, reason="../shared/data (real speech) is not present")
def test_real_two_party_call_is_split_by_speaker():
    from voiceprint import audio
    from voiceprint.embedding import get_embedder

    mix, truth = _real_two_party_call()
    _check_two_voices(diarize.diarize(mix, audio.speech_segments(mix), get_embedder(), domain="wideband"), truth)  # merged: still two


def _real_two_party_call():
    """Three turns each of two speechocean762 speakers in one mono signal: (samples, [(start, end, who)])."""
    from voiceprint import audio

    rows = list(csv.DictReader(open(SHARED / "speechocean762" / "manifest.csv")))
    spk = sorted({r["speaker"] for r in rows})
    a = [r for r in rows if r["speaker"] == spk[3]][:3]
    b = [r for r in rows if r["speaker"] == spk[40]][:3]
    parts, truth, t = [], [], 0.0
    for ra, rb in zip(a, b, strict=False):
        for who, r in ((0, ra), (1, rb)):
            x = audio.load_recording(SHARED / "speechocean762" / r["path"]).channels[0].samples
            parts += [x, np.zeros(4000, np.float32)]
            truth.append((t, t + len(x) / 16000, who))
            t += len(x) / 16000 + 0.25
    return np.concatenate(parts), truth


@pytest.mark.skipif(SHARED is None, reason="../shared/data (real speech) is not present")
def test_no_back_end_merge_after_thinned_windows(monkeypatch):
    """A long call's windows are spread out, so each voice holds some of the other's turns and whole-voice
    embeddings look alike (a 2-hour call was once merged into one voice): the merge is skipped there."""
    from voiceprint import audio
    from voiceprint.embedding import get_embedder

    mix, truth = _real_two_party_call()
    segments = audio.speech_segments(mix)
    monkeypatch.setattr(diarize, "MAX_WINDOWS", len(diarize.window_spans(segments)) - 1)

    def merge(*args, **kwargs):
        raise AssertionError("merge_same_speaker called on thinned windows")

    monkeypatch.setattr(diarize, "merge_same_speaker", merge)
    _check_two_voices(diarize.diarize(mix, segments, get_embedder(), domain="wideband"), truth)


def _check_two_voices(voices, truth):
    assert len(voices) == 2
    for v in voices:  # each voice speaks mostly inside one speaker's turns
        share = [sum(max(0.0, min(e, s.end) - max(st, s.start)) for st, e, w in truth if w == who for s in v.segments)
                 for who in (0, 1)]
        assert max(share) >= 0.85 * sum(share)


@pytest.mark.skipif(SHARED is None, reason="../shared/data (real speech) is not present")
def test_a_real_caller_split_by_clustering_is_merged_back_by_the_back_end():
    """A real 8 kHz IVR caller whose windows clustering cuts into two voices (found by
    scripts/eval_splits.py); the back end calls the two one speaker and merges them."""
    from voiceprint import audio
    from voiceprint.embedding import get_embedder
    from voiceprint.scoring import domain_of

    path = SHARED / "hyke_ivr_8k" / "hyke_M1298677452" / "1298677452_3.flac"
    rec = audio.load_recording(path, channels=0)
    x, segments = rec.channels[0].samples, audio.speech_segments(rec.channels[0].samples)
    embedder = get_embedder()
    clustered = diarize.diarize(x, segments, embedder)
    assert len(clustered) == 2
    merged = diarize.merge_same_speaker(x, clustered, embedder, domain_of(rec.source_rate, rec.codec))
    assert len(merged) == 1 and sum(s.duration for s in merged[0].segments) == pytest.approx(
        sum(v.net_speech for v in clustered), abs=1e-6)
    assert len(diarize.diarize(x, segments, embedder, domain=domain_of(rec.source_rate, rec.codec))) == 1


# --- long calls: bounded windows and clustering -------------------------------------------------


def _segments(rng, seconds):
    segs, t = [], 0.0
    while t < seconds:
        d = float(rng.choice([0.3, 0.8, 1.4, rng.uniform(2, 15)]))
        segs.append(SpeechSegment(round(t, 4), round(t + d, 4)))
        t += d + float(rng.uniform(0.1, 1.0))
    return segs


def test_window_count_is_bounded_and_spread(monkeypatch):
    segs = _segments(np.random.default_rng(3), 600)
    assert diarize.bounded_spans(segs) == diarize.window_spans(segs)  # under the cap: unchanged
    monkeypatch.setattr(diarize, "MAX_WINDOWS", 60)
    spans = diarize.bounded_spans(segs)
    assert 30 <= len(spans) <= 60
    assert spans[0][0] < 30 and spans[-1][1] > 570  # the whole call, not its beginning
    assert all(a < b for (a, _), (b, _) in zip(spans, spans[1:], strict=False))
    assert all(any(s.start - 1e-9 <= a and e <= s.end + 1e-9 for s in segs) for a, e in spans)


def test_clustering_beyond_the_cap_assigns_the_rest_to_centroids(monkeypatch):
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=192), rng.normal(size=192)
    x = np.vstack([_group(rng, a, 40), _group(rng, b, 40), _group(rng, a, 20)])
    exact = diarize.cluster_windows(x)
    monkeypatch.setattr(diarize, "MAX_CLUSTER_WINDOWS", 25)
    capped = diarize.cluster_windows(x)
    assert capped.max() == 1 and ((capped == exact).all() or (capped == 1 - exact).all())


def test_frame_votes_match_the_brute_force_search():
    """The binary-searched covering windows give the labels of checking every window."""
    rng = np.random.default_rng(5)
    segs = _segments(rng, 120)
    spans = diarize.window_spans(segs)
    scores = rng.normal(size=(len(spans), 3))
    frames, labels = diarize._frame_votes(segs, spans, scores)
    starts, ends = np.array([a for a, _ in spans]), np.array([e for _, e in spans])
    mids = (starts + ends) / 2
    expect = []
    for a, e in frames:
        m = (a + e) / 2
        cover = (starts <= m) & (ends >= m)
        if not cover.any():
            cover = np.abs(mids - m) == np.abs(mids - m).min()
        w = np.maximum(1.0 - np.abs(mids[cover] - m) / (diarize.WINDOW_S / 2), 0.0) + 1e-3
        expect.append(int(np.argmax(w @ scores[cover])))
    assert labels.tolist() == expect


def test_voices_embed_at_most_the_cap(monkeypatch):
    from voiceprint import audio

    segs, vecs, samples = _turn_at_6s()
    monkeypatch.setattr(audio, "MAX_EMBED_SPEECH_S", 2.0)
    voices = diarize.diarize(samples, segs, embedder=None, window_vectors=vecs)
    assert len(voices) == 2 and all(len(v.speech) <= 16000 * (2.0 + 2 * audio.EMBED_PAD_S + 1) for v in voices)
    assert abs(sum(v.net_speech for v in voices) - 12.0) < 1e-6  # the time ranges still cover all speech
