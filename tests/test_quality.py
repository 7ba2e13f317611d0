"""Quality gates: a poor file is enrolled with a warning, a person with too little pooled speech is weak, weak queries flagged."""

import pytest

from voiceprint import quality

GOOD = {"net_speech_s": 12.0, "snr_db": 30.0, "clipping_ratio": 0.0, "bandwidth_hz": 3400.0, "codec": "amr_nb"}


def test_a_good_voice_passes_every_gate():
    assert quality.problems(GOOD, quality.ENROL_MIN_SPEECH_S) == []
    assert quality.enrolment_warnings(GOOD) == []
    assert quality.query_warnings(GOOD) == []


@pytest.mark.parametrize("change, words", [
    ({"net_speech_s": 0.8 * quality.ENROL_MIN_SPEECH_S}, "net speech"),
    ({"snr_frames_db": quality.MIN_SNR_DB - 3}, "SNR"),
    ({"clipping_ratio": 5 * quality.MAX_CLIPPING}, "clipped"),
])
def test_a_file_below_a_gate_is_warned_on_not_refused(change, words):
    warnings = quality.enrolment_warnings(GOOD | change)
    assert len(warnings) == 1 and words in warnings[0]


def test_the_person_gate_is_on_pooled_speech():
    weak = quality.voiceprint_strength(quality.PERSON_MIN_SPEECH_S - 0.5)
    assert weak["weak_voiceprint"] and "0.5 s more" in weak["needs"]
    ok = quality.voiceprint_strength(quality.PERSON_MIN_SPEECH_S)
    assert not ok["weak_voiceprint"] and "needs" not in ok


def test_a_short_query_is_flagged_weak():
    warnings = quality.query_warnings(GOOD | {"net_speech_s": quality.QUERY_WEAK_SPEECH_S / 2})
    assert len(warnings) == 1 and warnings[0].startswith("weak query") and "net speech" in warnings[0]


def test_low_bandwidth_is_neither_refused_nor_warned_on():
    q = GOOD | {"bandwidth_hz": 1000.0}  # what an ordinary AMR-NB call reads
    assert quality.problems(q, quality.ENROL_MIN_SPEECH_S) == []
    assert quality.query_warnings(q) == []

def test_frame_snr_falls_as_noise_rises():
    import numpy as np

    rng = np.random.default_rng(0)
    t = np.arange(4 * 16000) / 16000
    speech = 0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 2 * t) > 0)  # bursts with pauses
    readings = [quality.frame_snr_db(speech + rng.normal(0, sd, len(t))) for sd in (0.001, 0.01, 0.05)]
    assert readings[0] > readings[1] > readings[2]


def test_net_speech_reads_the_same_on_the_page_in_the_report_and_in_the_warning():
    from voiceprint import quality
    from voiceprint.evidence import _gates as quality_gates

    assert quality.seconds_shown(1.564) == "1.5" and quality.seconds_shown(2.97) == "2.9" and quality.seconds_shown(3.0) == "3.0"
    [warning] = quality.problems({"net_speech_s": 1.564}, 3.0)
    assert warning.startswith("only 1.5 s of net speech")
    gate = quality_gates({"net_speech_s": 1.564})[0]
    assert gate["value"] == "1.5 s" and not gate["pass"]
