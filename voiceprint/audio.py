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


def load_recording(path, channels="each", target_rate: int = TARGET_RATE) -> Recording:
    """Decode a recording to float32 mono channels at ``target_rate``.

    ``channels``: ``"each"`` (one Channel per source channel - a stereo call holds two voices),
    ``"mix"`` (average of all channels, ``index == -1``) or an ``int`` (just that 0-based channel).

    Decoding streams frame by frame through FFmpeg's resampler (``av.AudioResampler``, planar float)
    into one preallocated buffer; it stops as soon as MAX_DURATION_SECONDS is exceeded.
    """
    path = os.fspath(path)
    if channels not in ("each", "mix") and not (isinstance(channels, int) and not isinstance(channels, bool)):
        raise ValueError(f"channels must be 'each', 'mix' or a channel number, not {channels!r}")

    # --- cheap checks before touching the decoder -------------------------------------------------
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
        raise AudioError(
            path,
            f"WAV file is truncated (header declares {declared} bytes of audio, only {present} present)",
            "the copy is incomplete - copy the original file again",
        )

    import av  # heavy: imported only when decoding

    try:
        container = av.open(path, mode="r", metadata_errors="ignore")
    except Exception as e:  # av.error.* (InvalidDataError, ...), also OSError subclasses
        raise _open_error(path, e) from e

    try:
        if not container.streams.audio:
            raise AudioError(path, f"contains no audio stream (container '{container.format.name}')", _HINT_CONVERT)
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        # canonical codec id name ("mp3", "amr_nb"), not the decoder's name ("mp3float", "amrnb")
        codec = getattr(ctx.codec, "canonical_name", None) or ctx.name
        container_name = container.format.name
        source_rate = int(ctx.sample_rate or 0)
        n_src = int(ctx.channels or 0)
        if isinstance(channels, int) and n_src and not (0 <= channels < n_src):
            raise AudioError(
                path,
                f"has {n_src} channel(s), channel {channels} does not exist",
                f"use a channel number from 0 to {n_src - 1}, or 'each' / 'mix'",
            )

        max_samples = int(MAX_DURATION_SECONDS * target_rate)
        too_long = AudioError(
            path,
            f"recording is too long (more than {MAX_DURATION_SECONDS / 3600:g} h; limit {MAX_DURATION_SECONDS} s)",
            "cut it into shorter pieces (e.g. one call per file) and load those",
        )
        # WAV and FLAC headers state the length exactly (FFmpeg clamps WAV to the bytes present): refuse at once.
        if container_name in ("wav", "flac") and container.duration and container.duration / 1e6 > MAX_DURATION_SECONDS + 1:
            raise too_long
        # Preallocate from the container's duration estimate (plus slack) so a long file is not copied while growing.
        est = 0
        if container.duration:
            est = int(container.duration / 1_000_000 * target_rate * 1.02) + target_rate
        cap = min(max(est, 10 * target_rate), max_samples + 2 * target_rate)
        buf: np.ndarray | None = None
        n = 0
        resampler = av.AudioResampler(format="fltp", layout=None, rate=target_rate)

        def add(frames):
            nonlocal buf, n, cap
            for fr in frames:
                m = fr.samples
                planes = fr.planes  # planar float32: one plane per channel
                if buf is None:
                    buf = np.empty((len(planes), cap), dtype=np.float32)
                if len(planes) != buf.shape[0]:
                    raise AudioError(path, "channel count changes in the middle of the file", _HINT_CONVERT)
                if n + m > cap:
                    cap = max(cap * 2, n + m)
                    nb = np.empty((buf.shape[0], cap), dtype=np.float32)
                    nb[:, :n] = buf[:, :n]
                    buf = nb
                for c, plane in enumerate(planes):
                    # clip while the chunk is small: resampling can overshoot full scale slightly
                    np.clip(np.frombuffer(plane, dtype=np.float32, count=m), -1.0, 1.0, out=buf[c, n : n + m])
                n += m
            if n > max_samples:  # stop decoding as soon as the limit is passed
                raise too_long

        try:
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler run on sample counts; avoids pts gaps/jumps errors
                add(resampler.resample(frame))
            add(resampler.resample(None))
        except AudioError:
            raise
        except Exception as e:  # av.error.* during decoding
            where = f" after {n / target_rate:.1f} s" if n else ""
            raise AudioError(
                path,
                f"audio data is corrupt or truncated{where} (decoder: {_short(e)})",
                "copy the original file again, or " + _HINT_CONVERT,
            ) from e

        declared = None
        if stream.duration and stream.time_base:
            declared = float(stream.duration * stream.time_base)
    finally:
        container.close()

    if buf is None or n == 0:
        raise AudioError(
            path, "no audio could be decoded (file is corrupt, truncated or holds no samples)", "copy the original file again, or " + _HINT_CONVERT
        )
    duration = n / float(target_rate)
    # FLAC states its exact sample count; a shortfall means the file was cut off.
    if container_name == "flac" and declared and duration < declared - max(0.5, 0.02 * declared):
        raise AudioError(
            path,
            f"FLAC file is truncated (header declares {declared:.1f} s, only {duration:.1f} s decodable)",
            "the copy is incomplete - copy the original file again",
        )

    n_src = buf.shape[0]
    data = buf[:, :n]
    if n < 0.9 * buf.shape[1]:
        data = np.ascontiguousarray(data)  # release the unused tail of the preallocation
    del buf

    if channels == "each":
        chans = [Channel(i, data[i], target_rate) for i in range(n_src)]
    elif channels == "mix":
        mix = data[0] if n_src == 1 else data.mean(axis=0, dtype=np.float32)
        chans = [Channel(-1 if n_src > 1 else 0, mix, target_rate)]
    else:
        if not 0 <= channels < n_src:
            raise AudioError(path, f"has {n_src} channel(s), channel {channels} does not exist", f"use a channel number from 0 to {n_src - 1}")
        chans = [Channel(channels, np.ascontiguousarray(data[channels]), target_rate)]
        del data

    peak = max(max(float(c.samples.max()), -float(c.samples.min())) for c in chans)  # no |x| temporary
    if peak <= SILENCE_PEAK:
        raise AudioError(
            path,
            f"is digital silence (peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS over {duration:.1f} s)",
            "the recording holds no sound - check the recorder or pick the right channel",
        )

    return Recording(
        path=path,
        sha256=sha,
        codec=codec,
        container=container_name,
        source_rate=source_rate,
        n_channels=n_src,
        duration=duration,
        channels=chans,
    )


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
                import torch

                import warnings

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


