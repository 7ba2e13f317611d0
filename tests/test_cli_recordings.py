"""The four kinds of call an anti-fraud centre receives, from the CLI: a stereo call, a mono two-party
call, a one-voice call and a call with too little speech."""

import csv
import json

import audiogen
import numpy as np
import pytest

from voiceprint.cli import run

SHARED = audiogen.shared_data_dir()


@pytest.fixture(scope="module")
def calls(tmp_path_factory):
    d = tmp_path_factory.mktemp("calls")
    return {
        "stereo": audiogen.write_audio(d / "stereo_call.wav", audiogen.stereo_call(12.0), 16000),
        "one": audiogen.speech_file(d / "one_voice.wav", seconds=8.0, seed=4, f0=120),
        "short": audiogen.speech_file(d / "short.wav", seconds=1.8, seed=5, f0=130),
    }


@pytest.fixture
def library(tmp_path):
    lib = str(tmp_path / "lib")
    assert run(["init", "--library", lib]) == 0
    return lib


def _query(capsys, library, path):
    capsys.readouterr()
    assert run(["query", str(path), "--json", "--library", library]) == 0
    return json.loads(capsys.readouterr().out)


def test_stereo_call_each_channel_is_a_voice(calls, library, capsys):
    assert run(["enrol", str(calls["stereo"]), "--person", "A", "--library", library]) == 3
    assert "--channel" in capsys.readouterr().err
    assert run(["enrol", str(calls["stereo"]), "--person", "A", "--channel", "0", "--library", library]) == 0
    results = _query(capsys, library, calls["stereo"])
    assert [(r["channel"], r["voice"]) for r in results] == [(0, 0), (1, 0)]
    for r in results:
        assert r["segments"] and {"net_speech_s", "snr_db", "clipping_ratio", "bandwidth_hz", "codec"} <= r["quality"].keys()
        assert {"file", "hits", "warnings"} <= r.keys()


def test_one_voice_call_is_one_voice_and_enrols(calls, library, capsys):
    assert run(["enrol", str(calls["one"]), "--person", "B", "--library", library]) == 0
    [result] = _query(capsys, library, calls["one"])
    assert result["voice"] == 0 and not [w for w in result["warnings"] if w.startswith("weak")]
    assert [w for w in result["warnings"] if "itself enrolled" in w]  # the query is the enrolled file
    assert result["hits"][0]["person"]["name"] == "B"
    assert result["segments"][0][0] < 1.0 and result["segments"][-1][1] > 7.0


