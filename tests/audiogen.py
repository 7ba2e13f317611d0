"""Test audio, importable by any test (``from audiogen import ...``; tests/ is on sys.path).

The speech synthesiser and the real-encoder writer live in ``voiceprint.synth`` (the demo uses
them too) and are re-exported here; this module adds tones, DTMF and the real-data locator.

:func:`synth_speech` makes a speech-like voiced signal - a glottal pulse
train with a moving f0, shaped by formant resonators that move from vowel to vowel, with syllable-rate
amplitude modulation, fricative noise bursts and pauses between words.  silero-vad accepts it as speech
(checked in tests/test_audio.py).  All generators are deterministic (seeded).

:func:`write_audio` encodes float samples with PyAV's real encoders into WAV (PCM16, mu-law, A-law),
FLAC, MP3, M4A/AAC, OGG/Opus, OGG/Vorbis and AMR-NB.  AMR-WB has no encoder in PyAV's FFmpeg build; a
real AMR-WB file is committed in tests/data/ (see tests/data/make_amr_wb.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from voiceprint.synth import FORMATS, encode, resample, speech_file, stereo_call, synth_speech, write_audio  # noqa: F401  (re-exported for tests)

DATA_DIR = Path(__file__).resolve().parent / "data"
AMR_WB_FIXTURE = DATA_DIR / "speech_amrwb_16k.amr"


def tone(freqs=(440.0, 480.0), seconds: float = 6.0, sr: int = 16000, on: float = 2.0, off: float = 4.0,
         level: float = 0.3) -> np.ndarray:
    """Sum of sines with an on/off cadence (default: North-American ring-back 440+480 Hz, 2 s on, 4 s off)."""
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * f * t) for f in freqs)
    gate = (t % (on + off)) < on if off > 0 else np.ones_like(t, dtype=bool)
    x = x * gate
    return (x / len(freqs) * level).astype(np.float32)


def dtmf(digits: str = "5551234", sr: int = 16000, on: float = 0.15, off: float = 0.1, level: float = 0.3) -> np.ndarray:
    """A DTMF digit sequence."""
    low = {"1": 697, "2": 697, "3": 697, "4": 770, "5": 770, "6": 770, "7": 852, "8": 852, "9": 852, "*": 941, "0": 941, "#": 941}
    high = {"1": 1209, "2": 1336, "3": 1477, "4": 1209, "5": 1336, "6": 1477, "7": 1209, "8": 1336, "9": 1477, "*": 1209, "0": 1336, "#": 1477}
    parts = [np.zeros(int(0.2 * sr), dtype=np.float32)]
    for d in digits:
        parts.append(tone((low[d], high[d]), seconds=on, sr=sr, on=on, off=0, level=level))
        parts.append(np.zeros(int(off * sr), dtype=np.float32))
    return np.concatenate(parts)


# --------------------------------------------------------------------------------------------------
# Writers (real encoders through PyAV)
# --------------------------------------------------------------------------------------------------

#: name -> (container format, codec, sample format fed to the encoder, forced rate or None, extension)


def shared_data_dir() -> Path | None:
    """The real-speech corpora folder if present (tests using it must skip when this is None)."""
    for cand in (os.environ.get("VOICEPRINT_SHARED_DATA"), "/work/shared/data",
                 Path(__file__).resolve().parents[2] / "shared" / "data"):
        if cand and Path(cand).is_dir():
            return Path(cand)
    return None


# --------------------------------------------------------------------------------------------------
# Files with a stated length (truncation tests) and damaged samples
# --------------------------------------------------------------------------------------------------


def write_with(path, samples: np.ndarray, sr: int, container: str, codec: str, sfmt: str = "s16", options: dict | None = None) -> Path:
    """Mono ``samples`` encoded with PyAV's ``codec`` into ``container``, muxer ``options`` passed through
    (e.g. ``{"movflags": "+faststart"}`` for an M4A whose length header comes first, ``{"write_xing": "0"}``
    for an MP3 without a Xing/Info header)."""
    return encode(path, np.clip(np.asarray(samples, dtype=np.float32), -1, 1)[None, :], sr, container, codec, sfmt,
                  mux_options=options)


def write_float_wav(path, samples: np.ndarray, sr: int) -> Path:
    """A 32-bit IEEE-float WAV (format tag 3) holding ``samples`` exactly, NaN and Inf included."""
    import struct

    data = np.asarray(samples, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, sr, sr * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return Path(path)
