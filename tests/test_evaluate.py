"""Evaluation metrics, trials and the `evaluate` pipeline on tiny real inputs."""

import csv
import subprocess
import sys
from pathlib import Path

import audiogen
import numpy as np
import pytest

from voiceprint import evaluate as ev
from voiceprint.errors import DataError

ROOT = Path(__file__).resolve().parent.parent


def _brute_eer(tar, non):
    """Reference EER by brute force over every threshold (min over t of max(miss, fa))."""
    best = 1.0
    for t in np.concatenate([tar, non, [np.inf]]):
        best = min(best, max(np.mean(tar < t), np.mean(non >= t)))
    return best


def test_eer_of_separated_and_identical_scores():
    assert ev.eer([2.0, 3.0], [0.0, 1.0]) == 0.0
    assert ev.eer([1.0, 1.0], [1.0, 1.0]) == pytest.approx(0.5, abs=0.01)


def _independent_checker():
    """scripts/check_scores.py, loaded from its file: an oracle that deliberately shares no code with the package."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_scores", ROOT / "scripts" / "check_scores.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_eer_agrees_with_brute_force_and_with_the_independent_script():
    rng = np.random.default_rng(0)
    tar, non = rng.normal(2, 1, 300), rng.normal(0, 1, 3000)
    e = ev.eer(tar, non)
    assert abs(e - _brute_eer(tar, non)) < 0.005
    equal_error_rate = _independent_checker().equal_error_rate

    assert abs(e - equal_error_rate(tar, non)) < 0.001
    assert 0.10 < e < 0.20  # two unit Gaussians 2 apart: EER = Phi(-1) = 0.159


def test_min_dcf_and_cllr_have_their_textbook_values():
    rng = np.random.default_rng(1)
    tar, non = rng.normal(2, 1, 500), rng.normal(-2, 1, 5000)
    assert 0 <= ev.min_dcf(tar, non) <= 1.0
    assert ev.cllr(np.zeros(10), np.zeros(10)) == pytest.approx(1.0)  # an uninformative system costs 1 bit
    true_llr_t, true_llr_n = 4 * tar, 4 * non  # equal-variance Gaussians 4 apart: llr = 4 * score
    c, cmin = ev.cllr(true_llr_t, true_llr_n), ev.cllr_min(tar, non)
    assert cmin <= c + 1e-9 and c < 0.1
    assert ev.cllr(10 * true_llr_t, 10 * true_llr_n) > c  # over-confident LRs cost more


def test_elub_bounds_shrink_when_validation_trials_mislead():
    rng = np.random.default_rng(0)
    tar, non = rng.normal(6, 2, 500), rng.normal(-6, 2, 20000)
    lo, hi = ev.elub(tar, non)
    # a perfect-looking set supports at most about ln(N) either way
    assert -np.log(501) - 1e-9 <= lo < -2 and 2 < hi <= np.log(20001) + 1e-9
    # non-targets with strong LLRs (e.g. one caller under two ids) lower the upper bound
    lo2, hi2 = ev.elub(tar, np.concatenate([non, np.full(20, 7.0)]))
    assert hi2 < hi and hi2 <= np.log(20020 / 20) and lo2 == pytest.approx(lo, abs=0.05)
    assert ev.elub([], non) == (float("-inf"), float("inf"))


def test_pav_llrs_are_monotone_in_the_score():
    rng = np.random.default_rng(2)
    tar, non = rng.normal(1, 1, 200), rng.normal(0, 1, 400)
    lt, ln = ev.pav_llr(tar, non)
    s, llr = np.concatenate([tar, non]), np.concatenate([lt, ln])
    assert np.all(np.diff(llr[np.argsort(s, kind="mergesort")]) >= -1e-9)


def test_speaker_split_is_deterministic_and_balanced():
    names = [f"spk{i}" for i in range(400)]
    split = [ev.split_of(n) for n in names]
    assert split == [ev.split_of(n) for n in names]
    assert 150 < split.count("dev") < 250


def _items(n_spk=4, per=3, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_spk, dim))
    items = []
    for s in range(n_spk):
        for k in range(per):
            v = centres[s] + 0.1 * rng.normal(size=dim)
            items.append(ev.Item(f"s{s}_{k}.wav", f"s{s}", "toy", (v / np.linalg.norm(v)).astype(np.float32),
                                 net_speech=3.0 + k, source_rate=16000, codec="flac"))
    return items


def test_trials_enrol_the_first_k_and_score_the_rest_against_everyone():
    items = _items()
    ts = ev.build_trials(items, enrol=1, condition="clean")
    assert ts.speakers == ["s0", "s1", "s2", "s3"] and len(ts.tests) == 8
    assert ts.cosine.shape == (4, 8) and ts.target.sum() == 8
    row = ev.metrics(ts)
    assert row["top1_baseline"] == 1.0 and row["eer_baseline"] == 0.0
    rows = ev.condition_rows(ts)
    assert {r["subset"] for r in rows} >= {"all", "speech 2-5s"}


def test_manifest_needs_path_and_speaker(tmp_path):
    bad = tmp_path / "m.csv"
    bad.write_text("file,who\na.wav,x\n")
    with pytest.raises(DataError, match="path,speaker"):
        ev.read_eval_manifest(bad)


@pytest.mark.parametrize("content", [b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00" + bytes(64), bytes(range(128, 256)) * 4])
def test_an_audio_or_binary_file_as_the_manifest_is_a_data_error(tmp_path, content):
    bad = tmp_path / "clip.wav"
    bad.write_bytes(content)
    with pytest.raises(DataError, match=r"clip.wav: not a text table \(CSV/TSV/Parquet\)"):
        ev.read_eval_manifest(bad)


@pytest.fixture(scope="module")
def toy_corpus(tmp_path_factory):
    """Three synthetic 'speakers' (different pitch), three 3 s clips each, and their manifest."""
    d = tmp_path_factory.mktemp("corpus") / "toy"
    d.mkdir()
    rows = []
    for s, f0 in enumerate((100, 160, 230)):
        for k in range(3):
            p = audiogen.speech_file(d / f"s{s}_{k}.wav", seconds=3.0, seed=10 * s + k, f0=f0)
            rows.append((p.name, f"toy_s{s}"))
    with open(d / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "speaker"])
        w.writerows(rows)
    return d / "manifest.csv"


def test_options_that_leave_nothing_to_test_are_refused_before_any_audio_is_read(toy_corpus, capsys):
    from voiceprint.cli import run

    with pytest.raises(DataError, match="no speaker has more than 100 recording"):
        ev.evaluate([toy_corpus], enrol=100, use_backend=False)
    for bad in (["--per-speaker", "-2"], ["--per-speaker", "0"], ["--enrol", "0"], ["--enrol", "2", "--per-speaker", "2"],
                ["--test-speech", "-5"], ["--test-speech", "0"], ["--min-speech", "-1"]):
        assert run(["evaluate", str(toy_corpus), *bad]) == 2, bad
    assert run(["evaluate", str(toy_corpus), "--enrol", "100"]) == 8
    assert "lower --enrol" in capsys.readouterr().err


def test_evaluate_end_to_end_writes_trials_that_reproduce_the_eer(toy_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("VOICEPRINT_CACHE", str(tmp_path / "cache.sqlite"))
    result = ev.evaluate([toy_corpus], enrol=1, use_backend=False)
    [ts] = result.trial_sets
    assert len(ts.speakers) == 3 and len(ts.tests) == 6 and not result.refused
    out = tmp_path / "trials.csv"
    assert ev.write_scores(out, result.trial_sets) == 18
    assert out.stat().st_mode & 0o777 == 0o600 and not list(tmp_path.glob(".trials.csv.*"))  # private, whole
    rows = list(csv.DictReader(open(out)))
    assert {"enrol_speaker", "test_path", "score", "llr"} <= set(rows[0])
    tar = np.array([float(r["score"]) for r in rows if r["enrol_speaker"] == r["test_speaker"]])
    non = np.array([float(r["score"]) for r in rows if r["enrol_speaker"] != r["test_speaker"]])
    assert ev.eer(tar, non) == pytest.approx(result.rows[0]["eer_baseline"], abs=1e-6)
    # the second run reads every vector from the cache
    again = ev.evaluate([toy_corpus], enrol=1, use_backend=False)
    assert np.allclose(again.trial_sets[0].cosine, ts.cosine)
    assert ev.plot(result.trial_sets, tmp_path / "plots")[0].stat().st_size > 1000


def test_tests_cut_to_a_short_sample_keep_their_enrolments_whole(toy_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("VOICEPRINT_CACHE", str(tmp_path / "cache.sqlite"))
    whole = ev.evaluate([toy_corpus], enrol=1, use_backend=False).trial_sets[0]
    cut = ev.evaluate([toy_corpus], enrol=1, use_backend=False, test_speech=0.8, min_speech=0.5).trial_sets[0]
    assert len(cut.tests) == len(whole.tests) == 6 and "tests cut to 0.8 s" in cut.condition
    assert all(t.net_speech <= 0.8 for t in cut.tests) and min(t.net_speech for t in whole.tests) > 1.0
    assert np.allclose(cut.enrol_net, whole.enrol_net)  # the enrolments are embedded whole
    assert not np.allclose(cut.cosine, whole.cosine)


def test_check_scores_script_runs_on_a_trial_file(tmp_path):
    out = tmp_path / "t.csv"
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(ev.SCORE_COLUMNS)
        for i, (spk, score) in enumerate([("a", 0.9), ("b", 0.1), ("a", 0.2), ("b", 0.8)]):
            test_spk = "a" if i < 2 else "b"
            w.writerow(["c", "clean", spk, f"x{i}.wav", test_spk, int(spk == test_spk), score, score, "", 3.0])
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_scores.py"), str(out)],
                         capture_output=True, text=True, check=True)
    assert "EER 0.000 %" in res.stdout


def test_a_fusion_model_is_evaluated_from_its_components_vectors(toy_corpus, tmp_path, monkeypatch):
    """evaluate composes a fusion's voiceprints from each component's (cached) ones: the same vector
    the library's embedder makes from the same speech."""
    from test_embedding import _fusion_models

    from voiceprint import audio
    from voiceprint.embedding import Embedder, load_spec

    monkeypatch.setenv("VOICEPRINT_CACHE", str(tmp_path / "cache.sqlite"))
    _fusion_models(tmp_path, monkeypatch, w=0.6)
    items = ev.embed_items(ev.read_eval_manifest(toy_corpus)[:2], "fused")
    for item in items:
        assert item.vector.shape == (448,) and not item.refused and item.net_speech > 1
        speech, _ = audio.prepare_speech(audio.load_recording(item.path, channels=0).channels[0], min_speech=0.3)
        np.testing.assert_allclose(item.vector, Embedder(load_spec("fused")).embed(speech), atol=1e-5)
    # the components' vectors are now cached under their own models
    again = ev.embed_items(ev.read_eval_manifest(toy_corpus)[:2], "ecapa-voxceleb")
    assert all(a.vector.shape == (192,) for a in again)


