"""The scoring back end: ENFSI scale, calibration, AS-norm, false hits, persistence, library use."""

import json
import shutil

import audiogen
import numpy as np
import pytest

from voiceprint import scoring
from voiceprint.embedding import models_dir


@pytest.mark.parametrize("lr,words", [
    (5, "weak support for same speaker"), (50, "moderate support for same speaker"),
    (500, "moderately strong support for same speaker"), (5e3, "strong support for same speaker"),
    (5e5, "very strong support for same speaker"), (5e7, "extremely strong support for same speaker"),
    (1 / 50, "moderate support for different speakers"), (1.0, "no appreciable support for either proposition"),
    (1.55, "no appreciable support for either proposition"), (1 / 1.9, "no appreciable support for either proposition"),
    (2.5, "weak support for same speaker"), (1 / 2.5, "weak support for different speakers"),
])
def test_enfsi_verbal_scale(lr, words):
    assert scoring.verbal(np.log10(lr)) == words


def test_domain_follows_source_rate_and_codec():
    assert scoring.domain_of(8000, "flac") == "narrowband"
    assert scoring.domain_of(16000, "amr_nb") == "narrowband"  # 8 kHz codec in a resampled container
    assert scoring.domain_of(16000, "adpcm_g722") == "wideband"  # G.722 is 16 kHz "HD voice", not a telephone-band codec
    assert scoring.domain_of(16000, "flac") == "wideband"


def test_logistic_calibration_recovers_the_true_llr():
    rng = np.random.default_rng(0)
    tar, non = rng.normal(2, 1, 2000), rng.normal(-2, 1, 20000)
    s = np.concatenate([tar, non])
    y = np.concatenate([np.ones(len(tar), bool), np.zeros(len(non), bool)])
    w = scoring.fit_logistic(s[:, None], y)
    assert w[0] == pytest.approx(4.0, rel=0.1) and abs(w[1]) < 0.3  # true llr = 4 * score


def _toy_backend(dim=8, seed=0):
    rng = np.random.default_rng(seed)
    cohort = rng.normal(size=(300, dim))
    cohort /= np.linalg.norm(cohort, axis=1, keepdims=True)
    non = np.sort(rng.normal(0, 1, 5000))
    return scoring.Backend({"wideband": np.zeros(dim), "narrowband": np.full(dim, 0.1)}, np.eye(dim), cohort, 50,
                           {"all": np.array([2.0, 0.0, -3.0])}, 8.0, non, {"fitted_at": "test"})


def test_a_short_test_is_bounded_by_the_trials_of_its_own_duration_inside_its_pair():
    """The ELUB bounds were per channel pair: a 1.5 s call could be reported as strongly as a 5 s one."""
    b = _toy_backend()
    b.llr_limit = {"all": [-4.0, 8.0], "narrowband": [-4.0, 8.0], "narrowband|<2s": [-3.0, 5.0], "narrowband|2-5s": [-5.0, 9.0]}
    b.calibration["narrowband"] = b.calibration["all"]  # as fitted: a pair has bounds where it has a calibration
    strong = np.array([10.0, 10.0, 10.0])
    got = b.llr(strong, 30.0, np.array([1.5, 3.0, 12.0]), "narrowband")
    assert got.tolist() == [5.0, 8.0, 8.0]  # a bucket only tightens its pair's bounds
    assert b.llr(-strong, 30.0, 1.5, "narrowband").tolist() == [-3.0] * 3
    assert b.llr(strong, None, None, "narrowband").tolist() == [8.0] * 3  # no duration: the pair's bounds
    assert b.llr_limits("narrowband", 1.5) == (-3.0, 5.0) and b.llr_limits("narrowband", 3.0) == (-4.0, 8.0)
    assert b.llr_limits("wideband", 1.5) == (-4.0, 8.0)  # a pair without bounds of its own: "all"
    ev = scoring.evidence(b, 10.0, 100, 30.0, 1.5, "narrowband")
    assert ev["at_bound"] == "upper" and ev["log10_lr"] == round(5.0 / np.log(10), 3)
    both = scoring.evidence(b, 10.0, 100, 1.5, 3.0, "narrowband", symmetric=True)  # in either role, the shorter side's bounds
    assert both["at_bound"] == "upper" and both["llr"] == 5.0  # the mean of the two roles (5 and 8) claimed more


