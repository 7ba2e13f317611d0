"""Synthetic speech-like audio, for the demo and the tests (there is no TTS engine offline).

:func:`synth_speech` makes a voiced signal - a glottal pulse train with a moving f0, shaped by
formant resonators moving from vowel to vowel, syllable-rate amplitude modulation, fricative
bursts and pauses - that silero-vad accepts as speech. Different ``f0``/``seed`` give different
"voices" (a demo of the pipeline, not of accuracy: accuracy is measured on real speech).
:func:`write_audio` encodes samples with PyAV's real encoders (WAV PCM/G.711, FLAC, MP3, AAC,
Opus, Vorbis, AMR-NB). Everything is deterministic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# (F1, F2, F3) in Hz for a few vowels
_VOWELS = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410), (660, 1720, 2410)]


def _resonator(x: np.ndarray, f: np.ndarray, bw: float, sr: int) -> np.ndarray:
    """Two-pole resonator with a time-varying centre frequency (per-sample array ``f``)."""
    from scipy.signal import lfilter

    # vary per block of 80 samples: piecewise-constant coefficients keep it cheap
    out = np.empty_like(x)
    r = np.exp(-np.pi * bw / sr)
    blk = 80
    zi = np.zeros(2)
    for i in range(0, len(x), blk):
        fc = float(f[i])
        a = [1.0, -2 * r * np.cos(2 * np.pi * fc / sr), r * r]
        b = [1 - r]
        out[i : i + blk], zi = lfilter(b, a, x[i : i + blk], zi=zi)
    return out


def synth_speech(seconds: float = 4.0, sr: int = 16000, f0: float = 120.0, seed: int = 0, pause_every: float = 1.6,
                 level: float = 0.3) -> np.ndarray:
    """Deterministic speech-like float32 signal at ``sr`` with peak ``level``.

    Words of 2-4 syllables (~4-5 syllables/s) with pitch declination and jitter, formant transitions
    between vowels, short fricative bursts, and ~0.3 s pauses about every ``pause_every`` seconds.
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    env = np.zeros(n)
    f0_track = np.full(n, f0, dtype=float)
    formants = np.zeros((3, n))
    fric = np.zeros(n)
    t = 0.15
    since_pause = 0.0
    v_prev = _VOWELS[rng.integers(len(_VOWELS))]
    while t < seconds - 0.2:
        dur = rng.uniform(0.16, 0.28)  # one syllable
        a, b = int(t * sr), min(n, int((t + dur) * sr))
        if b <= a:
            break
        L = b - a
        ph = np.linspace(0, 1, L, endpoint=False)
        env[a:b] = np.sin(np.pi * ph) ** 0.7 * rng.uniform(0.6, 1.0)
        # pitch: rise-fall within the syllable + declination over the phrase
        f0_track[a:b] = f0 * (1 + 0.12 * np.sin(np.pi * ph) * rng.uniform(-1, 1) - 0.08 * since_pause / pause_every)
        v = _VOWELS[rng.integers(len(_VOWELS))]
        for k in range(3):
            formants[k, a:b] = v_prev[k] + (v[k] - v_prev[k]) * np.minimum(1.0, ph * 3)
        v_prev = v
        if rng.random() < 0.45:  # fricative onset
            fl = int(rng.uniform(0.04, 0.08) * sr)
            s0 = max(0, a - fl // 2)
            fric[s0 : s0 + fl] = np.hanning(len(fric[s0 : s0 + fl])) * rng.uniform(0.15, 0.35)
        gap = rng.uniform(0.02, 0.07)
        t += dur + gap
        since_pause += dur + gap
        if since_pause > pause_every:
            t += rng.uniform(0.25, 0.45)
            since_pause = 0.0
    # fill formant tracks in gaps (hold last value) so filters stay smooth
    for k in range(3):
        tr = formants[k]
        idx = np.where(tr > 0, np.arange(n), 0)
        np.maximum.accumulate(idx, out=idx)
        tr[:] = tr[idx]
        tr[tr == 0] = _VOWELS[0][k]
    # glottal pulse train with jitter
    f0_track *= 1 + 0.01 * rng.standard_normal(n).cumsum() / np.sqrt(np.arange(1, n + 1))
    phase = np.cumsum(f0_track / sr)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    # glottal shaping: -12 dB/oct roll-off via two leaky integrators
    from scipy.signal import lfilter

    g = lfilter([1.0], [1.0, -0.97], pulses)
    g = lfilter([1.0], [1.0, -0.9], g)
    g -= lfilter([1.0], [1.0, -0.995], g) * 0.005  # remove DC drift
    tract = sum(_resonator(g, formants[k], bw, sr) * w for k, (bw, w) in enumerate([(80, 1.0), (100, 0.6), (140, 0.3)]))
    voiced = np.diff(tract, prepend=0.0)  # lip radiation (+6 dB/oct)
    voiced /= np.max(np.abs(voiced)) + 1e-12
    noise = rng.standard_normal(n)
    noise = np.diff(noise, prepend=0.0) * 0.5  # high-pass-ish hiss for fricatives
    x = voiced * env + noise * fric + 0.001 * rng.standard_normal(n)  # faint background noise
    x = x / (np.max(np.abs(x)) + 1e-12) * level
    return x.astype(np.float32)


FORMATS = {
    "wav_pcm16": ("wav", "pcm_s16le", "s16", None, ".wav"),
    "wav_mulaw": ("wav", "pcm_mulaw", "s16", 8000, ".wav"),
    "wav_alaw": ("wav", "pcm_alaw", "s16", 8000, ".wav"),
    "flac": ("flac", "flac", "s16", None, ".flac"),
    "mp3": ("mp3", "libmp3lame", "fltp", None, ".mp3"),
    "m4a_aac": ("ipod", "aac", "fltp", None, ".m4a"),
    "ogg_opus": ("ogg", "libopus", "flt", 48000, ".opus"),
    "ogg_vorbis": ("ogg", "vorbis", "fltp", None, ".ogg"),  # FFmpeg's Vorbis encoder: stereo input only
    "amr_nb": ("amr", "libopencore_amrnb", "s16", 8000, ".amr"),
}


def resample(x: np.ndarray, sr: int, new_sr: int) -> np.ndarray:
    """Polyphase resampling along the last axis (float32 out)."""
    if sr == new_sr:
        return x
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(sr, new_sr)
    return resample_poly(x, new_sr // g, sr // g, axis=-1).astype(np.float32)


def write_audio(path, samples: np.ndarray, sr: int, fmt: str = "wav_pcm16", bitrate: int | None = None) -> Path:
    """Encode ``samples`` (float in [-1, 1], shape (n,) or (channels, n)) at ``sr`` with a real encoder.

    ``fmt`` is a key of FORMATS.  Formats with a fixed rate (mu-law/A-law/AMR-NB 8 kHz, Opus 48 kHz) get
    the signal resampled to that rate first.  Returns the path.
    """
    cont, codec, sfmt, fixed_rate, _ = FORMATS[fmt]
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    rate = fixed_rate or sr
    x = np.clip(resample(x, sr, rate), -1.0, 1.0)
    return encode(path, x, rate, cont, codec, sfmt, bitrate)


def encode(path, x: np.ndarray, rate: int, container: str, codec: str, sfmt: str, bitrate: int | None = None,
           mux_options: dict | None = None) -> Path:
    """Encode ``x`` (float in [-1, 1], shape (channels, n), already at ``rate``) with PyAV's ``codec``
    into ``container``; ``mux_options`` go to the muxer (e.g. ``{"movflags": "+faststart"}``)."""
    import av

    path = Path(path)
    nch = x.shape[0]
    layout = {1: "mono", 2: "stereo"}.get(nch, f"{nch}c")
    with av.open(str(path), "w", format=container, options=mux_options or {}) as c:
        opts = {"strict": "experimental"} if codec == "vorbis" else {}  # FFmpeg's native Vorbis encoder
        st = c.add_stream(codec, rate=rate, layout=layout, options=opts)
        assert isinstance(st, av.audio.stream.AudioStream)
        if bitrate:
            st.bit_rate = bitrate
        elif codec == "libopencore_amrnb":
            st.bit_rate = 12200
        if sfmt == "s16":
            data = (x * 32767).round().astype(np.int16)
            data = data.T.reshape(1, -1).copy()  # packed
        elif sfmt == "flt":
            data = x.T.reshape(1, -1).copy()
        else:
            data = x
        fr = av.AudioFrame.from_ndarray(data, format=sfmt, layout=layout)
        fr.sample_rate = rate
        fr.pts = 0
        for p in st.encode(fr):
            c.mux(p)
        for p in st.encode(None):
            c.mux(p)
    return path


def speech_file(path, fmt: str = "wav_pcm16", seconds: float = 4.0, sr: int = 16000, seed: int = 0, f0: float = 120.0) -> Path:
    """Write :func:`synth_speech` in the given format."""
    return write_audio(path, synth_speech(seconds, sr=sr, seed=seed, f0=f0), sr, fmt)


def stereo_call(seconds: float = 6.0, sr: int = 16000) -> np.ndarray:
    """(2, n) array: a low-pitched voice on the left, a different high-pitched voice on the right,
    talking in turns (each channel silent while the other speaks)."""
    a = synth_speech(seconds, sr=sr, f0=110, seed=1)
    b = synth_speech(seconds, sr=sr, f0=210, seed=2)
    t = np.arange(len(a)) / sr
    turn = (t // 1.5) % 2 == 0
    return np.stack([a * turn, b * ~turn]).astype(np.float32)
