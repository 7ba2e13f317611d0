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


def test_resegmentation_finds_the_turn_between_two_speakers():
    """Given window embeddings that change speaker at 6 s, the voices' time ranges split there."""
    rng = np.random.default_rng(2)
    segs = [SpeechSegment(0.0, 12.0)]
    spans = diarize.window_spans(segs)
    a, b = rng.normal(size=192), rng.normal(size=192)
    vecs = np.vstack([_group(rng, (a if (s + e) / 2 < 6.0 else b), 1) for s, e in spans])
    samples = np.zeros(12 * 16000, np.float32)
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

    rows = list(csv.DictReader(open(SHARED / "speechocean762" / "manifest.csv")))
    spk = sorted({r["speaker"] for r in rows})
    a = [r for r in rows if r["speaker"] == spk[3]][:3]
    b = [r for r in rows if r["speaker"] == spk[40]][:3]
    parts, truth, t = [], [], 0.0
    for ra, rb in zip(a, b):
        for who, r in ((0, ra), (1, rb)):
            x = audio.load_recording(SHARED / "speechocean762" / r["path"]).channels[0].samples
            parts += [x, np.zeros(4000, np.float32)]
            truth.append((t, t + len(x) / 16000, who))
            t += len(x) / 16000 + 0.25
    mix = np.concatenate(parts)
    voices = diarize.diarize(mix, audio.speech_segments(mix), get_embedder())
    assert len(voices) == 2
    for v in voices:  # each voice speaks mostly inside one speaker's turns
        share = [sum(max(0.0, min(e, s.end) - max(st, s.start)) for st, e, w in truth if w == who for s in v.segments)
                 for who in (0, 1)]
        assert max(share) >= 0.85 * sum(share)
