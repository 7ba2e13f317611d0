"""voiceprint.audio: decoding every supported format with real encoders, VAD, quality, and bad inputs."""

from __future__ import annotations

import csv

import audiogen
import av
import numpy as np
import pytest

from voiceprint import audio
from voiceprint.audio import (
    EMBED_PAD_S,
    MAX_DURATION_SECONDS,
    MAX_FILE_BYTES,
    MIN_SPEECH_SECONDS,
    TARGET_RATE,
    Channel,
    Recording,
    SpeechSegment,
    embedding_audio,
    load_recording,
    measure_quality,
    prepare_speech,
    speech_segments,
)
from voiceprint.errors import AudioError

# fmt, source rate fed to the encoder, expected codec name, expected source_rate, duration tolerance (s)
CASES = [
    ("wav_pcm16", 16000, "pcm_s16le", 16000, 0.001),
    ("wav_pcm16", 8000, "pcm_s16le", 8000, 0.001),
    ("wav_pcm16", 44100, "pcm_s16le", 44100, 0.001),
    ("wav_mulaw", 16000, "pcm_mulaw", 8000, 0.001),
    ("wav_alaw", 16000, "pcm_alaw", 8000, 0.001),
    ("flac", 16000, "flac", 16000, 0.001),
    ("mp3", 16000, "mp3", 16000, 0.08),  # encoder delay/padding
    ("mp3", 44100, "mp3", 44100, 0.08),
    ("m4a_aac", 16000, "aac", 16000, 0.15),
    ("ogg_opus", 16000, "opus", 48000, 0.03),
    ("amr_nb", 16000, "amr_nb", 8000, 0.03),
]


def _has_encoder(fmt):
    try:
        av.codec.Codec(audiogen.FORMATS[fmt][1], "w")
        return True
    except Exception:
        return False


def test_constants():
    assert TARGET_RATE == 16000
    assert MIN_SPEECH_SECONDS == 1.0
    assert MAX_FILE_BYTES == 2 * 1024**3
    assert MAX_DURATION_SECONDS == 4 * 3600


@pytest.mark.parametrize("fmt,sr,codec,source_rate,tol", CASES, ids=[f"{c[0]}_{c[1]}" for c in CASES])
def test_formats_decode(speech_files, fmt, sr, codec, source_rate, tol):
    if not _has_encoder(fmt):
        pytest.skip(f"PyAV's FFmpeg has no {audiogen.FORMATS[fmt][1]} encoder")
    path = speech_files(fmt, seconds=3.0, sr=sr)
    rec = load_recording(path)
    assert isinstance(rec, Recording)
    assert rec.codec == codec
    assert rec.source_rate == source_rate
    assert rec.n_channels == 1 and len(rec.channels) == 1
    ch = rec.channels[0]
    assert isinstance(ch, Channel) and ch.index == 0
    assert ch.sample_rate == TARGET_RATE and ch.samples.dtype == np.float32 and ch.samples.ndim == 1
    assert abs(rec.duration - 3.0) <= tol + 0.001, rec.duration
    assert abs(len(ch.samples) / TARGET_RATE - rec.duration) < 1e-6
    assert np.max(np.abs(ch.samples)) <= 1.0
    assert 0.1 < np.max(np.abs(ch.samples)) < 0.6  # level preserved (written at peak 0.3)
    assert len(rec.sha256) == 64 and rec.path == str(path)


def test_ogg_vorbis_stereo(tmp_path):
    """FFmpeg's native Vorbis encoder only writes stereo: a two-voice call at 22.05 kHz."""
    x = audiogen.stereo_call(4.0, sr=22050)
    p = audiogen.write_audio(tmp_path / "call.ogg", x, 22050, "ogg_vorbis")
    rec = load_recording(p)
    assert (rec.codec, rec.container, rec.source_rate, rec.n_channels) == ("vorbis", "ogg", 22050, 2)
    assert abs(rec.duration - 4.0) < 0.03 and len(rec.channels) == 2
    assert not np.allclose(rec.channels[0].samples, rec.channels[1].samples, atol=0.01)


