"""Real Sichuan data (../shared/data, skipped when absent): raw rows through the whole pipeline,
and the rule score on the published feature tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from voiceprint.calls.features import compute_features
from voiceprint.calls.ingest import import_calls
from voiceprint.calls.leads import build_leads
from voiceprint.calls.scoring import load_feature_table, rule_score

SICHUAN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cdr" / "sichuan_fraud_2020"
pytestmark = [pytest.mark.shared, pytest.mark.skipif(not SICHUAN.exists(), reason=f"shared data absent: {SICHUAN}")]
FRAUD_PREFIX = "006c5a467f3feef3"  # the labelled fraud subscriber of the raw sample (label joined from the feature tables)


def test_raw_history_runs_end_to_end_and_ranks_the_fraud_number_first(tmp_path):
    raw = SICHUAN / "raw" / "voc_full_history_sample_users.csv.gz"
    report = import_calls(raw, tmp_path / "calls.parquet")  # sichuan template detected from the header
    assert report.template == "sichuan" and report.rows_read == 4649 and report.malformed == 0
    compute_features(tmp_path / "calls.parquet", out=tmp_path / "features.parquet", temp_directory=tmp_path)
    feats = load_feature_table(tmp_path / "features.parquet").frame
    assert feats["calls"].sum() == 4649 - report.exact_duplicates - report.split_calls_merged
    leads = build_leads(tmp_path / "features.parquet", top=None)
    assert [lead["number"][:16] for lead in leads][0] == FRAUD_PREFIX
    assert leads[0]["reasons"]
    btg = load_feature_table(SICHUAN / "features" / "btg_gatcobo_user_features.csv.gz").frame
    for number in feats.index:  # our counts match the published features computed from the full table
        assert feats.loc[number, "distinct_others"] == btg.loc[number, "opposite_unique"]
        assert feats.loc[number, "n_imei"] >= btg.loc[number, "imeis"]


def test_rule_score_auc_on_btg_features():
    from sklearn.metrics import roc_auc_score

    table = load_feature_table(SICHUAN / "features" / "btg_gatcobo_user_features.csv.gz")
    assert table.layouts == ["btg"] and len(table.frame) == 4071
    assert roc_auc_score(table.labels, rule_score(table.canonical)[0]) >= 0.85