def _train_backend():
    from voiceprint import fitting

    return fitting


def test_a_cross_channel_development_set_enrols_with_its_native_recordings():
    tb = _train_backend()
    native = [ev.Item(f"{s}_{k}.flac", s, "c", source_rate=16000, codec="flac") for s in "ab" for k in range(3)]
    phone = [ev.Item(f"{s}_{k}.amr", s, "c", source_rate=8000, codec="amr_nb") for s in "ab" for k in range(4)]
    assert tb.enrol_counts("clean", native + phone) == tb.ENROL
    three = [i for s in "ab" for i in [*[n for n in native if n.speaker == s], *[p for p in phone if p.speaker == s]]]
    assert tb.enrol_counts("clean>amrnb", three) == (3,)


def test_backend_calibration_is_judged_on_speakers_it_was_not_fitted_on():
    """``train_backend.calibrate``: every cross-validated LLR comes from a calibration fitted on the
    other fold, so a fold whose scores mean something else is calibrated badly there."""
    tb = _train_backend()
    rng = np.random.default_rng(3)
    n = 4000
    label = rng.random(n) < 0.2
    fold = rng.integers(0, 2, n)
    # fold 1's scores run 3 higher for everyone: a calibration fitted on fold 0 misreads them
    score = np.where(label, rng.normal(3, 1, n), rng.normal(-3, 1, n)) + 3.0 * fold
    trials = {("c", "clean"): {"score": score, "cosine": score, "label": label.astype(float),
                               "net_e": np.full(n, 10.0), "net_t": np.full(n, 10.0),
                               "pair": np.full(n, "wideband"), "fold": fold}}
    calibration, cv_llr, limits = tb.calibrate(trials, "none")
    in_sample = calibration["wideband"][0] * score + calibration["wideband"][1]
    cv_cost = ev.cllr(cv_llr[label], cv_llr[~label])
    assert cv_cost > ev.cllr(in_sample[label], in_sample[~label]) + 0.05
    lo, hi = limits["wideband"]
    assert lo < 0 < hi