def test_a_long_recording_is_scored_as_long_as_the_calibration_has_seen_not_extrapolated():
    """A negative score x log(test seconds) weight, extrapolated from 8 s of development speech to a 30-minute call,
    took an enrolled speaker's LR down to "weak support"."""
    b = _toy_backend()
    b.quality = "durations"
    b.calibration = {"all": np.array([30.0, 0.0, 2.0, 0.0, -7.0, -5.0])}
    b.llr_limit = {"all": [-50.0, 50.0]}
    b.meta["duration_cap"] = {"all": [20.0, 8.0]}
    at_cap, longer, call = b.llr(0.9, 10.0, np.array([8.0, 60.0, 1800.0]))
    assert longer == call == at_cap
    assert b.llr(0.9, 10.0, 4.0) != at_cap  # inside the development range the durations still count
    del b.meta["duration_cap"]  # a back end fitted before the cap: the old range (30 s), where this LR had fallen
    assert b.llr(0.9, 10.0, 1800.0) == b.llr(0.9, 10.0, 30.0) < at_cap - 1.0


def test_false_hits_are_read_from_impostors_of_the_same_channel_pair_and_duration(tmp_path):
    """Pooled impostors (mostly short wideband sentences, which score low) made a long telephone stranger's hit read as
    one in thousands while its LR said "different speakers"."""
    b = _toy_backend()
    rng = np.random.default_rng(5)
    b.pair_nontarget_scores = {"narrowband": np.sort(rng.normal(0.0, 1, 4000)), "narrowband|>=10s": np.sort(rng.normal(2.0, 1, 800))}
    b.meta["nontarget_trials_by_pair"] = {"narrowband": 4000, "narrowband|>=10s": 800}
    short, long_call = b.false_alarm_rate(2.0, "narrowband", 3.0), b.false_alarm_rate(2.0, "narrowband", 12.0)
    assert short < 0.05 < 0.3 < long_call  # about half the long calls' impostors score 2.0 or more
    assert b.false_alarm_rate(2.0, "wideband", 12.0) == b.false_alarm_rate(2.0)  # no scores of its own: all pairs pooled
    assert b.expected_false_hits(2.0, 100, "narrowband", 12.0) == pytest.approx(100 * long_call)
    b.calibration["narrowband"] = b.calibration["all"]
    assert scoring.evidence(b, 2.0, 100, 10.0, 12.0, "narrowband")["expected_false_hits"] == pytest.approx(100 * long_call, rel=1e-2)
    b.save(tmp_path / "backend")
    again = scoring.Backend.load(tmp_path / "backend")
    assert sorted(again.pair_nontarget_scores) == ["narrowband", "narrowband|>=10s"]
    assert again.false_alarm_rate(2.0, "narrowband", 12.0) == pytest.approx(long_call, rel=1e-5)


def test_duration_calibration_recovers_a_score_weight_that_grows_with_speech():
    """Trials whose true LLR is (1 + log test seconds) * score: only the ``durations`` quality
    measure can express it, and fitted on such trials it gives the right LLR at both ends."""
    rng = np.random.default_rng(1)
    n = 40000
    net_e, net_t = rng.uniform(1, 30, n), rng.uniform(1, 30, n)
    y = rng.random(n) < 0.2
    half = (1.0 + np.log(net_t)) / 2  # scores N(+-half, 1): the true llr is 2 * half * score
    s = np.where(y, rng.normal(half, 1), rng.normal(-half, 1))
    b = _toy_backend()
    b.llr_limit = {"all": (-50.0, 50.0)}
    errors = {}
    for quality in ("durations", "min_duration"):
        feats = scoring.calibration_features(s, net_e, net_t, quality)
        b.quality, b.calibration = quality, {"all": scoring.fit_logistic(feats, y)}
        errors[quality] = max(abs(b.llr(1.0, 10.0, sec) - (1 + np.log(sec))) for sec in (1.0, 25.0))
    assert errors["durations"] < 0.15
    assert errors["min_duration"] > 0.5  # one weight for the score, whatever the speech behind it