def test_m4a_aac_stereo(tmp_path):
    p = audiogen.write_audio(tmp_path / "call.m4a", audiogen.stereo_call(4.0), 16000, "m4a_aac")
    rec = load_recording(p)
    assert (rec.codec, rec.n_channels, len(rec.channels)) == ("aac", 2, 2)


def test_amr_nb_8k_has_speech(speech_files):
    if not _has_encoder("amr_nb"):
        pytest.skip("PyAV's FFmpeg has no libopencore_amrnb encoder")
    rec = load_recording(speech_files("amr_nb", seconds=4.0, sr=8000, seed=1))
    assert (rec.codec, rec.container, rec.source_rate) == ("amr_nb", "amr", 8000)
    speech, segs = prepare_speech(rec.channels[0], rec.path)
    assert sum(s.end - s.start for s in segs) > 2.0
    q = measure_quality(rec.channels[0], segs, rec.codec, rec.source_rate)
    assert q["bandwidth_hz"] <= 4000


def test_amr_wb_fixture():
    rec = load_recording(audiogen.AMR_WB_FIXTURE)
    assert (rec.codec, rec.container, rec.source_rate, rec.n_channels) == ("amr_wb", "amr", 16000, 1)
    assert abs(rec.duration - 4.0) < 0.03
    _, segs = prepare_speech(rec.channels[0], rec.path)
    assert sum(s.end - s.start for s in segs) > 2.0


def test_sha256_matches(speech_wav):
    import hashlib

    assert load_recording(speech_wav).sha256 == hashlib.sha256(speech_wav.read_bytes()).hexdigest()


def test_stereo_each_mix_index(stereo_wav):
    rec = load_recording(stereo_wav)
    assert rec.n_channels == 2 and [c.index for c in rec.channels] == [0, 1]
    left, right = rec.channels[0].samples, rec.channels[1].samples
    assert not np.allclose(left, right)
    mix = load_recording(stereo_wav, channels="mix")
    assert len(mix.channels) == 1 and mix.n_channels == 2
    np.testing.assert_allclose(mix.channels[0].samples, (left + right) / 2, atol=1e-6)
    one = load_recording(stereo_wav, channels=1)
    assert [c.index for c in one.channels] == [1]
    np.testing.assert_array_equal(one.channels[0].samples, right)
    # each side holds different speech at different times
    sl = speech_segments(left)
    sr_ = speech_segments(right)
    assert sl and sr_
    assert abs(sl[0].start - sr_[0].start) > 0.5


def test_channel_out_of_range(stereo_wav):
    with pytest.raises(AudioError, match=r"has 2 channel\(s\), channel 2 does not exist"):
        load_recording(stereo_wav, channels=2)


def test_mono_mix_is_channel_0(speech_wav):
    rec = load_recording(speech_wav, channels="mix")
    assert rec.channels[0].index == 0


def test_resampled_rate_and_content(tmp_path):
    """A 1 kHz sine at 44.1 kHz comes out as a 1 kHz sine at 16 kHz (resampler is correct)."""
    sr = 44100
    t = np.arange(sr * 2) / sr
    p = audiogen.write_audio(tmp_path / "sine.wav", 0.5 * np.sin(2 * np.pi * 1000 * t), sr, "wav_pcm16")
    x = load_recording(p).channels[0].samples
    assert abs(len(x) - 32000) <= 1
    spec = np.abs(np.fft.rfft(x[1000:17000]))
    assert abs(np.argmax(spec) * 16000 / 16000 - 1000) <= 1
    assert abs(np.max(np.abs(x[1000:-1000])) - 0.5) < 0.01


# --- VAD ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 3, 4])
def test_synthetic_speech_is_speech(seed):
    x = audiogen.synth_speech(6.0, sr=16000, seed=seed)
    net = sum(s.end - s.start for s in speech_segments(x))
    assert net > 4.0  # ~5.4 s of voiced syllables in 6 s


@pytest.mark.parametrize("seed", [1, 3, 4])
def test_8k_origin_upsampled_is_speech(seed):
    x8 = audiogen.synth_speech(6.0, sr=8000, seed=seed)
    x = audiogen.resample(x8, 8000, 16000)
    assert sum(s.end - s.start for s in speech_segments(x)) > 4.0
    assert sum(s.end - s.start for s in speech_segments(x8, 8000)) > 4.0


