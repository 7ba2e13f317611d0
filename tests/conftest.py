"""Shared pytest fixtures.  Audio generators live in tests/audiogen.py (importable as ``audiogen``
because pytest puts tests/ on sys.path); the fixtures below wrap them for convenience."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import audiogen  # noqa: E402


@pytest.fixture(scope="session")
def speech_16k():
    """4 s of synthetic speech at 16 kHz (float32 numpy array)."""
    return audiogen.synth_speech(4.0, sr=16000, seed=1)


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory) -> Path:
    """A 4 s 16 kHz PCM16 mono WAV of synthetic speech."""
    return audiogen.speech_file(tmp_path_factory.mktemp("audio") / "speech.wav", "wav_pcm16", seconds=4.0, seed=1)


@pytest.fixture(scope="session")
def speech_files(tmp_path_factory):
    """Factory: ``speech_files(fmt, seconds=4.0, sr=16000, seed=1)`` -> Path of a synthetic speech file
    written with a real encoder (fmt is a key of audiogen.FORMATS); results are cached per session."""
    d = tmp_path_factory.mktemp("audio_formats")
    cache: dict = {}

    def make(fmt: str = "wav_pcm16", seconds: float = 4.0, sr: int = 16000, seed: int = 1) -> Path:
        key = (fmt, seconds, sr, seed)
        if key not in cache:
            ext = audiogen.FORMATS[fmt][4]
            cache[key] = audiogen.speech_file(d / f"{fmt}_{sr}_{seed}_{seconds:g}{ext}", fmt, seconds=seconds, sr=sr, seed=seed)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def stereo_wav(tmp_path_factory) -> Path:
    """A 6 s 16 kHz stereo WAV: different synthetic voices on left and right, talking in turns."""
    return audiogen.write_audio(tmp_path_factory.mktemp("audio") / "stereo.wav", audiogen.stereo_call(6.0), 16000, "wav_pcm16")


@pytest.fixture
def model_copy(tmp_path, monkeypatch):
    """A copy of the default model's folder (model.json and back end) under a private VOICEPRINT_MODELS."""
    import shutil

    from voiceprint import scoring
    from voiceprint.embedding import DEFAULT_MODEL, models_dir

    home = tmp_path / "models" / DEFAULT_MODEL
    shutil.copytree(models_dir() / DEFAULT_MODEL, home)
    monkeypatch.setenv("VOICEPRINT_MODELS", str(tmp_path / "models"))
    scoring._LOADED.clear()
    yield home
    scoring._LOADED.clear()