def test_calibration_weights_must_match_the_quality_measure(tmp_path):
    b = _toy_backend()  # fitted with the older two-feature form
    assert b.llr(1.0, 5.0, 5.0) == pytest.approx(-1.0)
    b.quality = "durations"
    with pytest.raises(scoring.ModelError, match="refit"):
        b.llr(1.0, 5.0, 5.0)
    b.calibration = {"all": np.array([1.0, 0.0, 0.0, 0.0, 0.0, -1.0])}
    b.save(tmp_path)
    again = scoring.Backend.load(tmp_path)
    assert again.quality == "durations" and again.llr(2.0, 5.0, 5.0) == pytest.approx(1.0)
    # written whole through temporary files (none left), readable by everyone who loads the model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backend.json", "backend.npz"]
    assert {(tmp_path / n).stat().st_mode & 0o777 for n in ("backend.json", "backend.npz")} == {0o644}
    with pytest.raises(scoring.ModelError, match="quality measure"):
        scoring.calibration_features(1.0, 5.0, 5.0, "loudness")


def test_as_norm_puts_impostor_scores_near_zero_and_a_match_far_above():
    b = _toy_backend()
    rng = np.random.default_rng(5)
    v = rng.normal(size=8)
    impostors = b.project(rng.normal(size=(200, 8)), "wideband")
    model = b.model(v[None, :], ["wideband"])
    same = b.project(v + 0.05 * rng.normal(size=8), "wideband")
    s_imp, s_same = b.score(model, impostors)[0], b.score(model, same)[0, 0]
    assert s_same > np.percentile(s_imp, 99.5)
    b.top_n = len(b.cohort)  # the whole cohort: plain symmetric S-norm, impostors centred on 0
    assert abs(np.median(b.score(model, impostors)[0])) < 0.5


def test_a_back_end_without_as_norm_scores_the_plain_cosine_of_the_projections(tmp_path):
    b = _toy_backend()
    b.top_n, b.cohort = 0, np.zeros((0, 8))  # what `backend fit` saves when top_n 0 wins
    rng = np.random.default_rng(6)
    model, tests = b.model(rng.normal(size=(2, 8)), ["wideband"] * 2), b.project(rng.normal(size=(5, 8)), "narrowband")
    assert np.allclose(b.score(model, tests)[0], tests @ model)
    b.save(tmp_path)
    again = scoring.Backend.load(tmp_path)
    assert again.top_n == 0 and again.cohort.shape == (0, 8)
    assert np.allclose(again.score(model, tests), b.score(model, tests))


def test_a_back_end_says_what_its_score_is_and_what_it_was_fitted_on():
    """The evidence report's method section reads these: no claim of AS-norm where there is none."""
    b = _toy_backend()
    b.meta.update(corpora={"so/clean": 30, "so/amrnb": 28, "so/clean>amrnb": 30}, speakers_hashed=["a", "b", "c"],
                  cohort="200 vectors of development speakers")
    assert b.score_meaning().startswith("AS-norm of the cosine")
    assert b.calibration_data() == ("58 recordings of 3 development speakers (so/clean 30, so/amrnb 28); "
                                    "AS-norm cohort: 200 vectors of development speakers")
    b.top_n, b.cohort = 0, np.zeros((0, 8))
    assert b.score_meaning().endswith("(no AS-norm)") and "cohort" not in b.calibration_data()