def test_segments_are_ordered_and_in_range(speech_16k):
    segs = speech_segments(speech_16k)
    assert all(isinstance(s, SpeechSegment) for s in segs)
    assert all(0 <= s.start < s.end <= len(speech_16k) / 16000 for s in segs)
    assert all(a.end <= b.start for a, b in zip(segs, segs[1:], strict=False))


@pytest.mark.parametrize(
    "name,signal",
    [
        ("ringback_440_480", lambda: audiogen.tone((440, 480), seconds=12.0)),
        ("dial_350_440", lambda: audiogen.tone((350, 440), seconds=5.0, on=5.0, off=0)),
        ("beep_1k", lambda: audiogen.tone((1000,), seconds=5.0, on=0.5, off=0.5)),
        ("dtmf", lambda: audiogen.dtmf("0123456789*#")),
        ("white_noise", lambda: (np.random.default_rng(0).standard_normal(16000 * 5) * 0.05).astype(np.float32)),
    ],
)
def test_tones_are_not_speech(name, signal):
    assert sum(s.end - s.start for s in speech_segments(signal())) < 0.3


def test_prepare_speech_returns_speech_with_context(speech_wav):
    ch = load_recording(speech_wav).channels[0]
    speech, segs = prepare_speech(ch, str(speech_wav))
    assert speech.dtype == np.float32
    core = sum(round(s.end * 16000) - round(s.start * 16000) for s in segs)
    assert core <= len(speech) <= core + len(segs) * round(2 * EMBED_PAD_S * 16000) + len(segs)
    assert len(speech) <= len(ch.samples)
    np.testing.assert_array_equal(speech, embedding_audio(ch.samples, segs, 16000))


def test_embedding_audio_pads_merges_and_stops_at_other_voices():
    x = np.arange(10 * 16000, dtype=np.float32)
    seg = SpeechSegment
    # context on both sides, clipped to the recording
    out = embedding_audio(x, [seg(0.1, 1.0), seg(5.0, 6.0)], 16000, pad=0.2)
    assert len(out) == round((1.2 - 0.0) * 16000) + round((6.2 - 4.8) * 16000)
    assert out[0] == 0 and out[-1] == x[round(6.2 * 16000) - 1]
    # segments whose context overlaps are merged, nothing is repeated
    out = embedding_audio(x, [seg(1.0, 2.0), seg(2.3, 3.0)], 16000, pad=0.2)
    assert len(out) == round((3.2 - 0.8) * 16000) and np.all(np.diff(out) == 1)
    # context never reaches into another voice's speech
    out = embedding_audio(x, [seg(1.0, 2.0)], 16000, pad=0.2, avoid=[seg(2.1, 3.0), seg(0.0, 0.95)])
    assert out[0] == x[round(0.95 * 16000)] and out[-1] == x[round(2.1 * 16000) - 1]
    assert len(embedding_audio(x, [], 16000)) == 0


def test_measure_quality(speech_wav):
    rec = load_recording(speech_wav)
    ch = rec.channels[0]
    _, segs = prepare_speech(ch)
    q = measure_quality(ch, segs, rec.codec, rec.source_rate)
    assert set(q) == {"net_speech_s", "snr_db", "clipping_ratio", "bandwidth_hz", "codec", "source_rate"}
    assert q["codec"] == "pcm_s16le" and q["source_rate"] == 16000
    assert abs(q["net_speech_s"] - sum(s.end - s.start for s in segs)) < 1e-3
    assert q["snr_db"] > 30  # background noise is -50 dB
    assert q["clipping_ratio"] == 0.0
    assert 500 < q["bandwidth_hz"] <= 8000


