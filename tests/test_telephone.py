"""Telephone-channel simulation with PyAV's real narrow-band encoders."""

import audiogen
import numpy as np
import pytest

from voiceprint import telephone
from voiceprint.audio import load_recording
from voiceprint.errors import AudioError
from voiceprint.scoring import domain_of


@pytest.mark.parametrize("variant,codec", [("g711u", "pcm_mulaw"), ("g711a", "pcm_alaw"), ("amrnb", "amr_nb")])
def test_simulated_call_decodes_as_8khz_telephone_audio(tmp_path, variant, codec):
    if not telephone.available(variant):
        pytest.skip(f"this PyAV build has no encoder for {variant}")
    src = audiogen.speech_file(tmp_path / "clean.wav", seconds=3.0, seed=4)
    with telephone.simulated(src, variant) as phone:
        rec = load_recording(phone)
    assert rec.codec == codec and rec.source_rate == 8000 and abs(rec.duration - 3.0) < 0.1
    assert domain_of(rec.source_rate, rec.codec) == "narrowband"
    x = rec.channels[0].samples  # back at 16 kHz: nothing left above the telephone band
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / 16000)
    assert spectrum[freqs > 4000].sum() < 1e-3 * spectrum.sum()
    assert spectrum[(freqs > 300) & (freqs < 3400)].sum() > 0.5 * spectrum.sum()


def test_phone_band_removes_low_and_high_frequencies():
    t = np.arange(16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 100 * t) + 0.3 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 6000 * t))
    y = telephone.to_phone_band(x.astype(np.float32), 16000)
    spec = np.abs(np.fft.rfft(y)) / len(y)
    f = np.fft.rfftfreq(len(y), 1 / 8000)
    at = lambda hz: spec[np.argmin(np.abs(f - hz))]  # noqa: E731
    assert at(1000) > 10 * at(100)


def test_unknown_channel_is_refused(tmp_path):
    with pytest.raises(AudioError, match="unknown telephone channel"):
        telephone.encode(np.zeros(800, np.float32), "gsm-hr", tmp_path / "x.wav")
