"""Quality gates for recordings: is this voice good enough to enrol, and how far can a query be trusted?

Every recording gets ``audio.measure_quality`` figures (net speech, SNR, clipping, bandwidth,
codec); they are stored with the recording and shown beside query results. Here they are
judged:

- a file is refused only when it is unusable (no speech, corrupt, several voices): a short or
  noisy file is enrolled with its quality stored and a warning, because a person's voiceprint is
  built from all their samples;
- the gate belongs to the person: a person whose samples pool less than ``PERSON_MIN_SPEECH_S``
  of net speech has a **weak voiceprint**, flagged in ``person show``, query hits and JSON, and
  the enrolment summary names the persons who need more material;
- a query below a gate still runs, but says so beside its hits.

The net-speech gates come from measured identification accuracy by net-speech duration on real
speech (``scripts/eval_quality.py``; ``docs/models.md`` for the default CAM++ model, ``docs/history.md``
for ECAPA): with CAM++ the EER of a person enrolled from D seconds pooled over four utterances is
1.9 / 1.7 / 0.06 % at 1 / 2 / 3 s and flat after, so a person needs ``PERSON_MIN_SPEECH_S`` pooled,
a file under ``ENROL_MIN_SPEECH_S`` is warned on, and a query below ``QUERY_WEAK_SPEECH_S`` is
flagged as weak. The SNR gate is set from the same measurement with white noise added (see ``MIN_SNR_DB``);
the clipping gate (1 % of speech samples at full scale) is a convention, not measured here.
"""

from __future__ import annotations

import math

#: A file with less speech (or noise, clipping) than these gates is enrolled with a warning.
ENROL_MIN_SPEECH_S = 3.0
#: A person's pooled net speech below this makes a weak voiceprint (the enrolment sweep of
#: ``scripts/eval_quality.py`` pools D seconds from several utterances: see docs/accuracy.md).
PERSON_MIN_SPEECH_S = 3.0
QUERY_WEAK_SPEECH_S = 3.0
#: On :func:`frame_snr_db` (stored as ``snr_frames_db``), which reads ~5 dB above the true SNR of added
#: white noise: 10 here is ~5 dB true, below which 3 s queries fall from 80 % to 62 % top-1 (EER 10 -> 16 %).
MIN_SNR_DB = 10.0
MAX_CLIPPING = 0.01


def seconds_shown(value) -> str:
    """Net speech as every page, report and warning shows it: rounded down to 0.1 s, so that 2.97 s
    never reads "3.0 s" beside a 3 s gate, and one recording never shows two figures."""
    return f"{math.floor(float(value or 0.0) * 10 + 1e-9) / 10:.1f}"


def problems(quality: dict, min_speech: float) -> list[str]:
    """Human-readable reasons a voice is below the gates (empty when it passes)."""
    out = []
    net = float(quality.get("net_speech_s") or 0.0)
    if net < min_speech:
        out.append(f"only {seconds_shown(net)} s of net speech (gate {min_speech:g} s)")
    snr = quality.get("snr_frames_db", quality.get("snr_db"))
    if snr is not None and snr < MIN_SNR_DB:
        out.append(f"SNR {snr:.0f} dB (gate {MIN_SNR_DB:g} dB)")
    clip = float(quality.get("clipping_ratio") or 0.0)
    if clip > MAX_CLIPPING:
        out.append(f"{100 * clip:.1f} % of samples clipped (gate {100 * MAX_CLIPPING:g} %)")
    return out


def is_quality_warning(message: str) -> bool:
    """Whether an outcome's warning is one of :func:`problems` (short, noisy, clipped), not a note about the person."""
    return message.startswith("only ") and "of net speech" in message or message.startswith("SNR ") or "% of samples clipped" in message


def enrolment_warnings(quality: dict) -> list[str]:
    """Why a usable file makes a poor sample (short, noisy, clipped); it is enrolled all the same."""
    return problems(quality, ENROL_MIN_SPEECH_S)


def voiceprint_strength(pooled_net_speech: float) -> dict:
    """A person's voiceprint judged on the net speech pooled over all their samples."""
    weak = pooled_net_speech < PERSON_MIN_SPEECH_S
    return {"net_speech": round(pooled_net_speech, 2), "weak_voiceprint": weak,
            **({"needs": f"{PERSON_MIN_SPEECH_S - pooled_net_speech:.1f} s more net speech "
                         f"(pooled {pooled_net_speech:.1f} s, gate {PERSON_MIN_SPEECH_S:g} s)"} if weak else {})}


def query_warnings(quality: dict) -> list[str]:
    """Warnings to show beside a query's hits: a weak query makes weak evidence."""
    found = problems(quality, QUERY_WEAK_SPEECH_S)
    # The 99 %-energy bandwidth is stored and shown but not warned on: it reads 1-2 kHz for
    # ordinary 8 kHz calls and deep clean voices alike, so it cannot tell muffled audio apart.
    return [f"weak query: {p}" for p in found]


def comparison_warnings(quality: dict) -> list[str]:
    """Warnings beside one side of a 1:1 comparison: a weak recording makes weak evidence, whatever the LR."""
    return [f"weak recording: {p}" for p in problems(quality, QUERY_WEAK_SPEECH_S)]


def frame_snr_db(samples, sample_rate: int = 16000) -> float | None:
    """Speech-to-noise ratio from the spread of 20 ms frame energies (as NIST's STNR): loud frames
    (95th percentile) against the noise floor (15th percentile). Needs no VAD, so speech the VAD
    missed is not mistaken for noise; a recording with no pauses at all reads low. Frames are read
    in blocks, so a long call needs no full-length float64 copy."""
    import numpy as np

    x = np.asarray(samples)
    flen = int(0.02 * sample_rate)
    n = len(x) // flen
    if n < 10:
        return None
    block = 30_000  # frames per block
    e = np.concatenate([(x[a * flen : min(n, a + block) * flen].astype(np.float64).reshape(-1, flen) ** 2).mean(axis=1)
                        for a in range(0, n, block)]) + (1.0 / 32768.0) ** 2 / 12.0
    lo, hi = np.percentile(e, [15, 95])
    return round(float(np.clip(10 * np.log10(hi / lo), -20.0, 100.0)), 1)