def test_expected_false_hits_fall_with_the_score_and_grow_with_the_library():
    b = _toy_backend()
    scores = np.array([-1.0, 0.0, 2.0, 4.0, 8.0])
    efh = b.expected_false_hits(scores, 1000)
    n = len(b.nontarget_scores)
    assert np.all(np.diff(efh) <= 0) and efh[0] > 500
    # beyond every development impostor the rate is not extrapolated below what n trials resolve (3/n): it was 1e-9
    assert efh[-1] == pytest.approx(1000 * 3 / n) and efh[-2] == efh[-1]
    b.meta["nontarget_trials"] = 100 * n  # the kept scores are quantiles of more trials: they resolve lower rates
    assert b.expected_false_hits(8.0, 1000) == pytest.approx(1000 * 3 / (100 * n))
    assert b.expected_false_hits(2.0, 100_000) == pytest.approx(100 * b.expected_false_hits(2.0, 1000))
    assert np.all(np.abs(b.llr(np.array([-100.0, 100.0]))) <= 8.0)  # capped
    b.calibration["cross"] = np.array([1.0, 0.0, -3.0])  # a pair with its own calibration; others use "all"
    assert np.allclose(b.llr(np.array([1.0, 1.0]), pair=np.array(["cross", "narrowband"])), [-2.0, -1.0])


def test_llr_bounds_apply_per_channel_pair_and_survive_a_round_trip(tmp_path):
    b = _toy_backend()
    b.llr_limit = {"all": (-8.0, 8.0), "narrowband": (-5.0, 6.5)}
    huge = np.array([100.0, 100.0, -100.0])
    assert np.allclose(b.llr(huge, pair=np.array(["narrowband", "wideband", "narrowband"])), [6.5, 8.0, -5.0])
    b.save(tmp_path)
    again = scoring.Backend.load(tmp_path)
    assert again.llr_limits("narrowband") == (-5.0, 6.5) and again.llr_limits("cross") == (-8.0, 8.0)


