"""Audio input: decode any call recording to 16 kHz float32 channels, find the speech, rate its quality.

Everything here works offline.  Decoding uses PyAV (its wheels bundle FFmpeg, so no system ffmpeg is
needed); voice activity detection uses the silero-vad model file shipped inside the ``silero-vad``
package.  Heavy modules (av, torch, silero_vad, scipy) are imported inside the functions that need
them, so ``import voiceprint.audio`` stays cheap.

Typical use::

    rec = load_recording("call.amr")                 # one Channel per source channel
    for ch in rec.channels:
        speech, segments = prepare_speech(ch, rec.path)
        quality = measure_quality(ch, segments, rec.codec, rec.source_rate)

Every unusable input raises :class:`voiceprint.errors.AudioError` whose ``str()`` is one line naming
the file, what is wrong and what to do about it.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np

from voiceprint.errors import AudioError

TARGET_RATE = 16000
MIN_SPEECH_SECONDS = 1.0
MAX_FILE_BYTES = 2 * 1024**3  # 2 GiB
MAX_DURATION_SECONDS = 4 * 3600

#: A channel whose peak stays at or below this (about 2 LSB of 16-bit audio, -84 dBFS) is digital silence.
SILENCE_PEAK = 2.0 / 32768.0
#: |x| at or above this share of full scale counts as clipped.
CLIP_LEVEL = 0.999

_HINT_CONVERT = "convert it to WAV or FLAC (e.g. with ffmpeg or Audacity) and try again"


#: ``progress(stage, done, total)``: ``stage`` is "decode" or "speech" (seconds of audio; ``total`` 0 when
#: unknown) or "voices" (diarisation windows embedded, ``diarize``). Called every few seconds of work.
ProgressHook = Callable[[str, float, float], None]
_PROGRESS: ContextVar[ProgressHook | None] = ContextVar("voiceprint_audio_progress", default=None)


@contextmanager
def reporting(hook: ProgressHook | None) -> Iterator[None]:
    """Send the progress of every decode, VAD and diarisation run inside the block to ``hook``.

    Lets a front end (the CLI's progress bar) follow a long recording through library calls that
    do not take a hook themselves::

        with audio.reporting(lambda stage, done, total: ...):
            library.query("two_hour_call.amr")
    """
    token = _PROGRESS.set(hook)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def progress_hook(progress: ProgressHook | None) -> ProgressHook | None:
    """``progress`` when a caller passed one, else the hook of the enclosing :func:`reporting` block."""
    return progress if progress is not None else _PROGRESS.get()


@dataclass
class Channel:
    index: int  # 0-based channel in the source file (-1 for a mix of all channels)
    samples: np.ndarray  # float32 mono in [-1, 1] at sample_rate
    sample_rate: int = TARGET_RATE

    @property
    def duration(self) -> float:
        return len(self.samples) / float(self.sample_rate)


@dataclass
class Recording:
    path: str
    sha256: str
    codec: str
    container: str
    source_rate: int
    n_channels: int
    duration: float
    channels: list[Channel] = field(default_factory=list)
    #: the source's channels carry one sound (dual mono, or one channel a copy of the other at another level):
    #: read as a mono recording, channel 0, and diarised like one
    dual_mono: bool = False
    #: stored at a wideband rate but holding telephone-band sound (a call saved as 16 or 44.1 kHz WAV): nothing above
    #: 4 kHz (:func:`telephone_band`)
    band_limited: bool = False

    @property
    def channel_rate(self) -> int:
        """The rate of the channel the speech came through: 8000 for telephone-band sound, whatever the file's rate."""
        return PHONE_BAND_RATE if self.band_limited and self.source_rate > PHONE_BAND_RATE else self.source_rate

    @property
    def domain(self) -> str:
        """``"narrowband"`` (telephone) or ``"wideband"``: which calibration a comparison of this recording uses."""
        from .scoring import domain_of

        return domain_of(self.channel_rate, self.codec)


@dataclass
class SpeechSegment:
    start: float  # seconds
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


# --------------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------------


def _sha256(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _wav_truncation(path: str, size: int) -> tuple[int, int] | None:
    """For a RIFF/WAVE file, return (declared data bytes, present data bytes) if the data chunk is cut short.

    FFmpeg silently clamps a short WAV to what is present, so an incomplete copy would otherwise pass as a
    shorter recording.  Placeholder sizes written by streaming recorders (0, 0xFFFFFFFF) are ignored.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError:
        return None
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        cid, csize = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        if cid == b"data":
            present = size - (pos + 8)
            if csize in (0, 0xFFFFFFFF, 0x7FFFFFFF) or csize <= present:
                return None
            return csize, max(present, 0)
        pos += 8 + csize + (csize & 1)
    return None


def _open_error(path: str, exc: Exception) -> AudioError:
    return AudioError(
        path,
        f"not a readable audio file (corrupt, truncated or unsupported format: {_short(exc)})",
        _HINT_CONVERT + "; if it is a copy, copy the original again",
    )


def _short(exc: Exception) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # PyAV messages look like "[Errno 1094995529] Invalid data found when processing input: '/x/y.wav'"
    if ": '" in msg:
        msg = msg.split(": '")[0]
    if msg.startswith("[Errno"):
        msg = msg.split("] ", 1)[-1]
    return msg[:160]


def _check_channels_arg(channels) -> None:
    if channels not in ("each", "mix") and not (isinstance(channels, int) and not isinstance(channels, bool)):
        raise ValueError(f"channels must be 'each', 'mix' or a channel number, not {channels!r}")


def _check_file(path: str) -> tuple[int, str]:
    """Cheap checks before touching the decoder; returns (size in bytes, SHA-256)."""
    if not os.path.exists(path):
        raise AudioError(path, "file not found", "check the path and the spelling of the file name")
    if os.path.isdir(path):
        raise AudioError(path, "is a folder, not an audio file", "give the path of one recording")
    try:
        size = os.path.getsize(path)
        sha = _sha256(path)
    except OSError as e:
        raise AudioError(path, f"cannot be read ({e.strerror or e})", "check the file permissions") from e
    if size == 0:
        raise AudioError(path, "file is empty (0 bytes)", "the copy failed or the recording was never saved - copy the original again")
    if size > MAX_FILE_BYTES:
        raise AudioError(
            path,
            f"file is too big ({size / 1024**3:.2f} GiB, limit {MAX_FILE_BYTES / 1024**3:.2f} GiB)",
            "cut it into shorter pieces (e.g. one call per file) and load those",
        )
    trunc = _wav_truncation(path, size)
    if trunc is not None:
        declared, present = trunc
        raise _truncated(path, "WAV", f"header declares {declared} bytes of audio, only {present} present")
    return size, sha


def _truncated(path: str, kind: str, detail: str) -> AudioError:
    return AudioError(path, f"{kind} file is truncated ({detail})",
                      "the copy is incomplete - copy the original file again (or ask the sender for the whole recording)")


def _too_long(path: str) -> AudioError:
    return AudioError(
        path,
        f"recording is too long (more than {MAX_DURATION_SECONDS / 3600:g} h; limit {MAX_DURATION_SECONDS} s)",
        "cut it into shorter pieces (e.g. one call per file) and load those",
    )


def _mp3_states_length(path: str) -> bool:
    """True when an MP3's first frame carries a Xing/Info/VBRI header (LAME and most encoders write one).

    Only then is FFmpeg's duration the encoder's own frame count; without it FFmpeg guesses the length
    from the first frame's bit rate and the file size, which is no evidence of truncation."""
    try:
        with open(path, "rb") as f:
            head = f.read(10)
            skip = 0
            if head[:3] == b"ID3" and len(head) == 10:  # ID3v2 tag: syncsafe size
                skip = 10 + ((head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F))
            f.seek(skip)
            frame = f.read(4096)
    except OSError:
        return False
    return any(tag in frame[:200] for tag in (b"Xing", b"Info", b"VBRI"))


#: Containers whose header states the length exactly (FFmpeg decodes what is present and stops quietly).
_STATED_LENGTH = {"flac": "FLAC", "aiff": "AIFF", "mov,mp4,m4a,3gp,3g2,mj2": "M4A/MP4", "mp3": "MP3"}


@dataclass
class _Source:
    """What the container says about its first audio stream."""

    codec: str
    container: str
    source_rate: int
    n_channels: int
    declared: float | None  # seconds, when the header states the length exactly (see _STATED_LENGTH)


def _inspect(path: str, container, channels) -> _Source:
    if not container.streams.audio:
        raise AudioError(path, f"contains no audio stream (container '{container.format.name}')", _HINT_CONVERT)
    stream = container.streams.audio[0]
    ctx = stream.codec_context
    n_src = int(ctx.channels or 0)
    if isinstance(channels, int) and n_src and not (0 <= channels < n_src):
        raise AudioError(
            path,
            f"has {n_src} channel(s), channel {channels} does not exist",
            f"use a channel number from 0 to {n_src - 1}",
        )
    name = container.format.name
    # WAV and FLAC headers state the length exactly (FFmpeg clamps WAV to the bytes present): refuse at once.
    if name in ("wav", "flac") and container.duration and container.duration / 1e6 > MAX_DURATION_SECONDS + 1:
        raise _too_long(path)
    declared = None
    if name in _STATED_LENGTH and stream.duration and stream.time_base and (name != "mp3" or _mp3_states_length(path)):
        declared = float(stream.duration * stream.time_base)
    return _Source(
        # canonical codec id name ("mp3", "amr_nb"), not the decoder's name ("mp3float", "amrnb")
        codec=getattr(ctx.codec, "canonical_name", None) or ctx.name,
        container=name,
        source_rate=int(ctx.sample_rate or 0),
        n_channels=n_src,
        declared=declared,
    )


class _Decoded:
    """Float32 samples gathered frame by frame into one [channels, n] buffer, grown by doubling.

    Frames arrive packed (interleaved): PyAV 18 lists one plane too many for a planar frame of 8
    channels and reading it crashed the process (a hostile upload took the workbench down); the
    one plane of a packed frame is read for any channel count.

    Preallocated from the container's duration estimate (plus slack) so a long file is not copied
    while growing; refuses NaN/Inf samples and stops as soon as MAX_DURATION_SECONDS is exceeded."""

    def __init__(self, path: str, rate: int, estimate_s: float, progress=None):
        self.path, self.rate, self.progress = path, rate, progress
        self.max_samples = int(MAX_DURATION_SECONDS * rate)
        est = int(estimate_s * rate * 1.02) + rate if estimate_s else 0
        self.cap = min(max(est, 10 * rate), self.max_samples + 2 * rate)
        self.total_s = estimate_s
        self.buf: np.ndarray | None = None
        self.n = 0
        self._reported = 0

    def add(self, frames) -> None:
        for fr in frames:
            m = fr.samples
            n_channels = len(fr.layout.channels)
            if self.buf is None:
                self.buf = np.empty((n_channels, self.cap), dtype=np.float32)
            if n_channels != self.buf.shape[0]:
                raise AudioError(self.path, "channel count changes in the middle of the file", _HINT_CONVERT)
            if self.n + m > self.cap:
                self.cap = max(self.cap * 2, self.n + m)
                nb = np.empty((self.buf.shape[0], self.cap), dtype=np.float32)
                nb[:, : self.n] = self.buf[:, : self.n]
                self.buf = nb
            chunk = np.frombuffer(fr.planes[0], dtype=np.float32, count=m * n_channels).reshape(m, n_channels).T
            if not np.isfinite(chunk).all():  # float WAV/CAF can hold them; the resampler spreads them
                raise AudioError(self.path, f"the audio contains invalid samples (NaN/Inf) at {self.n / self.rate:.1f} s",
                                 "the file is damaged or was written by a faulty program - export the recording again")
            # clip while the chunk is small: resampling can overshoot full scale slightly
            np.clip(chunk, -1.0, 1.0, out=self.buf[:, self.n : self.n + m])
            self.n += m
        if self.n > self.max_samples:  # stop decoding as soon as the limit is passed
            raise _too_long(self.path)
        if self.progress is not None and self.n - self._reported >= 30 * self.rate:
            self._reported = self.n
            self.progress("decode", self.n / self.rate, self.total_s)

    def channels(self) -> np.ndarray:
        """The decoded [channels, n] samples, releasing an unused tail of the preallocation."""
        assert self.buf is not None
        data = self.buf[:, : self.n]
        if self.n < 0.9 * self.buf.shape[1]:
            data = np.ascontiguousarray(data)
        self.buf = None
        return data


def _decode(path: str, container, src: _Source, target_rate: int, progress) -> np.ndarray:
    """Stream the first audio stream through FFmpeg's resampler (packed float) into one buffer."""
    import av

    stream = container.streams.audio[0]
    out = _Decoded(path, target_rate, container.duration / 1_000_000 if container.duration else 0.0, progress)
    resampler = av.AudioResampler(format="flt", layout=None, rate=target_rate)
    try:
        for frame in container.decode(stream):
            frame.pts = None  # let the resampler run on sample counts; avoids pts gaps/jumps errors
            out.add(resampler.resample(frame))
        out.add(resampler.resample(None))
    except AudioError:
        raise
    except Exception as e:  # av.error.* during decoding
        got = out.n / target_rate
        if src.declared and got < src.declared - max(0.5, 0.02 * src.declared):
            raise _truncated(path, _STATED_LENGTH[src.container], f"header declares {src.declared:.1f} s, decoding stops at {got:.1f} s") from e
        where = f" after {got:.1f} s" if out.n else ""
        raise AudioError(
            path,
            f"audio data is corrupt or truncated{where} (decoder: {_short(e)})",
            "copy the original file again, or " + _HINT_CONVERT,
        ) from e
    if out.buf is None or out.n == 0:
        raise AudioError(
            path, "no audio could be decoded (file is corrupt, truncated or holds no samples)", "copy the original file again, or " + _HINT_CONVERT
        )
    if progress is not None:
        progress("decode", out.n / target_rate, out.n / target_rate)
    return out.channels()


#: Channels whose samples correlate at least this much are one sound written twice. A stereo call's two
#: parties, even with line echo, stay far below it; dual mono through MP3's joint stereo correlates 0.989
#: (AAC 0.9998, PCM 1.0).
DUAL_MONO_CORRELATION = 0.95


def is_dual_mono(data: np.ndarray, block: int = 1 << 20) -> bool:
    """Whether every channel of ``data`` (channels x samples) is channel 0 again, up to its level."""
    if data.shape[0] < 2:
        return False
    # sums of products in float64, a block at a time: a two-hour call would need 1 GB per channel as float64
    n = data.shape[0]
    gram = np.zeros((n, n))
    for start in range(0, data.shape[1], block):
        part = data[:, start:start + block].astype(np.float64)
        gram += part @ part.T
    energy = np.diag(gram)
    if np.any(energy == 0.0):
        return False
    return bool(np.all(gram[0, 1:] >= DUAL_MONO_CORRELATION * np.sqrt(energy[0] * energy[1:])))


def _pick_channels(path: str, data: np.ndarray, channels, rate: int) -> list[Channel]:
    n_src = data.shape[0]
    if channels == "each":
        if is_dual_mono(data):
            return [Channel(0, data[0], rate)]
        return [Channel(i, data[i], rate) for i in range(n_src)]
    if channels == "mix":
        mix = data[0] if n_src == 1 else data.mean(axis=0, dtype=np.float32)
        return [Channel(-1 if n_src > 1 else 0, mix, rate)]
    if not 0 <= channels < n_src:
        raise AudioError(path, f"has {n_src} channel(s), channel {channels} does not exist", f"use a channel number from 0 to {n_src - 1}")
    return [Channel(channels, np.ascontiguousarray(data[channels]), rate)]


def load_recording(path, channels="each", target_rate: int = TARGET_RATE, progress=None) -> Recording:
    """Decode a recording to float32 mono channels at ``target_rate``.

    ``channels``: ``"each"`` (one Channel per source channel - a stereo call holds two voices),
    ``"mix"`` (average of all channels, ``index == -1``) or an ``int`` (just that 0-based channel).
    ``progress``: optional ``progress(stage, done, total)`` hook (see :func:`reporting`).

    Decoding streams frame by frame through FFmpeg's resampler into one preallocated buffer; it stops
    as soon as MAX_DURATION_SECONDS is exceeded. A file whose header states a longer length than
    decodes (WAV, FLAC, MP3 with a Xing/Info header, M4A, AIFF) is refused as truncated.
    """
    path = os.fspath(path)
    _check_channels_arg(channels)
    _, sha = _check_file(path)
    progress = progress_hook(progress)

    import av  # heavy: imported only when decoding

    try:
        container = av.open(path, mode="r", metadata_errors="ignore")
    except Exception as e:  # av.error.* (InvalidDataError, ...), also OSError subclasses
        raise _open_error(path, e) from e
    try:
        src = _inspect(path, container, channels)
        data = _decode(path, container, src, target_rate, progress)
    finally:
        container.close()

    duration = data.shape[1] / float(target_rate)
    # The header states the exact length; a shortfall means the file was cut off.
    if src.declared and duration < src.declared - max(0.5, 0.02 * src.declared):
        raise _truncated(path, _STATED_LENGTH[src.container], f"header declares {src.declared:.1f} s, only {duration:.1f} s decodable")
    chans = _pick_channels(path, data, channels, target_rate)
    n_src = data.shape[0]
    del data
    peak = max(max(float(c.samples.max()), -float(c.samples.min())) for c in chans)  # no |x| temporary
    if peak <= SILENCE_PEAK:
        raise AudioError(
            path,
            f"is digital silence (peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS over {duration:.1f} s)",
            "the recording holds no sound - check the recorder or pick the right channel",
        )
    return Recording(path=path, sha256=sha, codec=src.codec, container=src.container, source_rate=src.source_rate,
                     n_channels=n_src, duration=duration, channels=chans, dual_mono=channels == "each" and n_src > 1 and len(chans) == 1,
                     band_limited=src.source_rate > PHONE_BAND_RATE and telephone_band(chans[0].samples, target_rate))


#: the rate telephone-band sound is sampled at
PHONE_BAND_RATE = 8000
#: dB by which the level at 4.6-5.5 kHz lies below the level at 3.0-3.4 kHz in telephone-band sound saved at a wideband
#: rate. Measured: speechocean762, commonvoice_zh and LibriSpeech, 2,752 wideband files, at most 27 dB; the real 8 kHz
#: calls of hyke_ivr_8k read back at 16 kHz, median 69 dB, 87 % at 35 dB or more.
TELEPHONE_BAND_DROP_DB = 35.0
#: A resampler that leaks images of the 3-4 kHz band above 4 kHz (FFmpeg's default, in PyAV) leaves 20-35 dB there: such
#: a call is also telephone-band when the drop is at least the first figure at 4.6-5.5 kHz and the second at 5.5-7.5 kHz.
#: Chosen with a 2 dB margin to every one of the 2,752 wideband files; of the 271 hyke calls re-saved through PyAV at
#: 16 kHz, 18 still read as wideband (36 on the first rule alone). docs/robustness.md, session 20.
TELEPHONE_BAND_LEAKY_DB = (28.0, 26.0)


def telephone_band(samples: np.ndarray, rate: int) -> bool:
    """Whether sound at ``rate`` (> 8 kHz) holds nothing above the telephone band: the level falls from 3.0-3.4 kHz by
    :data:`TELEPHONE_BAND_DROP_DB` at 4.6-5.5 kHz, or by :data:`TELEPHONE_BAND_LEAKY_DB` there and at 5.5-7.5 kHz (up to
    30 s are read, spread over the recording: about 3 ms for a 4 s file, 30 ms for a long call)."""
    if rate < 11025 or len(samples) < rate // 4:
        return False
    x = np.asarray(samples)
    if len(x) > 30 * rate:  # ten 3-second stretches spread over the whole recording
        step = len(x) // 10
        x = np.concatenate([x[i * step : i * step + 3 * rate] for i in range(10)])
    f, p = _welch(x, rate, 1024)
    below = p[(f >= 3000) & (f < 3400)].mean()
    if not below > 0:
        return False
    drop = [10 * np.log10(below / max(p[(f >= a) & (f < b)].mean(), 1e-30)) for a, b in ((4600, 5500), (5500, 7500))]
    return bool(drop[0] >= TELEPHONE_BAND_DROP_DB or (drop[0] >= TELEPHONE_BAND_LEAKY_DB[0] and drop[1] >= TELEPHONE_BAND_LEAKY_DB[1]))


# --------------------------------------------------------------------------------------------------
# Voice activity detection
# --------------------------------------------------------------------------------------------------

_VAD_MODEL = None
_VAD_LOCK = threading.Lock()

#: silero-vad settings (probability threshold and minimum durations in ms).
VAD_THRESHOLD = 0.5
VAD_MIN_SPEECH_MS = 250
VAD_MIN_SILENCE_MS = 100
VAD_PAD_MS = 30
#: Context kept around each speech segment in the audio that is *embedded* (not in net speech, which
#: counts VAD speech only). Cutting speech at the VAD's tight edges and butting the pieces together
#: cost ECAPA 1.4 points of top-1 on speechocean762; 200 ms of context recovers whole-file accuracy
#: (docs/accuracy.md, "Identification accuracy through the library").
EMBED_PAD_S = 0.2


def _vad_model():
    """The silero-vad TorchScript model, loaded once from the file inside the installed package (never a hub)."""
    global _VAD_MODEL
    if _VAD_MODEL is None:
        with _VAD_LOCK:
            if _VAD_MODEL is None:
                import warnings

                import torch

                threads = torch.get_num_threads()
                try:
                    with warnings.catch_warnings():  # importlib.resources.path / torch.jit.load deprecations
                        warnings.simplefilter("ignore", DeprecationWarning)
                        from silero_vad import load_silero_vad  # its import calls torch.set_num_threads(1)

                        model = load_silero_vad(onnx=False)  # reads silero_vad/data/silero_vad.jit
                except Exception as e:  # pragma: no cover - broken install
                    from voiceprint.errors import ModelError

                    raise ModelError(f"cannot load the silero-vad model shipped in the silero-vad package: {e}") from e
                finally:
                    torch.set_num_threads(threads)  # undo silero's global side effect
                model.eval()
                _VAD_MODEL = model
    return _VAD_MODEL


def _ratio(sr: int, new_sr: int) -> tuple[int, int]:
    from math import gcd

    g = gcd(int(sr), int(new_sr))
    return int(new_sr) // g, int(sr) // g


def _resample(x: np.ndarray, sr: int, new_sr: int) -> np.ndarray:
    if sr == new_sr:
        return x
    from scipy.signal import resample_poly

    up, down = _ratio(sr, new_sr)
    return resample_poly(x, up, down).astype(np.float32)


def _resampled_slice(x: np.ndarray, sr: int, new_sr: int, lo: int, hi: int) -> np.ndarray:
    """``_resample(x, sr, new_sr)[lo:hi]`` without resampling the whole signal.

    The polyphase filter reaches ``10 * max(up, down)`` upsampled taps either side, so resampling the
    input around the slice with a wider margin, started on a multiple of ``down``, gives the same
    samples as the whole-signal result (checked in tests/test_audio.py)."""
    if sr == new_sr:
        return x[lo:hi]
    up, down = _ratio(sr, new_sr)
    margin = (10 * max(up, down)) // up + 2 * down + 8
    a = max(0, (lo * down // up - margin) // down * down)
    b = min(len(x), -(-hi * down // up) + margin)
    out = _resample(np.ascontiguousarray(x[a:b]), sr, new_sr)
    off = a * up // down
    return out[lo - off : hi - off]


def _welch(x: np.ndarray, sr: int, nperseg: int, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.welch(x, fs=sr, nperseg=nperseg)`` (periodic Hann window, half overlap, each
    segment's mean removed, one-sided density): the same frequencies and PSD within float32 rounding
    (tests/test_audio.py), 3-9x faster; segments are transformed ``chunk`` at a time (bounded memory)."""
    step = nperseg - nperseg // 2
    n = (len(x) - nperseg) // step + 1
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(nperseg) / nperseg)
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(x), nperseg)[::step][:n]
    power = np.zeros(nperseg // 2 + 1)
    for i in range(0, n, chunk):
        block = frames[i : i + chunk].astype(np.float64)
        power += (np.abs(np.fft.rfft((block - block.mean(axis=1, keepdims=True)) * window, axis=1)) ** 2).sum(axis=0)
    psd = power / (n * sr * float((window**2).sum()))
    psd[1 : None if nperseg % 2 else -1] *= 2  # one-sided: every bin but DC (and Nyquist) counts twice
    return np.fft.rfftfreq(nperseg, 1 / sr), psd


def _band_limited(x: np.ndarray, sr: int) -> bool:
    """True when (almost) no energy lies above 4.2 kHz: telephone / 8 kHz-origin audio, even if upsampled."""
    if sr <= 8400:
        return True
    seg = x[: 60 * sr]  # the first minute is enough to tell the channel
    f, p = _welch(seg, sr, min(1024, len(seg)))
    tot = float(p.sum())
    if tot <= 0:
        return False
    return float(p[f >= 4200].sum()) / tot < 1e-4  # less than -40 dB above 4.2 kHz


#: The VAD resamples and scores the audio in blocks of this many seconds (bounded memory on long calls).
VAD_BLOCK_S = 60


def _speech_probs(x: np.ndarray, sr: int, vad_sr: int, progress=None) -> tuple[list[float], int]:
    """silero-vad's speech probability for every window of ``x`` resampled to ``vad_sr``, and that length.

    The same windows, in the same order, with the model's state carried across blocks, as
    ``silero_vad.get_speech_timestamps`` scores on the whole signal - so the result is identical,
    but only one block is ever resampled at a time."""
    import torch

    model = _vad_model()  # first: it undoes the thread-count side effect of importing silero_vad
    win = 512 if vad_sr == 16000 else 256
    up, down = _ratio(sr, vad_sr)
    n_out = -(-len(x) * up // down)  # resample_poly's output length
    block = max(1, int(VAD_BLOCK_S * vad_sr) // (win * up)) * win * up
    probs: list[float] = []
    threads = torch.get_num_threads()
    with _VAD_LOCK, torch.inference_mode():  # one caller at a time: the thread count is process-wide
        torch.set_num_threads(1)  # 32 ms windows are too small to share: a second thread only waits
        try:
            _score_blocks(model, x, sr, vad_sr, n_out, block, win, probs, progress)
        finally:
            torch.set_num_threads(threads)
    return probs, n_out


def _score_blocks(model, x, sr, vad_sr, n_out, block, win, probs, progress) -> None:
    """Append silero's probability of each ``win`` window to ``probs``, resampling ``block`` at a time."""
    import torch

    net = model._model if vad_sr == 16000 else model._model_8k
    ctx = int(net.context_size_samples)
    context, state = torch.zeros(1, ctx), (torch.zeros(1, 128), torch.zeros(1, 128))
    for lo in range(0, n_out, block):
        xv = torch.from_numpy(np.ascontiguousarray(_resampled_slice(x, sr, vad_sr, lo, min(lo + block, n_out))))
        frames = torch.nn.functional.pad(xv, (0, -len(xv) % win)).reshape(-1, win)
        inputs = torch.cat([torch.cat([context, frames[:-1, -ctx:]]), frames], 1)  # each window after its context
        context = frames[-1:, -ctx:]
        block_probs, state = _window_probs(net, inputs, state)
        probs.extend(block_probs)
        if progress is not None:
            progress("speech", min(lo + block, n_out) / vad_sr, n_out / vad_sr)


def _window_probs(net, inputs, state):
    """silero's per-window forward pass for a block of windows: the feature extractor, encoder and
    output head run on the whole block at once, and its LSTM cell runs over the windows as one
    ``torch.nn.LSTM`` sequence with the cell's own weights (probabilities within 1e-6 of one call
    per window; tests/test_audio.py), for 3.5x and then ~1.5x less CPU."""
    feats = net.encoder(net.run_extractors(inputs)).squeeze(-1)
    h, c = state
    hs, (h, c) = _sequence_lstm(net.decoder.rnn)(feats.unsqueeze(1), (h.unsqueeze(0), c.unsqueeze(0)))
    out = net.decoder.decoder(hs.squeeze(1).unsqueeze(-1).float()).squeeze(1).mean(1)
    return out.tolist(), (h[0], c[0])


_LSTMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # cell -> its sequence LSTM, as long as the cell lives


def _sequence_lstm(cell):
    """A one-layer ``torch.nn.LSTM`` holding ``cell``'s weights (the same gates, in the same order)."""
    lstm = _LSTMS.get(cell)
    if lstm is None:
        import torch

        lstm = torch.nn.LSTM(cell.weight_ih.shape[1], cell.weight_hh.shape[1])
        lstm.load_state_dict({"weight_ih_l0": cell.weight_ih, "weight_hh_l0": cell.weight_hh,
                              "bias_ih_l0": cell.bias_ih, "bias_hh_l0": cell.bias_hh})
        lstm.eval()
        _LSTMS[cell] = lstm
    return lstm


def speech_segments(samples: np.ndarray, sample_rate: int = TARGET_RATE, progress=None) -> list[SpeechSegment]:
    """Speech regions (seconds, sorted, non-overlapping) found by silero-vad.

    Band-limited audio (8 kHz origin, including telephone audio upsampled to 16 kHz) is analysed with
    silero's 8 kHz mode, which was trained on such audio and finds speech there more reliably than the
    16 kHz mode; full-band audio is analysed at 16 kHz.  Pure tones (ring-back, DTMF, dial tone, beeps)
    are rejected by silero itself and additionally by a tonality check on each segment.  The audio is
    resampled and scored in ``VAD_BLOCK_S`` blocks, so a long call needs little memory beyond its samples.
    """
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError("speech_segments expects mono samples (1-D array)")
    sr = int(sample_rate)
    if len(x) < sr // 8 or max(float(x.max()), -float(x.min())) <= SILENCE_PEAK:
        return []
    vad_sr = 8000 if _band_limited(x, sr) else 16000
    probs, n_out = _speech_probs(x, sr, vad_sr, progress_hook(progress))
    from silero_vad.utils_vad import get_speech_timestamps_from_probs

    ts = get_speech_timestamps_from_probs(
        probs,
        sampling_rate=vad_sr,
        threshold=VAD_THRESHOLD,
        min_speech_duration_ms=VAD_MIN_SPEECH_MS,
        min_silence_duration_ms=VAD_MIN_SILENCE_MS,
        speech_pad_ms=VAD_PAD_MS,
        audio_length_samples=n_out,
    )
    segs = []
    for t in ts:
        s, e = int(t["start"]), int(t["end"])
        if _is_tonal(_resampled_slice(x, sr, vad_sr, s, e), vad_sr):
            continue
        segs.append(SpeechSegment(round(s / vad_sr, 4), round(min(e / vad_sr, len(x) / sr), 4)))
    return segs


def _is_tonal(seg: np.ndarray, sr: int) -> bool:
    """True when a stretch is a steady tone: nearly all energy in a few fixed spectral lines.

    Speech has a moving pitch and formants, so its long-term spectrum spreads energy over many bins;
    a ring-back (440+480 Hz), DTMF pair, dial tone or beep puts > 90 % of it into a handful of bins.
    Only a safety net: silero-vad already scores these tones as non-speech.
    """
    if len(seg) < sr // 4:
        return False
    _, p = _welch(seg, sr, min(len(seg), sr // 4))
    tot = float(p.sum())
    if tot <= 0:
        return True
    top = np.sort(p)[::-1]
    # share of energy in the 8 strongest 4 Hz bins: two lines plus window leakage.  Real speech segments
    # measured at most ~0.87 (median ~0.4); ring-back / beeps measure ~1.0.
    return float(top[:8].sum()) / tot > 0.97


def _fmt_s(v: float, ref: float) -> str:
    """Seconds with one decimal, or two when one decimal would read as equal to ``ref``."""
    s = f"{v:.1f}"
    return f"{v:.2f}" if s == f"{ref:.1f}" and v < ref else s


#: At most this much speech (seconds) of one voice is embedded, spread evenly over the recording
#: (:func:`spread_segments`). Identification accuracy stops rising after ~3 s of speech
#: (docs/accuracy.md); embedding all of a 2-hour call would cost minutes for no gain.
MAX_EMBED_SPEECH_S = 120.0


def spread_segments(segments, max_s: float | None = None) -> list[SpeechSegment]:
    """``segments`` unchanged when they hold at most ``max_s`` (default ``MAX_EMBED_SPEECH_S``) seconds,
    else a subset of about ``max_s`` seconds taken evenly across them (every part of a long call has its say)."""
    max_s = MAX_EMBED_SPEECH_S if max_s is None else max_s
    segments = list(segments)
    total = sum(s.duration for s in segments)
    if total <= max_s:
        return segments
    keep, owed = [], 0.0
    for s in segments:
        owed += s.duration * max_s / total
        if owed >= s.duration / 2:
            keep.append(s)
            owed -= s.duration
    return keep


def prepare_speech(channel: Channel, path: str = "", min_speech: float = MIN_SPEECH_SECONDS, progress=None):
    """The audio to embed (speech segments with ``EMBED_PAD_S`` of context, concatenated; at most
    ``MAX_EMBED_SPEECH_S`` of speech spread over the recording) and the segments; net speech is the
    segments' total length.

    Raises AudioError when the net speech is shorter than ``min_speech`` seconds.
    """
    sr = channel.sample_rate
    segs = speech_segments(channel.samples, sr, progress=progress)
    net = sum(s.duration for s in segs)
    name = path or f"channel {channel.index}"
    if net < min_speech:
        if not segs:
            reason = f"no speech found (need at least {min_speech:.1f} s"
            reason += f"; channel {channel.index})" if path else ")"
        else:
            reason = f"only {_fmt_s(net, min_speech)} s of speech (need at least {min_speech:.1f} s"
            reason += f"; channel {channel.index})" if path else ")"
        raise AudioError(name, reason, "use a longer recording (for enrolment, `enrol --min-speech` lowers this floor)")
    return embedding_audio(channel.samples, spread_segments(segs), sr), segs


def embedding_audio(samples: np.ndarray, segments, sample_rate: int, avoid=(), pad: float | None = None) -> np.ndarray:
    """The audio that is embedded for ``segments``: each widened by ``pad`` seconds (default
    ``EMBED_PAD_S``) of context on both sides, never into the ``avoid`` segments (another voice's
    speech), overlaps merged, then concatenated in order."""
    pad = EMBED_PAD_S if pad is None else pad
    sr, n = int(sample_rate), len(samples)
    spans = sorted((max(0, int(round((s.start - pad) * sr))), min(n, int(round((s.end + pad) * sr))),
                    int(round(s.start * sr)), int(round(s.end * sr))) for s in segments)
    # the nearest blocked end at or before each core and blocked start at or after it (sorted lookups:
    # a long call's voices have thousands of segments each)
    b_his = np.sort(np.array([int(round(a.end * sr)) for a in avoid], dtype=np.int64))
    b_los = np.sort(np.array([int(round(a.start * sr)) for a in avoid], dtype=np.int64))
    merged: list[list[int]] = []
    for lo, hi, core_lo, core_hi in spans:
        i = int(np.searchsorted(b_his, core_lo, side="right")) - 1
        if i >= 0:  # shrink the context so it stops at another voice's speech
            lo = max(lo, int(b_his[i]))
        j = int(np.searchsorted(b_los, core_hi, side="left"))
        if j < len(b_los):
            hi = min(hi, int(b_los[j]))
        lo, hi = min(lo, core_lo), max(hi, core_hi)
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    total = sum(hi - lo for lo, hi in merged if hi > lo)
    out = np.empty(total, np.float32)
    k = 0
    for lo, hi in merged:
        if hi > lo:
            out[k : k + hi - lo] = samples[lo:hi]
            k += hi - lo
    return out


# --------------------------------------------------------------------------------------------------
# Quality
# --------------------------------------------------------------------------------------------------


def _speech_mask(n: int, segments, sr: int, offset: int = 0) -> np.ndarray:
    """Samples ``offset .. offset + n`` that lie inside a speech segment."""
    m = np.zeros(n, dtype=bool)
    for s in segments:
        a, b = max(0, int(s.start * sr) - offset), min(n, int(round(s.end * sr)) - offset)
        if b > a:
            m[a:b] = True
    return m


#: measure_quality reads the samples in blocks of this many 20 ms frames (no full-length temporaries),
#: and the speech for the bandwidth in pieces of this many seconds.
_QUALITY_BLOCK_FRAMES = 30_000
_QUALITY_PIECE_S = 600


def _frame_stats(x: np.ndarray, segments, sr: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Per 20 ms frame: energy and whether it is speech; and the speech samples' count and how many are clipped."""
    flen = max(1, int(0.02 * sr))
    nf = len(x) // flen
    energies, flags = [], []
    n_speech = n_clip = 0
    block = _QUALITY_BLOCK_FRAMES * flen
    segments = sorted(segments, key=lambda s: s.start)
    for a in range(0, len(x), block):
        xb = x[a : a + block]
        mb = _speech_mask(len(xb), [s for s in segments if s.end * sr > a - 1 and s.start * sr < a + block + 1], sr, a)
        n_speech += int(mb.sum())
        n_clip += int(np.count_nonzero((np.abs(xb) >= CLIP_LEVEL) & mb))
        k = min(len(xb) // flen, nf - a // flen)
        if k > 0:
            fr = xb[: k * flen].reshape(k, flen).astype(np.float64)
            energies.append((fr**2).mean(axis=1))
            flags.append(mb[: k * flen].reshape(k, flen).mean(axis=1) > 0.5)
    e = np.concatenate(energies) if energies else np.zeros(0)
    fm = np.concatenate(flags) if flags else np.zeros(0, bool)
    return e, fm, n_speech, n_clip


def _snr_db(e: np.ndarray, fm: np.ndarray, flen: int, sr: int) -> float | None:
    if not len(e):
        return None
    floor = (1.0 / 32768.0) ** 2 / 12.0  # 16-bit quantisation noise
    sp, ns = e[fm], e[~fm]
    if len(sp) == 0:
        sp = e
    if len(ns) * flen >= 0.5 * sr:
        noise = float(ns.mean())
    else:
        noise = float(np.percentile(sp, 10))
    noise = max(noise, floor)
    sig = max(float(sp.mean()) - noise, floor * 1e-3)
    return float(np.clip(10 * np.log10(sig / noise), -20.0, 100.0))


def _bandwidth_hz(x: np.ndarray, segments, sr: int) -> float:
    """Frequency below which 99 % of the speech energy lies (Welch PSD of the speech samples, all
    samples when there is no speech). Speech beyond 10 minutes is read 10 minutes at a time and the
    pieces' PSDs averaged, weighted by length (the same result, without a full-length copy)."""
    psd, f = None, None
    for piece in _pieces(x, _spans(segments, sr, len(x)) or [(0, len(x))], int(_QUALITY_PIECE_S * sr)):
        if len(piece) < 256 or (psd is not None and len(piece) < 1024):
            continue
        f, p = _welch(piece, sr, min(1024, len(piece)))
        psd = p * len(piece) if psd is None else psd + p * len(piece)
    if psd is None or f is None:
        return 0.0
    c = np.cumsum(psd)
    if c[-1] <= 0:
        return 0.0
    return float(f[min(int(np.searchsorted(c, 0.99 * c[-1])), len(f) - 1)])


def _spans(segments, sr: int, n: int) -> list[tuple[int, int]]:
    """The sample ranges of ``_speech_mask``, sorted and merged."""
    merged: list[list[int]] = []
    for a, b in sorted((max(0, int(s.start * sr)), min(n, int(round(s.end * sr)))) for s in segments):
        if b <= a:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def _pieces(x: np.ndarray, spans, limit: int):
    """``x`` at ``spans``, concatenated, yielded in consecutive pieces of about ``limit`` samples."""
    parts: list[np.ndarray] = []
    size = 0
    for a, b in spans:
        for c in range(a, b, limit):
            parts.append(x[c : min(b, c + limit)])
            size += len(parts[-1])
            if size >= limit:
                yield np.concatenate(parts)
                parts, size = [], 0
    if parts:
        yield np.concatenate(parts)


def measure_quality(channel: Channel, segments, codec: str, source_rate: int) -> dict:
    """Quality figures for one channel.

    - ``net_speech_s``: total length of the speech segments.
    - ``snr_db``: mean energy of 20 ms speech frames against mean energy of non-speech frames; when there
      is less than 0.5 s of non-speech, the noise floor is the 10th percentile of speech-frame energies
      (the quietest stretches between syllables).  Capped to [-20, 100] dB.
    - ``clipping_ratio``: share of speech samples (all samples if no speech) with |x| >= 0.999.
    - ``bandwidth_hz``: frequency below which 99 % of the speech energy lies (Welch PSD).
    - ``codec`` and ``source_rate`` as given.

    Everything is read in blocks, so a long call costs no full-length temporary arrays.
    """
    x = np.asarray(channel.samples, dtype=np.float32)
    sr = int(channel.sample_rate)
    segments = list(segments or [])
    net = float(sum(s.end - s.start for s in segments))
    e, fm, n_speech, n_clip = _frame_stats(x, segments, sr)
    if not n_speech:  # no speech: clipping over all samples
        n_speech = len(x)
        n_clip = sum(int(np.count_nonzero(np.abs(x[a : a + (1 << 22)]) >= CLIP_LEVEL)) for a in range(0, len(x), 1 << 22))
    return {
        "net_speech_s": round(net, 3),
        "snr_db": None if (snr := _snr_db(e, fm, max(1, int(0.02 * sr)), sr)) is None else round(snr, 1),
        "clipping_ratio": n_clip / n_speech if n_speech else 0.0,
        "bandwidth_hz": _bandwidth_hz(x, segments, sr),
        "codec": codec,
        "source_rate": int(source_rate),
    }
