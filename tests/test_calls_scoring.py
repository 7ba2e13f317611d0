"""Scorers: layout recognition, rule score, supervised model with tuned threshold, save/load, leads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from voiceprint.calls.leads import build_leads, reverse_strike, score_table
from voiceprint.calls.scoring import load_feature_table, load_model, rule_score, train_model
from voiceprint.errors import DataError

BTG_COLUMNS = ["phone_no_m", "opposite_count", "opposite_unique", "voccalltype1", "imeis", "voc_calltype1", "city_name_call",
               "county_name_call", "phone2opposite_mean", "phone2opposite_median", "phone2opposite_max", "call_dur_mean",
               "county_name_nunique", "voc_hour_nunique", "voc_day_nunique", "sms_count", "busi_count", "arpu_mean", "label"]


def btg_like(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """A BTG-layout table whose fraud rows follow the published normal-vs-fraud medians."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    f = y == 1
    uniq = np.where(f, rng.lognormal(np.log(139), 0.6, n), rng.lognormal(np.log(61), 0.6, n)).round() + 1
    cpo = np.where(f, rng.lognormal(np.log(1.2), 0.3, n), rng.lognormal(np.log(6.9), 0.5, n))
    df = pd.DataFrame({
        "phone_no_m": [f"{i:0128x}" for i in range(n)], "opposite_unique": uniq, "phone2opposite_mean": cpo,
        "opposite_count": (uniq * cpo).round(), "voc_calltype1": np.clip(np.where(f, rng.normal(0.95, 0.05, n), rng.normal(0.5, 0.15, n)), 0, 1),
        "imeis": np.where(f, rng.integers(1, 4, n), rng.integers(1, 2, n)), "county_name_call": np.where(f, 1, rng.integers(1, 6, n)),
        "county_name_nunique": np.where(f, 1, rng.integers(2, 8, n)), "voc_hour_nunique": np.where(f, rng.integers(6, 14, n), rng.integers(14, 24, n)),
        "voc_day_nunique": np.where(f, rng.integers(1, 12, n), rng.integers(20, 32, n)), "sms_count": rng.integers(0, 2000, n),
        "busi_count": np.where(f, rng.integers(0, 40, n), rng.integers(60, 300, n)), "arpu_mean": np.where(f, np.nan, rng.normal(60, 20, n)),
        "label": y,
    })
    df["voccalltype1"] = df.opposite_count * df.voc_calltype1
    df["phone2opposite_median"], df["phone2opposite_max"], df["call_dur_mean"], df["city_name_call"] = 1.0, cpo * 3, 80.0, 1
    return df[BTG_COLUMNS]


@pytest.fixture(scope="module")
def btg_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("btg") / "btg_gatcobo_user_features.csv.gz"
    btg_like().to_csv(path, index=False)
    return path


def test_btg_layout_is_recognised_without_options(btg_file):
    table = load_feature_table(btg_file)
    assert table.layouts == ["btg"] and len(table.frame) == 300 and table.labels.sum() > 50
    assert {"distinct_others", "out_share", "calls_per_other", "days_of_month"} <= set(table.canonical.columns)
    assert "label" not in table.frame.columns


def test_leaky_columns_are_dropped_from_haoren_tables(tmp_path):
    cols = {"phone_no_m": ["a", "b"], "label": [0, 1], "voc_user_cnt": [3, 9], "interactive_call_user_cnt": [2, 0],
            "call_activate_days_diff": [1, 2], "idcard_cnt": [1, 4], "fake_ratio": [0.0, 1.0], "black_app_cnt": [0, 3]}
    path = tmp_path / "haoren.csv"
    pd.DataFrame(cols).to_csv(path, index=False)
    table = load_feature_table(path)
    assert table.layouts == ["haoren_v20200708"]
    assert "fake_ratio" not in table.frame.columns and "black_app_cnt" not in table.frame.columns
    assert table.canonical.loc["b", "two_way_share"] == 0 and table.canonical.loc["b", "numbers_on_id"] == 4