def test_measure_quality_noise_clipping_bandwidth():
    sr = 16000
    x = audiogen.synth_speech(6.0, sr=sr, seed=1)
    rng = np.random.default_rng(5)
    noisy = (x + 0.03 * rng.standard_normal(len(x))).astype(np.float32)
    segs = speech_segments(x)
    q_clean = measure_quality(Channel(0, x), segs, "pcm_s16le", sr)
    q_noisy = measure_quality(Channel(0, noisy), segs, "pcm_s16le", sr)
    assert q_noisy["snr_db"] < q_clean["snr_db"] - 15
    assert 0 < q_noisy["snr_db"] < 25
    clipped = np.clip(x * 8, -1, 1).astype(np.float32)
    assert measure_quality(Channel(0, clipped), segs, "x", sr)["clipping_ratio"] > 0.01
    tel = audiogen.resample(audiogen.resample(x, sr, 8000), 8000, sr)
    assert measure_quality(Channel(0, tel), segs, "x", 8000)["bandwidth_hz"] <= 4000
    # no non-speech frames at all: still a finite estimate
    q_all = measure_quality(Channel(0, x), [SpeechSegment(0.0, 6.0)], "x", sr)
    assert np.isfinite(q_all["snr_db"])


# --- bad inputs -----------------------------------------------------------------------------------


def _err(path, **kw) -> str:
    with pytest.raises(AudioError) as ei:
        load_recording(path, **kw)
    msg = str(ei.value)
    assert str(path) in msg and "\n" not in msg and " - " in msg  # one line: file, reason, hint
    return msg


def test_missing_file(tmp_path):
    assert "file not found" in _err(tmp_path / "nope.wav")


def test_directory(tmp_path):
    assert "folder" in _err(tmp_path)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    assert "empty (0 bytes)" in _err(p)