def test_a_short_file_enrols_with_a_warning_the_person_is_weak_and_a_query_says_so(calls, library, capsys):
    assert run(["enrol", str(calls["short"]), "--person", "C", "--library", library]) == 0
    err = capsys.readouterr().err
    assert "enrolled with a quality warning" in err and "weak voiceprint: C" in err and "more net speech" in err
    [result] = _query(capsys, library, calls["short"])
    assert any(w.startswith("weak query") and "net speech" in w for w in result["warnings"])
    assert result["hits"][0]["person"]["name"] == "C" and result["hits"][0]["weak_voiceprint"] is True
    assert run(["person", "show", "C", "--json", "--library", library]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["voiceprint"]["weak_voiceprint"] and card["voiceprint"]["net_speech"] < 3
    enrolled = [r for r in json.loads(_audit(capsys, library)) if r["action"] == "enrol"]
    assert enrolled and "net speech" in " ".join(enrolled[0]["detail"]["warnings"])


def test_a_person_pooling_enough_speech_is_not_weak(calls, library, capsys):
    assert run(["enrol", str(calls["short"]), "--person", "C", "--library", library]) == 0
    capsys.readouterr()
    assert run(["enrol", str(calls["one"]), "--person", "C", "--library", library, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["weak_persons"] == [] and out["summary"]["weak_voiceprints"] == 0


def _audit(capsys, library):
    capsys.readouterr()
    assert run(["audit", "--json", "--library", library]) == 0
    return capsys.readouterr().out


@pytest.mark.skipif(SHARED is None, reason="../shared/data (real speech) is not present")
def test_mono_two_party_call_is_diarised(tmp_path, library, capsys):
    from voiceprint import audio

    rows = list(csv.DictReader(open(SHARED / "speechocean762" / "manifest.csv")))
    spk = sorted({r["speaker"] for r in rows})
    a = [r for r in rows if r["speaker"] == spk[3]][:3]
    b = [r for r in rows if r["speaker"] == spk[40]][:3]
    parts = []
    for ra, rb in zip(a, b):
        for r in (ra, rb):
            parts += [audio.load_recording(SHARED / "speechocean762" / r["path"]).channels[0].samples,
                      np.zeros(4000, np.float32)]
    call = audiogen.write_audio(tmp_path / "mono_call.wav", np.concatenate(parts), 16000)
    results = _query(capsys, library, call)
    assert [r["voice"] for r in results] == [0, 1]
    assert all(r["channel"] == 0 and r["segments"] for r in results)
    first_start = min(s[0] for s in results[0]["segments"])
    assert first_start < min(s[0] for s in results[1]["segments"])  # voices ordered by who speaks first
    assert run(["enrol", str(call), "--person", "D", "--library", library]) == 3
    assert "--voice" in capsys.readouterr().err
    assert run(["enrol", str(call), "--person", "D", "--voice", "1", "--library", library]) == 0
    capsys.readouterr()
    # the other voice of the same file would be filed with voice 1's details (net speech, time ranges): refused, with the way
    assert run(["enrol", str(call), "--person", "E", "--voice", "0", "--library", library]) == 8
    assert "voice 1 of this recording is already enrolled" in capsys.readouterr().err
    assert run(["enrol", str(call), "--person", "D", "--voice", "1", "--library", library]) == 0  # the same voice: already


def _mono_two_party_call(path):
    """Two speechocean762 speakers taking turns in one mono file (three turns each)."""
    from voiceprint import audio

    rows = list(csv.DictReader(open(SHARED / "speechocean762" / "manifest.csv")))
    spk = sorted({r["speaker"] for r in rows})
    parts = []
    for ra, rb in zip([r for r in rows if r["speaker"] == spk[3]][:3], [r for r in rows if r["speaker"] == spk[40]][:3]):
        for r in (ra, rb):
            parts += [audio.load_recording(SHARED / "speechocean762" / r["path"]).channels[0].samples, np.zeros(4000, np.float32)]
    return audiogen.write_audio(path, np.concatenate(parts), 16000)


@pytest.mark.skipif(SHARED is None, reason="../shared/data (real speech) is not present")
def test_verify_compares_a_mono_two_party_call_voice_by_voice(tmp_path, library, capsys):
    call = _mono_two_party_call(tmp_path / "mono_call.wav")
    capsys.readouterr()
    assert run(["verify", str(call), str(call), "--json", "--library", library]) == 0
    result = json.loads(capsys.readouterr().out)
    pairs = result["comparisons"]
    assert sorted((p["a"]["voice"], p["b"]["voice"]) for p in pairs) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(p["a"]["segments"] and p["b"]["segments"] and p["a"]["channel"] == 0 for p in pairs)
    same = [p["cosine"] for p in pairs if p["a"]["voice"] == p["b"]["voice"]]
    other = [p["cosine"] for p in pairs if p["a"]["voice"] != p["b"]["voice"]]
    assert min(same) > max(other)
    assert result["a"]["voice"] == result["b"]["voice"] and result["score"] == max(p["score"] for p in pairs)
    assert run(["verify", str(call), str(call), "--library", library]) == 0  # the table: one row per pair
    assert "voice" in capsys.readouterr().out


def test_case_link_and_screen_from_the_cli(calls, library, capsys):
    assert run(["case", "add-recording", "AJ-1", str(calls["one"]), "--library", library]) == 7  # no case AJ-1 yet
    assert "case add" in capsys.readouterr().err
    for case in ("AJ-1", "AJ-2"):
        assert run(["case", "add", case, "--library", library]) == 0
    capsys.readouterr()
    assert run(["case", "add-recording", "AJ-1", str(calls["one"]), "--json", "--library", library]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["status"] == "unknown" and row["voiceprint"]
    assert run(["case", "add-recording", "AJ-2", str(calls["one"]), "--library", library]) == 0
    capsys.readouterr()
    assert run(["link", "--json", "--library", library]) == 0
    [cluster] = json.loads(capsys.readouterr().out)
    assert cluster["cases"] == ["AJ-1", "AJ-2"]
    assert cluster["same_recording_in_cases"] == [["AJ-1", "AJ-2"]]  # one file filed twice, not one voice heard twice
    assert "the same recording is filed in AJ-1 and AJ-2" in cluster["summary"]
    assert run(["link", "promote", str(cluster["cluster"]), "--name", "Voice X", "--library", library]) == 0
    capsys.readouterr()
    assert run(["screen", str(calls["one"]), "--json", "--library", library]) == 0
    [found] = json.loads(capsys.readouterr().out)
    assert found["person"] == "Voice X"


def _demo_two_party_call():
    """Two shipped (real) speechocean762 speakers taking turns in one mono signal, 16 kHz."""
    from voiceprint import audio
    from voiceprint.demo import DATA

    parts = []
    for a, b in zip(sorted((DATA / "so762_0024").glob("*.flac")), sorted((DATA / "so762_0567").glob("*.flac"))):
        for path in (a, b):
            parts += [audio.load_recording(path).channels[0].samples, np.zeros(4000, np.float32)]
    return np.concatenate(parts)


@pytest.mark.parametrize("layout", ["dual_mono_mp3", "left_only_wav"])
def test_a_two_party_call_in_one_channel_of_a_stereo_file_is_diarised(tmp_path, library, capsys, layout):
    """Recorders write a whole call twice (dual mono) or to the left channel only: the call's two voices are
    in one channel, so it is diarised as a mono recording, not read as one voice per channel."""
    mixed = _demo_two_party_call()
    second = 0.7 * mixed if layout == "dual_mono_mp3" else np.zeros_like(mixed)
    fmt, name = ("mp3", "call.mp3") if layout == "dual_mono_mp3" else ("wav_pcm16", "call.wav")
    call = audiogen.write_audio(tmp_path / name, np.stack([mixed, second]), 16000, fmt)
    results = _query(capsys, library, call)
    assert [(r["channel"], r["voice"]) for r in results] == [(0, 0), (0, 1)]
    assert run(["enrol", str(call), "--person", "D", "--library", library]) == 3
    err = capsys.readouterr().err
    assert "found by diarisation" in err and "--voice" in err
    assert run(["enrol", str(call), "--person", "D", "--voice", "0", "--library", library]) == 0
