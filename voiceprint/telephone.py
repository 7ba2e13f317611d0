"""Telephone-channel simulation: pass wide-band speech through a real 8 kHz narrow-band codec and back.

Fraud calls reach a centre as 8 kHz telephone audio (G.711 on fixed lines and trunks, AMR-NB on
mobile networks), while the speaker model was trained on 16 kHz web video. To measure - and tune
for - that mismatch on corpora recorded at 16 kHz, :func:`simulate` reproduces the channel:

1. resample to 8 kHz (polyphase anti-alias filter),
2. band-pass 300-3400 Hz (the telephone band),
3. encode with the real codec from PyAV's FFmpeg (``pcm_mulaw`` / ``pcm_alaw`` in WAV; AMR-NB
   12.2 kbit/s through ``libopencore_amrnb`` in an ``.amr`` file), and
4. write the encoded file, which is then decoded by :func:`voiceprint.audio.load_recording` exactly
   as a real call would be (so the source rate reads 8000 and the codec is the codec's).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import AudioError

#: variant name -> (container format, file suffix, PyAV encoder, bit rate)
CODECS = {
    "g711u": ("wav", ".wav", "pcm_mulaw", None),
    "g711a": ("wav", ".wav", "pcm_alaw", None),
    "amrnb": ("amr", ".amr", "libopencore_amrnb", 12200),
}
PHONE_RATE = 8000
BAND_HZ = (300.0, 3400.0)


def available(variant: str) -> bool:
    """True when PyAV's FFmpeg has the encoder ``variant`` needs."""
    import av

    return variant in CODECS and CODECS[variant][2] in av.codecs_available


def to_phone_band(samples: np.ndarray, rate: int) -> np.ndarray:
    """8 kHz, 300-3400 Hz version of float samples at ``rate``."""
    from math import gcd

    from scipy.signal import butter, resample_poly, sosfiltfilt

    x = np.asarray(samples, dtype=np.float64)
    if rate != PHONE_RATE:
        g = gcd(int(rate), PHONE_RATE)
        x = resample_poly(x, PHONE_RATE // g, int(rate) // g)
    sos = butter(4, BAND_HZ, btype="bandpass", fs=PHONE_RATE, output="sos")
    x = sosfiltfilt(sos, x)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def encode(samples_8k: np.ndarray, variant: str, path: str | os.PathLike) -> None:
    """Encode 8 kHz float samples to ``path`` with the codec of ``variant``."""
    import av

    if variant not in CODECS:
        raise AudioError(path, f"unknown telephone channel {variant!r}", f"use one of {', '.join(CODECS)}")
    fmt, _, codec, bit_rate = CODECS[variant]
    if codec not in av.codecs_available:
        raise AudioError(path, f"this PyAV/FFmpeg build has no {codec} encoder", "choose another channel simulation")
    pcm = (np.clip(samples_8k, -1.0, 1.0) * 32767.0).astype(np.int16)
    with av.open(str(path), mode="w", format=fmt) as out:
        stream = out.add_stream(codec, rate=PHONE_RATE, layout="mono")
        if bit_rate:
            stream.bit_rate = bit_rate
        block = 160 * 50  # one second; AMR frames are 160 samples and the encoder re-frames
        for start in range(0, len(pcm), block):
            chunk = pcm[start : start + block]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = PHONE_RATE
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@contextmanager
def simulated(path: str | os.PathLike, variant: str) -> Iterator[str]:
    """A temporary file holding ``path``'s first channel passed through the telephone codec ``variant``.

        with simulated("clean.flac", "amrnb") as phone_path:
            rec = load_recording(phone_path)
    """
    from .audio import load_recording

    rec = load_recording(str(path), channels=0)
    ch = rec.channels[0]
    narrow = to_phone_band(ch.samples, ch.sample_rate)
    suffix = CODECS[variant][1] if variant in CODECS else ".bin"
    fd, tmp = tempfile.mkstemp(prefix="vp_phone_", suffix=suffix)
    os.close(fd)
    try:
        encode(narrow, variant, tmp)
        yield tmp
    finally:
        Path(tmp).unlink(missing_ok=True)