def _resample(x: np.ndarray, sr: int, new_sr: int) -> np.ndarray:
    if sr == new_sr:
        return x
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(sr), int(new_sr))
    return resample_poly(x, new_sr // g, sr // g).astype(np.float32)


def _band_limited(x: np.ndarray, sr: int) -> bool:
    """True when (almost) no energy lies above 4.2 kHz: telephone / 8 kHz-origin audio, even if upsampled."""
    if sr <= 8400:
        return True
    from scipy.signal import welch

    seg = x[: 60 * sr]  # the first minute is enough to tell the channel
    f, p = welch(seg, fs=sr, nperseg=min(1024, len(seg)))
    tot = float(p.sum())
    if tot <= 0:
        return False
    return float(p[f >= 4200].sum()) / tot < 1e-4  # less than -40 dB above 4.2 kHz


def speech_segments(samples: np.ndarray, sample_rate: int = TARGET_RATE) -> list[SpeechSegment]:
    """Speech regions (seconds, sorted, non-overlapping) found by silero-vad.

    Band-limited audio (8 kHz origin, including telephone audio upsampled to 16 kHz) is analysed with
    silero's 8 kHz mode, which was trained on such audio and finds speech there more reliably than the
    16 kHz mode; full-band audio is analysed at 16 kHz.  Pure tones (ring-back, DTMF, dial tone, beeps)
    are rejected by silero itself and additionally by a tonality check on each segment.
    """
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError("speech_segments expects mono samples (1-D array)")
    sr = int(sample_rate)
    if len(x) < sr // 8 or float(np.max(np.abs(x), initial=0.0)) <= SILENCE_PEAK:
        return []
    vad_sr = 8000 if _band_limited(x, sr) else 16000
    xv = _resample(x, sr, vad_sr)
    import torch

    model = _vad_model()  # first: it undoes the thread-count side effect of importing silero_vad
    from silero_vad import get_speech_timestamps

    with _VAD_LOCK, torch.inference_mode():  # the model keeps state between windows: one caller at a time
        ts = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(xv)),
            model,
            threshold=VAD_THRESHOLD,
            sampling_rate=vad_sr,
            min_speech_duration_ms=VAD_MIN_SPEECH_MS,
            min_silence_duration_ms=VAD_MIN_SILENCE_MS,
            speech_pad_ms=VAD_PAD_MS,
        )
    segs = []
    for t in ts:
        s, e = int(t["start"]), int(t["end"])
        if _is_tonal(xv[s:e], vad_sr):
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
    from scipy.signal import welch

    _, p = welch(seg, fs=sr, nperseg=min(len(seg), sr // 4))
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


def prepare_speech(channel: Channel, path: str = "", min_speech: float = MIN_SPEECH_SECONDS):
    """The audio to embed (speech segments with ``EMBED_PAD_S`` of context, concatenated) and the
    segments; net speech is the segments' total length.

    Raises AudioError when the net speech is shorter than ``min_speech`` seconds.
    """
    sr = channel.sample_rate
    segs = speech_segments(channel.samples, sr)
    net = sum(s.duration for s in segs)
    name = path or f"channel {channel.index}"
    if net < min_speech:
        if not segs:
            reason = f"no speech found (need at least {min_speech:.1f} s"
            reason += f"; channel {channel.index})" if path else ")"
        else:
            reason = f"only {_fmt_s(net, min_speech)} s of speech (need at least {min_speech:.1f} s"
            reason += f"; channel {channel.index})" if path else ")"
        raise AudioError(name, reason, "use a longer recording or --min-speech")
    return embedding_audio(channel.samples, segs, sr), segs


def embedding_audio(samples: np.ndarray, segments, sample_rate: int, avoid=(), pad: float | None = None) -> np.ndarray:
    """The audio that is embedded for ``segments``: each widened by ``pad`` seconds (default
    ``EMBED_PAD_S``) of context on both sides, never into the ``avoid`` segments (another voice's
    speech), overlaps merged, then concatenated in order."""
    pad = EMBED_PAD_S if pad is None else pad
    sr, n = int(sample_rate), len(samples)
    spans = sorted((max(0, int(round((s.start - pad) * sr))), min(n, int(round((s.end + pad) * sr))),
                    int(round(s.start * sr)), int(round(s.end * sr))) for s in segments)
    blocked = sorted((int(round(a.start * sr)), int(round(a.end * sr))) for a in avoid)
    merged: list[list[int]] = []
    for lo, hi, core_lo, core_hi in spans:
        for b_lo, b_hi in blocked:  # shrink the context so it stops at another voice's speech
            if b_hi <= core_lo:
                lo = max(lo, b_hi)
            elif b_lo >= core_hi:
                hi = min(hi, b_lo)
        lo, hi = min(lo, core_lo), max(hi, core_hi)
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    parts = [samples[lo:hi] for lo, hi in merged if hi > lo]
    return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32)


# --------------------------------------------------------------------------------------------------
# Quality
# --------------------------------------------------------------------------------------------------


def _speech_mask(n: int, segments, sr: int) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    for s in segments:
        m[max(0, int(s.start * sr)) : min(n, int(round(s.end * sr)))] = True
    return m


def measure_quality(channel: Channel, segments, codec: str, source_rate: int) -> dict:
    """Quality figures for one channel.

    - ``net_speech_s``: total length of the speech segments.
    - ``snr_db``: mean energy of 20 ms speech frames against mean energy of non-speech frames; when there
      is less than 0.5 s of non-speech, the noise floor is the 10th percentile of speech-frame energies
      (the quietest stretches between syllables).  Capped to [-20, 100] dB.
    - ``clipping_ratio``: share of speech samples (all samples if no speech) with |x| >= 0.999.
    - ``bandwidth_hz``: frequency below which 99 % of the speech energy lies (Welch PSD).
    - ``codec`` and ``source_rate`` as given.
    """
    from scipy.signal import welch

    x = np.asarray(channel.samples, dtype=np.float32)
    sr = int(channel.sample_rate)
    segments = list(segments or [])
    net = float(sum(s.end - s.start for s in segments))
    mask = _speech_mask(len(x), segments, sr)
    speech = x[mask] if mask.any() else x

    # frame energies
    flen = max(1, int(0.02 * sr))
    nf = len(x) // flen
    snr = None
    if nf:
        fr = x[: nf * flen].reshape(nf, flen).astype(np.float64)
        e = (fr**2).mean(axis=1)
        fm = mask[: nf * flen].reshape(nf, flen).mean(axis=1) > 0.5
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
        snr = float(np.clip(10 * np.log10(sig / noise), -20.0, 100.0))

    clip = float(np.mean(np.abs(speech) >= CLIP_LEVEL)) if len(speech) else 0.0

    bw = 0.0
    if len(speech) >= 256:
        f, p = welch(speech, fs=sr, nperseg=min(1024, len(speech)))
        c = np.cumsum(p)
        if c[-1] > 0:
            bw = float(f[min(int(np.searchsorted(c, 0.99 * c[-1])), len(f) - 1)])

    return {
        "net_speech_s": round(net, 3),
        "snr_db": None if snr is None else round(snr, 1),
        "clipping_ratio": clip,
        "bandwidth_hz": bw,
        "codec": codec,
        "source_rate": int(source_rate),
    }