def test_unknown_layout_and_empty_table_are_data_errors(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(DataError, match="--mapping"):
        load_feature_table(tmp_path / "x.csv")
    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_feature_table(tmp_path / "e.csv")


def test_rule_score_ranks_fraud_first_without_labels(btg_file):
    from sklearn.metrics import roc_auc_score

    table = load_feature_table(btg_file)
    score, signals = rule_score(table.canonical)
    assert ((0 <= score) & (score <= 1)).all()
    assert roc_auc_score(table.labels, score) > 0.9


def test_model_trains_tunes_threshold_saves_and_loads(btg_file, tmp_path):
    table = load_feature_table(btg_file)
    model = train_model(table, seed=0, rounds=60)
    assert 0.05 <= model.threshold <= 0.95 and model.meta["cv_f1_at_threshold"] > 0.8
    model.save(tmp_path / "m.joblib")
    again = load_model(tmp_path / "m.joblib")
    np.testing.assert_allclose(again.predict(table.frame), model.predict(table.frame))
    assert (tmp_path / "m.joblib.json").exists()
    rows = score_table(table, again)
    top = rows[0]
    assert top["flagged"] and table.labels[top["number"]] == 1 and "population median" in top["reasons"][0]
    # a table of another layout is refused, not scored the same for everyone
    other = table.frame.drop(columns=table.frame.columns[:len(model.columns) // 2])
    with pytest.raises(DataError, match=r"lacks \d+ of the model's \d+ feature columns.*btg"):
        again.predict(other)
    np.testing.assert_allclose(again.predict(table.frame.drop(columns=[model.columns[0]])),
                               model.predict(table.frame.assign(**{model.columns[0]: np.nan})))  # one missing column: unknown


def test_training_needs_labels(btg_file, tmp_path):
    df = btg_like(50).drop(columns=["label"])
    df.to_csv(tmp_path / "nolabel.csv", index=False)
    with pytest.raises(DataError, match="label"):
        train_model(load_feature_table(tmp_path / "nolabel.csv"))


def test_garbage_model_file_is_a_data_error(tmp_path):
    (tmp_path / "m.joblib").write_bytes(b"not a model")
    with pytest.raises(DataError):
        load_model(tmp_path / "m.joblib")


def test_rule_leads_have_reasons_and_follow_the_resolver(btg_file):
    table = load_feature_table(btg_file)
    top_number = score_table(table)[0]["number"]
    calls = []

    def resolver(phone=None, id_number=None):
        calls.append((phone, id_number))
        if phone == top_number or id_number == "ID-1":
            return {"person": {"id": 1, "name": "王五", "id_number": "ID-1", "category": "offender", "notes": ""},
                    "voice_samples": 2, "phones": [top_number, "+8613800000009"],
                    "cases": [{"case_number": "C-1", "title": "刷单", "date": None, "area": "", "status": "open"}]}
        return None

    leads = build_leads(table, registry={top_number: {"name": "王五", "id_number": "ID-1"}}, resolver=resolver, top=5)
    assert len(leads) == 5 and leads[0]["number"] == top_number
    assert leads[0]["library_person"] == "王五" and leads[0]["voice_samples"] == 2
    assert leads[0]["cases"] == ["C-1 刷单 (open)"] and leads[0]["linked_phones"] == ["+8613800000009"]
    assert leads[0]["reasons"] and all("population median" in r for r in leads[0]["reasons"])
    assert leads[1]["library_person"] is None and leads[1]["cases"] == []
    assert reverse_strike(leads[:1])[0]["library_person"] is None  # no resolver: library part empty


def test_the_reverse_strike_reads_plain_numbers_and_shows_both_people_when_phone_and_id_disagree():
    persons = {
        1: {"person": {"id": 1, "name": "李四", "category": "suspect"}, "voice_samples": 1, "phones": ["+8613900000053"],
            "cases": [{"case_number": "AJ-1", "title": "", "status": "open"}]},
        2: {"person": {"id": 2, "name": "王五", "category": "prior_offender"}, "voice_samples": 3, "phones": ["+8613700000001"],
            "cases": [{"case_number": "AJ-3", "title": "", "status": "closed"}]},
    }

    def resolver(phone=None, id_number=None):
        return persons[1] if phone == "+8613900000053" else persons[2] if id_number == "ID-2" else None

    registry = {"+8613900000053": {"name": "王五", "id_number": "ID-2"}}
    (lead,) = reverse_strike([{"number": "13900000053"}], registry, resolver)  # a third-party table's plain number
    assert lead["person"] == "王五" and lead["id_number"] == "ID-2"
    assert lead["library_person"] == "李四 (by phone); 王五 (by registered ID)"
    assert lead["cases"] == ["AJ-1 (open)", "AJ-3 (closed)"] and lead["voice_samples"] == 4
    assert lead["linked_phones"] == ["+8613700000001"]
    from voiceprint.calls.leads import library_persons

    assert library_persons([lead]) == [1, 2]
    (same,) = reverse_strike([{"number": "+8613900000053"}], {"+8613900000053": {"name": "李四", "id_number": "ID-1"}},
                             lambda phone=None, id_number=None: persons[1])
    assert same["library_person"] == "李四" and same["cases"] == ["AJ-1 (open)"]  # one person found both ways: shown once


def _voiceprint_table(path, numbers, **columns):
    import pandas as pd

    base = {"number": numbers, "distinct_others": 5.0, "calls_per_other": 2.0, "max_callees_day": 3.0, "two_way_share": 0.5}
    pd.DataFrame({**base, **columns}).to_csv(path, index=False)
    return path


def test_what_reading_feature_tables_leaves_out_is_told_not_silent(tmp_path):
    first = _voiceprint_table(tmp_path / "a.csv", ["n1", "n2", "n2", "n3"], distinct_others=[5.0, 6.0, 60.0, 7.0])
    import pandas as pd

    second = tmp_path / "b.csv"  # a HaoREN table: another layout
    pd.DataFrame({"phone_no_m": ["n1", "n4", "n5"], "voc_user_cnt": [3, 9, 1], "interactive_call_user_cnt": [2, 0, 1],
                  "call_activate_days_diff": [1, 2, 3], "idcard_cnt": [1, 4, 1], "fake_ratio": [0.0, 1.0, 0.0],
                  "black_app_cnt": [0, 3, 0]}).to_csv(second, index=False)
    table = load_feature_table([first, second])
    assert list(table.frame.index) == ["n1", "n2", "n3"]
    assert table.notes == ["a.csv: 1 row(s) repeat a number already read; the first row of each number was kept",
                           "b.csv: 2 number(s) not in a.csv were left out - the first --features table decides which numbers are "
                           "scored; put the one holding every number first"]
    assert load_feature_table(second).notes == []


def test_a_flagged_number_always_has_a_reason():
    import numpy as np
    import pandas as pd

    from voiceprint.calls.scoring import rule_reasons

    names = ["distinct_others", "calls_per_other"]
    canonical = pd.DataFrame({"distinct_others": [40.0, 5.0], "calls_per_other": [1.0, 3.0]})
    scores = pd.DataFrame({"distinct_others": [0.55, 0.1], "calls_per_other": [0.58, 0.2]})  # flagged at 0.5, nothing >= 0.6
    reasons = rule_reasons(canonical, scores, {n: 3.0 for n in names})
    assert len(reasons[0]) == 2 and all(r.endswith(", moderate)") for r in reasons[0]) and reasons[1] == []
    assert np.isclose(float(scores.iloc[0].mean()), 0.565)


def test_a_reason_at_the_population_median_says_why_it_is_one():
    """In a population of call-centre numbers the median itself can be fraud-like: the reason names the anchors."""
    import pandas as pd

    from voiceprint.calls.scoring import rule_reasons

    canonical = pd.DataFrame({"out_share": [0.95]})
    reasons = rule_reasons(canonical, pd.DataFrame({"out_share": [0.9]}), {"out_share": 0.95})
    assert reasons == [["mostly outgoing calls: out_share=0.95 (population median 0.95; typical of fraud 0.95, of normal use 0.5)"]]


def test_a_lead_without_a_category_shows_none_not_the_word():
    person = {"person": {"id": 3, "name": "孙八"}, "voice_samples": 1, "phones": [], "cases": []}
    (lead,) = reverse_strike([{"number": "+8613900000070"}], {}, lambda phone=None, id_number=None: person if phone else None)
    assert lead["library_person"] == "孙八" and lead["category"] is None


def test_two_tables_of_the_same_layout_are_one_data_error_not_a_crash(tmp_path):
    """`--features march.parquet --features april.parquet` crashed with a 40-line "columns overlap" internal error."""
    march = _voiceprint_table(tmp_path / "march.csv", ["n1", "n2"])
    april = _voiceprint_table(tmp_path / "april.csv", ["n1", "n3"])
    for pair in ([march, april], [march, march]):
        with pytest.raises(DataError, match=r"have the same layout \(voiceprint\): pass one table per layout - for two periods, compute"):
            load_feature_table(pair)


def test_numbers_keep_their_plus_through_a_csv_table_and_leads_show_them_canonical(tmp_path):
    """A feature table written as CSV read `+8613900000243` back as the number 8613900000243; a table keyed `139...`
    was echoed as written: the leads' numbers depended on the format chosen a step earlier."""
    ours = _voiceprint_table(tmp_path / "f.csv.gz", ["+8613900000243", "+8613900000244", "028-12345678", "n7"])
    assert set(load_feature_table(ours).frame.index) == {"+8613900000243", "+8613900000244", "028-12345678", "n7"}
    assert {r["number"] for r in score_table(load_feature_table(ours))} == {"+8613900000243", "+8613900000244", "+862812345678", "n7"}
    plain = _voiceprint_table(tmp_path / "p.csv", ["13900000243", "0086 139 0000 0244", "1000001", "ABCDEF0123456789ABCDEF0123456789"])
    assert {r["number"] for r in score_table(load_feature_table(plain))} == {
        "+8613900000243", "+8613900000244", "1000001", "ABCDEF0123456789ABCDEF0123456789"}  # IDs and hashes as written