def test_truncated_wav(tmp_path, speech_wav):
    data = speech_wav.read_bytes()
    half = tmp_path / "half.wav"
    half.write_bytes(data[: len(data) // 2])
    msg = _err(half)
    assert "truncated" in msg and "copy the original" in msg
    head = tmp_path / "head.wav"
    head.write_bytes(data[:30])  # cut inside the header
    _err(head)


def test_truncated_flac(tmp_path, speech_files):
    data = speech_files("flac", seconds=4.0).read_bytes()
    p = tmp_path / "cut.flac"
    p.write_bytes(data[: len(data) // 2])
    assert "truncated" in _err(p)


def test_random_bytes_wav(tmp_path):
    p = tmp_path / "noise.wav"
    p.write_bytes(np.random.default_rng(0).bytes(20000))
    assert "not a readable audio file" in _err(p)


def test_text_renamed_mp3(tmp_path):
    p = tmp_path / "notes.mp3"
    p.write_text("This is not audio.\n" * 200)
    msg = _err(p)
    assert "not a readable audio file" in msg or "no audio could be decoded" in msg


def test_digital_silence(tmp_path):
    p = audiogen.write_audio(tmp_path / "silence.wav", np.zeros(16000 * 3, dtype=np.float32), 16000, "wav_pcm16")
    assert "digital silence" in _err(p)


def test_too_short_speech(tmp_path):
    x = np.zeros(16000 * 3, dtype=np.float32)
    x[16000 : 16000 + 8000] = audiogen.synth_speech(0.5, sr=16000, seed=1)[:8000]  # one short burst
    p = audiogen.write_audio(tmp_path / "short.wav", x, 16000, "wav_pcm16")
    ch = load_recording(p).channels[0]
    with pytest.raises(AudioError) as ei:
        prepare_speech(ch, str(p))
    msg = str(ei.value)
    assert str(p) in msg and "need at least 1.0 s" in msg and "--min-speech" in msg
    assert "only" in msg or "no speech" in msg
    # a lower threshold accepts it when there is some speech
    if "only" in msg:
        prepare_speech(ch, str(p), min_speech=0.1)


def test_tone_only_file(tmp_path):
    p = audiogen.write_audio(tmp_path / "ring.wav", audiogen.tone((440, 480), seconds=12.0, sr=8000), 8000, "wav_mulaw")
    rec = load_recording(p)
    with pytest.raises(AudioError, match=r"no speech found \(need at least 1\.0 s"):
        prepare_speech(rec.channels[0], str(p))


def test_file_over_size_limit(monkeypatch, speech_wav):
    monkeypatch.setattr(audio, "MAX_FILE_BYTES", 1000)
    msg = _err(speech_wav)
    assert "too big" in msg and "shorter pieces" in msg


@pytest.mark.parametrize("fmt", ["wav_pcm16", "mp3", "amr_nb"])  # WAV: refused from the header; others: while decoding
def test_over_duration_limit(monkeypatch, speech_files, fmt):
    path = speech_files(fmt, seconds=4.0)
    monkeypatch.setattr(audio, "MAX_DURATION_SECONDS", 2)
    msg = _err(path)
    assert "too long" in msg and "shorter pieces" in msg


def test_bad_channels_argument(speech_wav):
    with pytest.raises(ValueError):
        load_recording(speech_wav, channels="left")


# --- real speech (skipped without ../shared/data) ---------------------------------------------------


@pytest.mark.shared
def test_real_speech_files():
    root = audiogen.shared_data_dir()
    if root is None or not (root / "speechocean762" / "manifest.csv").exists():
        pytest.skip("shared data not present")
    for corpus in ("speechocean762", "hyke_ivr_8k"):
        man = root / corpus / "manifest.csv"
        if not man.exists():
            continue
        rows = list(csv.DictReader(open(man)))[:3]
        for r in rows:
            rec = load_recording(root / corpus / r["path"])
            assert rec.source_rate == int(r["sample_rate"])
            assert abs(rec.duration - float(r["duration_s"])) < 0.01
            speech, segs = prepare_speech(rec.channels[0], rec.path, min_speech=0.5)
            assert 0.3 * rec.duration < sum(s.end - s.start for s in segs) <= rec.duration


# --- truncated files with a stated length, damaged samples ------------------------------------------


def _cut(src, dst, share=0.5):
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * share)])
    return dst


def test_truncated_mp3_is_refused(tmp_path, speech_files):
    """LAME writes a Xing/Info header with the frame count: half an MP3 is not a shorter recording."""
    full = speech_files("mp3", seconds=10.0)
    assert abs(load_recording(full).duration - 10.0) < 0.1  # the whole file passes
    msg = _err(_cut(full, tmp_path / "cut.mp3"))
    assert "MP3 file is truncated" in msg and "header declares 10.0 s" in msg and "copy the original" in msg


def test_mp3_without_length_header_is_not_judged(tmp_path):
    """Without a Xing/Info header FFmpeg only guesses the length from the bit rate: no false alarm."""
    x = audiogen.synth_speech(6.0, seed=2)
    p = audiogen.write_with(tmp_path / "noxing.mp3", x, 16000, "mp3", "libmp3lame", "fltp", {"write_xing": "0"})
    assert not audio._mp3_states_length(str(p))
    assert abs(load_recording(p).duration - 6.0) < 0.1
    assert audio._mp3_states_length(str(audiogen.write_audio(tmp_path / "xing.mp3", x, 16000, "mp3")))


def test_truncated_m4a_is_refused(tmp_path):
    x = audiogen.synth_speech(10.0, seed=2)
    full = audiogen.write_with(tmp_path / "call.m4a", x, 16000, "ipod", "aac", "fltp", {"movflags": "+faststart"})
    assert abs(load_recording(full).duration - 10.0) < 0.2
    msg = _err(_cut(full, tmp_path / "cut.m4a"))
    assert "M4A/MP4 file is truncated" in msg and "header declares 10.0 s" in msg


def test_truncated_aiff_is_refused(tmp_path):
    x = audiogen.synth_speech(10.0, seed=2)
    full = audiogen.write_with(tmp_path / "call.aiff", x, 16000, "aiff", "pcm_s16be")
    assert abs(load_recording(full).duration - 10.0) < 0.01
    assert "AIFF file is truncated" in _err(_cut(full, tmp_path / "cut.aiff"))


def test_truncated_flac_says_what_to_do(tmp_path, speech_files):
    msg = _err(_cut(speech_files("flac", seconds=10.0), tmp_path / "cut.flac"))
    assert "FLAC file is truncated" in msg and "copy the original file again" in msg


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("sr", [16000, 44100])  # 44.1 kHz: through the resampler
def test_nan_or_inf_samples_are_named(tmp_path, bad, sr):
    x = audiogen.synth_speech(4.0, sr=sr, seed=1)
    x[sr * 2 : sr * 2 + 50] = bad
    msg = _err(audiogen.write_float_wav(tmp_path / "bad.wav", x, sr))
    assert "the audio contains invalid samples (NaN/Inf)" in msg and "no speech" not in msg
    ok = audiogen.write_float_wav(tmp_path / "good.wav", audiogen.synth_speech(4.0, sr=sr, seed=1), sr)
    assert load_recording(ok).channels[0].samples.dtype == np.float32  # float WAV itself is fine


# --- long recordings: block-wise VAD and quality give the whole-signal results -------------------


@pytest.mark.parametrize("sr,new_sr", [(16000, 8000), (8000, 16000), (44100, 16000)])
def test_resampled_slice_is_the_slice_of_the_whole(sr, new_sr):
    x = np.random.default_rng(0).standard_normal(sr * 3 + 17).astype(np.float32)
    whole = audio._resample(x, sr, new_sr)
    for lo, hi in [(0, 100), (0, len(whole)), (7, 5000), (len(whole) - 300, len(whole)), (1024, 4096)]:
        np.testing.assert_array_equal(audio._resampled_slice(x, sr, new_sr, lo, hi), whole[lo:hi])


@pytest.mark.parametrize("band_limited", [False, True])
def test_block_vad_matches_whole_signal_vad(monkeypatch, band_limited):
    """Scored in 1 s blocks, the segments are exactly silero's own on the whole signal."""
    import torch
    from silero_vad import get_speech_timestamps

    x = audiogen.synth_speech(12.0, seed=3)
    if band_limited:
        x = audiogen.resample(audiogen.resample(x, 16000, 8000), 8000, 16000)
    default = speech_segments(x)
    monkeypatch.setattr(audio, "VAD_BLOCK_S", 1)
    seen = []
    with audio.reporting(lambda stage, done, total: seen.append((stage, done, total))):
        blocked = speech_segments(x)
    assert blocked == default and len(default) >= 3
    vad_sr = 8000 if band_limited else 16000
    xv = audio._resample(x, 16000, vad_sr)
    ref = get_speech_timestamps(torch.from_numpy(xv), audio._vad_model(), threshold=audio.VAD_THRESHOLD, sampling_rate=vad_sr,
                                min_speech_duration_ms=audio.VAD_MIN_SPEECH_MS, min_silence_duration_ms=audio.VAD_MIN_SILENCE_MS,
                                speech_pad_ms=audio.VAD_PAD_MS)
    assert [(round(t["start"] / vad_sr, 4), round(t["end"] / vad_sr, 4)) for t in ref] == [(s.start, s.end) for s in default]
    # progress: one report per block, rising to the whole length
    assert len(seen) >= 10 and {s for s, _, _ in seen} == {"speech"}
    assert [d for _, d, _ in seen] == sorted(d for _, d, _ in seen) and seen[-1][1] == pytest.approx(seen[-1][2])


def test_decode_reports_progress(speech_wav):
    seen = []
    load_recording(speech_wav, progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert seen[-1] == ("decode", pytest.approx(4.0), pytest.approx(4.0))


def test_block_quality_matches(monkeypatch):
    x = audiogen.synth_speech(12.0, seed=2)
    segs = speech_segments(x)
    whole = measure_quality(Channel(0, x), segs, "x", 16000)
    monkeypatch.setattr(audio, "_QUALITY_BLOCK_FRAMES", 7)
    assert measure_quality(Channel(0, x), segs, "x", 16000) == whole  # SNR, clipping: exactly
    monkeypatch.setattr(audio, "_QUALITY_PIECE_S", 2.0)  # bandwidth: PSDs of pieces averaged
    assert measure_quality(Channel(0, x), segs, "x", 16000)["bandwidth_hz"] == pytest.approx(whole["bandwidth_hz"], rel=0.1)


def test_spread_segments_caps_the_embedded_speech():
    segs = [SpeechSegment(10.0 * i, 10.0 * i + 8.0) for i in range(100)]  # 800 s of speech over 1000 s
    assert audio.spread_segments(segs[:12]) == segs[:12]  # 96 s, under the cap: all of it
    kept = audio.spread_segments(segs, max_s=200.0)
    assert 180.0 <= sum(s.duration for s in kept) <= 220.0
    assert kept[0].start < 100 and kept[-1].start > 900  # from the whole call, not its start
    assert all(k in segs for k in kept)


def test_prepare_speech_embeds_at_most_the_cap(monkeypatch, speech_wav):
    ch = load_recording(speech_wav).channels[0]
    full, segs = prepare_speech(ch, str(speech_wav))
    monkeypatch.setattr(audio, "MAX_EMBED_SPEECH_S", 1.0)
    capped, segs2 = prepare_speech(ch, str(speech_wav))
    assert segs2 == segs and len(capped) < len(full)  # the segments (net speech) are all reported


def test_long_audio_bar_shows_stages_on_a_terminal(monkeypatch):
    import io

    from voiceprint import progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(progress, "MIN_SHOWN_S", 1.0)
    monkeypatch.setattr(audio, "VAD_BLOCK_S", 1)
    out = Tty()
    with progress.long_audio_bar(out):
        speech_segments(audiogen.synth_speech(6.0, seed=1))
    assert "finding speech" in out.getvalue()
    quiet = io.StringIO()  # not a terminal (a log file, a pipe): nothing
    with progress.long_audio_bar(quiet):
        speech_segments(audiogen.synth_speech(6.0, seed=1))
    assert quiet.getvalue() == ""


def test_vad_lstm_as_one_sequence_matches_the_cell_stepped_window_by_window():
    """_window_probs runs silero's LSTM cell as one nn.LSTM sequence: the probabilities and the state
    carried to the next block are those of stepping the cell one window at a time."""
    import torch

    net = audio._vad_model()._model
    x = torch.from_numpy(audiogen.synth_speech(3.0, seed=5))
    ctx = int(net.context_size_samples)
    frames = x[: len(x) // 512 * 512].reshape(-1, 512)
    inputs = torch.cat([torch.cat([torch.zeros(1, ctx), frames[:-1, -ctx:]]), frames], 1)
    state = (torch.full((1, 128), 0.1), torch.full((1, 128), -0.1))
    with torch.inference_mode():
        probs, (h, c) = audio._window_probs(net, inputs, state)
        feats = net.encoder(net.run_extractors(inputs)).squeeze(-1)
        rh, rc = state
        ref = []
        for i in range(len(feats)):
            rh, rc = net.decoder.rnn(feats[i : i + 1], (rh, rc))
            ref.append(float(net.decoder.decoder(rh.unsqueeze(-1).float()).squeeze(1).mean(1)))
    assert len(probs) == len(ref) > 80
    np.testing.assert_allclose(probs, ref, atol=1e-6)
    np.testing.assert_allclose(h.numpy(), rh.numpy(), atol=1e-6)
    np.testing.assert_allclose(c.numpy(), rc.numpy(), rtol=1e-5, atol=1e-6)  # the cell state grows past 1: float32 rounding


@pytest.mark.parametrize("n,nperseg", [(64000, 1024), (1024, 1024), (3000, 1024), (48000, 4000), (5001, 4000), (777, 777), (700_000, 1024)])
def test_welch_is_scipys(n, nperseg):
    from scipy.signal import welch

    x = (np.random.default_rng(n).standard_normal(n) * 0.1).astype(np.float32)
    f, p = welch(x, fs=16000, nperseg=nperseg)
    mine_f, mine_p = audio._welch(x, 16000, nperseg)
    np.testing.assert_allclose(mine_f, f)
    np.testing.assert_allclose(mine_p, p, rtol=1e-4, atol=1e-6 * float(p.max()))


@pytest.mark.parametrize("n_channels", [3, 8, 9])
def test_many_channel_files_decode_in_this_process(tmp_path, n_channels):
    """An 8-channel FLAC crashed the process (PyAV lists one plane too many for planar frames), so one
    upload took the workbench down; every channel now decodes, in order."""
    import soundfile as sf

    rng = np.random.default_rng(n_channels)
    data = (0.05 * rng.normal(size=(16000, n_channels))).astype(np.float32)
    data[:, -1] *= 4  # tell the last channel apart
    path = tmp_path / f"c{n_channels}.flac" if n_channels <= 8 else tmp_path / f"c{n_channels}.wav"
    sf.write(path, data, 16000)
    rec = load_recording(path)
    assert len(rec.channels) == n_channels
    for c, channel in enumerate(rec.channels):
        np.testing.assert_allclose(channel.samples, data[:, c], atol=1e-4)


def test_dual_mono_is_read_as_one_channel(tmp_path, speech_16k):
    """One sound written to both channels (at another level, through a lossy joint-stereo coder) is one
    channel; a two-party call with line echo in each channel is two."""
    from voiceprint.audio import is_dual_mono

    dual = audiogen.write_audio(tmp_path / "dual.mp3", np.stack([speech_16k, 0.5 * speech_16k]), 16000, "mp3")
    rec = load_recording(dual)
    assert rec.dual_mono and rec.n_channels == 2 and [c.index for c in rec.channels] == [0]
    assert [c.index for c in load_recording(dual, channels=1).channels] == [1]  # a channel asked for is given
    assert not load_recording(dual, channels="mix").dual_mono
    other = audiogen.synth_speech(len(speech_16k) / 16000, sr=16000, f0=210, seed=9)[:len(speech_16k)]
    echo = 0.3 * np.roll(speech_16k, 800)
    assert not is_dual_mono(np.stack([speech_16k + 0.3 * np.roll(other, 800), other + echo]))
    assert not is_dual_mono(np.stack([speech_16k, np.zeros_like(speech_16k)]))
    assert not is_dual_mono(speech_16k[None, :])


def _shaped_noise(levels_db: dict[tuple[int, int], float], seconds: float = 4.0, rate: int = 16000) -> np.ndarray:
    """White noise with each band (Hz) at its level (dB), the rest of the spectrum empty."""
    spec = np.fft.rfft(np.random.default_rng(7).standard_normal(int(seconds * rate)))
    f = np.fft.rfftfreq(int(seconds * rate), 1 / rate)
    gain = np.zeros_like(f)
    for (a, b), db in levels_db.items():
        gain[(f >= a) & (f < b)] = 10 ** (db / 20)
    return (0.05 * np.fft.irfft(spec * gain) / np.std(np.fft.irfft(spec * gain))).astype(np.float32)


def test_a_call_resampled_with_leaking_images_above_4_khz_is_still_telephone_band():
    """FFmpeg's default resampler leaves images of the 3-4 kHz band 20-35 dB down at 4.6-5.5 kHz: 17 % of real calls
    re-saved at 16 kHz through it read as wideband. A call is also telephone-band when the level is 28 dB down there
    and 26 dB down at 5.5-7.5 kHz; wideband speech keeps its fricatives at 5.5-7.5 kHz."""
    leaky_call = _shaped_noise({(300, 3400): 0, (4600, 5500): -31, (5500, 7500): -45})
    dull_speech = _shaped_noise({(300, 3400): 0, (3400, 4600): -15, (4600, 5500): -31, (5500, 7500): -22})
    assert audio.telephone_band(leaky_call, 16000) is True
    assert audio.telephone_band(dull_speech, 16000) is False
    assert audio.telephone_band(_shaped_noise({(300, 3400): 0, (4600, 5500): -37, (5500, 7500): -20}), 16000) is True


def test_telephone_sound_saved_at_a_wideband_rate_is_read_as_narrowband(tmp_path):
    """A call saved as 16 or 44.1 kHz WAV was compared through the wideband calibration (a stranger read "moderate support
    for same speaker"): the channel is now told by the sound above 4 kHz, not by the file's rate."""
    from scipy.signal import resample_poly

    from voiceprint.telephone import to_phone_band

    rng = np.random.default_rng(3)
    wide = (0.1 * rng.standard_normal(16000 * 4)).astype(np.float32)  # energy at every frequency up to 8 kHz
    call = resample_poly(to_phone_band(wide, 16000), 2, 1).astype(np.float32)  # 300-3400 Hz, saved back at 16 kHz
    for name, x, rate, band_limited in (("wide.wav", wide, 16000, False), ("call16.wav", call, 16000, True),
                                        ("call44.wav", resample_poly(call, 441, 160).astype(np.float32), 44100, True),
                                        ("call8.wav", to_phone_band(wide, 16000), 8000, False)):
        audiogen.write_float_wav(tmp_path / name, x, rate)
        rec = audio.load_recording(tmp_path / name)
        assert rec.band_limited is band_limited, name
        assert rec.domain == ("wideband" if name == "wide.wav" else "narrowband"), name
        assert rec.source_rate == rate  # the file's own rate is still what it is
    assert audio.telephone_band(wide, 16000) is False and audio.telephone_band(call, 16000) is True