def test_a_call_saved_at_a_wideband_rate_is_evaluated_as_the_library_reads_it_narrowband(tmp_path, monkeypatch):
    """`evaluate` and the back-end fit took the channel from the file's rate while the library tells it by the sound: a
    call saved as a 16 kHz WAV was scored through the wideband calibration in evaluation only. Vectors cached before
    the channel was stored get it from the sound once."""
    from scipy.signal import resample_poly

    from voiceprint.audio import load_recording
    from voiceprint.cache import EmbeddingCache, cache_key
    from voiceprint.embedding import load_spec
    from voiceprint.telephone import to_phone_band
    from voiceprint.voices import file_sha256

    monkeypatch.setenv("VOICEPRINT_CACHE", str(tmp_path / "cache.sqlite"))
    wide = tmp_path / "wide.wav"
    audiogen.speech_file(wide, seconds=3.0, seed=1, f0=140)
    signal = load_recording(wide, channels=0).channels[0].samples
    call = tmp_path / "call16.wav"
    audiogen.write_float_wav(call, resample_poly(to_phone_band(signal, 16000), 2, 1).astype(np.float32), 16000)
    items = [ev.Item(str(wide), "a", "toy"), ev.Item(str(call), "a", "toy")]
    ev.embed_items(items)
    assert [(i.source_rate, i.domain) for i in items] == [(16000, "wideband"), (16000, "narrowband")]
    key = cache_key(load_spec(None).fingerprint, file_sha256(call), 0, "")
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    vector, info = cache.get(key)
    del info["channel_rate"]
    cache.put(key, vector, info)  # as cached by an older version
    cache.close()
    again = ev.embed_items([ev.Item(str(call), "a", "toy")])
    assert again[0].domain == "narrowband" and np.allclose(again[0].vector, vector)
