"""From a file to its voices: decode, find the speech, split a call into who speaks when.

Every path that turns a recording into voiceprints (enrolment, query, verify, case linking,
screening, evaluation, the scripts) goes through :func:`read_voices`, so they all hear a
recording the same way: each channel of a stereo call is one voice, and a mono recording is
diarised (:mod:`voiceprint.diarize`) into one voice per speaker found. Quality is measured per
channel (:mod:`voiceprint.quality`), with the net speech of each voice.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import AudioError

if TYPE_CHECKING:
    from .audio import Recording, SpeechSegment

#: File name endings taken as audio when a folder is enrolled or screened.
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".amr", ".awb", ".3gp", ".au", ".mp4", ".wma", ".webm"}


@dataclass
class Voice:
    """One voice of a recording: a channel of a stereo call, or a diarised speaker of a mono one."""

    channel: int
    voice: int
    speech: np.ndarray
    segments: list[SpeechSegment]  # time ranges in the recording
    quality: dict

    @property
    def net_speech(self) -> float:
        return round(sum(s.end - s.start for s in self.segments), 3)

    def time_ranges(self) -> list[list[float]]:
        return [[round(s.start, 2), round(s.end, 2)] for s in self.segments]


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes: the identity of a recording in the library and the caches."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_voices(path: str | os.PathLike, embedder, channel: int | None = None, diarise: bool = True,
                min_speech: float | None = None, measure: bool = True) -> tuple[Recording, list[Voice]]:
    """Decode a recording into (recording, [Voice]), one per voice with enough speech.

    ``channel``: only that 0-based channel (one voice). ``diarise``: split a mono recording into its
    speakers (needs ``embedder``), as well as dual mono and a call with only one channel voiced;
    without it each channel is one voice. ``measure``: fill ``quality`` (the
    quality gates need it; evaluations that only embed skip it). A channel without enough speech
    is left out; when no channel has any, its refusal is raised (:class:`AudioError`).
    """
    from . import audio

    path = os.fspath(path)
    rec = audio.load_recording(path, channels="each" if channel is None else channel)
    kwargs = {} if min_speech is None else {"min_speech": min_speech}
    out: list[Voice] = []
    refusals: list[AudioError] = []
    voiced = []
    for ch in rec.channels:
        try:
            voiced.append((ch, *audio.prepare_speech(ch, path=path, **kwargs)))
        except AudioError as err:
            refusals.append(err)
    # each channel of a call is one voice; a mono recording, dual mono, or a call with one channel
    # silent (a recorder that wrote the whole call to the left) holds every voice in one channel
    by_channel = rec.n_channels > 1 and not rec.dual_mono and (len(voiced) > 1 or channel is not None)
    for ch, speech, segments in voiced:
        quality: dict = {}
        if measure:
            from .quality import frame_snr_db

            quality = dict(audio.measure_quality(ch, segments, rec.codec, rec.source_rate),
                           snr_frames_db=frame_snr_db(ch.samples, ch.sample_rate))
        if by_channel or not diarise:
            out.append(Voice(ch.index, 0, speech, segments, quality))
            continue
        from . import diarize

        for v in diarize.diarize(ch.samples, segments, embedder, domain=rec.domain):
            q = dict(quality, net_speech_s=round(v.net_speech, 3)) if measure else {}
            out.append(Voice(ch.index, v.index, v.speech, v.segments, q))
    if refusals and len(refusals) == len(rec.channels):
        raise refusals[0]
    return rec, out