def test_backend_round_trips_through_disk_and_refuses_altered_files(tmp_path):
    b = _toy_backend()
    b.save(tmp_path)
    again = scoring.Backend.load(tmp_path)
    v = np.random.default_rng(1).normal(size=(3, 8))
    assert np.allclose(b.project(v, "narrowband"), again.project(v, "narrowband"))
    assert json.loads((tmp_path / "backend.json").read_text())["fitted_at"] == "test"
    with open(tmp_path / "backend.npz", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(Exception, match="checksum"):
        scoring.Backend.load(tmp_path)


def test_evidence_is_null_without_a_back_end():
    assert scoring.evidence(None, 0.7, 100) == {"llr": None, "log10_lr": None, "verbal": None, "expected_false_hits": None,
                                                "calibration": None, "at_bound": None}


def test_evidence_names_its_calibration_and_says_when_the_lr_sits_at_its_bound():
    """An LR at the ELUB bound is "at least" that value: the report must not present it as measured."""
    backend = scoring.load_backend("campplus-zh-en")
    lo, hi = backend.llr_limits("cross")
    top = scoring.evidence(backend, 5.0, 10, 10.0, 10.0, "cross")
    assert top["calibration"] == "cross" and top["at_bound"] == "upper" and top["llr"] == pytest.approx(hi, abs=1e-3)
    bottom = scoring.evidence(backend, -5.0, 10, 10.0, 10.0, "cross")
    assert bottom["at_bound"] == "lower" and bottom["llr"] == pytest.approx(lo, abs=1e-3)
    lo, hi = backend.llr_limits("wideband")
    inside = [e for e in (scoring.evidence(backend, float(x), 10, 10.0, 10.0, "wideband") for x in np.linspace(-1, 1, 201))
              if lo + 0.01 < e["llr"] < hi - 0.01]
    assert inside and all(e["at_bound"] is None for e in inside)


@pytest.fixture
def model_with_backend(tmp_path, monkeypatch):
    """The real default model registered in a temporary models folder, with a toy back end fitted on
    synthetic voices; yields the model name."""
    from voiceprint.embedding import DEFAULT_MODEL

    home = tmp_path / "models" / DEFAULT_MODEL
    shutil.copytree(models_dir() / DEFAULT_MODEL, home, ignore=shutil.ignore_patterns("backend"))  # model.json and any local files
    monkeypatch.setenv("VOICEPRINT_MODELS", str(tmp_path / "models"))
    rng = np.random.default_rng(3)
    cohort = rng.normal(size=(100, 192))
    cohort /= np.linalg.norm(cohort, axis=1, keepdims=True)
    b = scoring.Backend({"wideband": np.zeros(192), "narrowband": np.zeros(192)}, np.eye(192), cohort, 20,
                        {"all": np.array([0.05, 0.2, -1.0]), "wideband": np.array([0.1, 0.0, -0.5])}, 50.0,
                        np.sort(rng.normal(0, 1, 2000)), {"fitted_at": "test"})
    b.save(home / "backend")
    scoring._LOADED.clear()
    yield DEFAULT_MODEL
    scoring._LOADED.clear()


def test_library_hits_carry_llr_and_expected_false_hits_with_a_back_end(tmp_path, model_with_backend):
    from voiceprint.library import Library

    a1 = audiogen.speech_file(tmp_path / "a1.wav", seed=1, f0=110)
    b1 = audiogen.speech_file(tmp_path / "b1.wav", seed=3, f0=210)
    with Library.create(tmp_path / "lib", operator="tester") as lib:
        lib.enrol(a1, person="Zhang San")
        lib.enrol(b1, person="Li Si")
        [result] = lib.query(a1, top=2)
        assert result["kind"] == "investigative lead" and "AS-norm of the cosine" in result["scoring"]
        top, second = result["hits"]
        assert top["person"]["name"] == "Zhang San" and top["score"] > second["score"]
        assert top["cosine"] == pytest.approx(1.0, abs=1e-3)
        assert top["llr"] > second["llr"] and top["log10_lr"] == pytest.approx(top["llr"] / np.log(10), abs=1e-3)
        assert "same speaker" in top["verbal"] and top["expected_false_hits"] <= second["expected_false_hits"]
        v = lib.verify(a1, b1)
        assert v["kind"] == "evaluative comparison" and v["llr"] is not None and v["verbal"]


def test_library_without_a_back_end_reports_the_raw_cosine(tmp_path, monkeypatch):
    from voiceprint.embedding import DEFAULT_MODEL
    from voiceprint.library import Library

    home = tmp_path / "models" / DEFAULT_MODEL
    shutil.copytree(models_dir() / DEFAULT_MODEL, home, ignore=shutil.ignore_patterns("backend"))  # model.json and any local files
    monkeypatch.setenv("VOICEPRINT_MODELS", str(tmp_path / "models"))
    scoring._LOADED.clear()
    a1 = audiogen.speech_file(tmp_path / "a1.wav", seed=1, f0=110)
    with Library.create(tmp_path / "lib", operator="tester") as lib:
        lib.enrol(a1, person="Zhang San")
        [result] = lib.query(a1, top=1)
        hit = result["hits"][0]
        assert hit["score"] == hit["cosine"] and hit["llr"] is None and hit["expected_false_hits"] is None
        assert "raw cosine" in result["scoring"]
    scoring._LOADED.clear()


def test_a_report_prints_the_likelihood_ratio_as_a_number_a_court_reads():
    assert scoring.lr_shown(3.969) == "9,311" and scoring.lr_shown(0.3711) == "2.35" and scoring.lr_shown(2.0) == "100"
    assert scoring.lr_shown(-2.202) == "1/159" and scoring.lr_shown(-0.361) == "1/2.3" and scoring.lr_shown(None) == "n/a"
    assert "e+" not in scoring.lr_shown(7.5)
