"""Held-out validation of the back end (voiceprint.validation): pooled by channel pair and questioned speech, cited only
while it measured the shipped back end and its hash holds."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from voiceprint import scoring, validation
from voiceprint.evaluate import Item, TrialSet


def _trial_set(pair: str) -> TrialSet:
    """Two enrolled speakers, four tests (1.5, 3, 3 and 12 s of speech); a trial's log10 LR is +2 when same, -2 when not,
    but the second speaker's 3 s test is misleading (-0.5 against its own speaker)."""
    tests = [Item("a1.wav", "A", "c", net_speech=1.5), Item("a2.wav", "A", "c", net_speech=3.0),
             Item("b1.wav", "B", "c", net_speech=3.0), Item("b2.wav", "B", "c", net_speech=12.0)]
    ts = TrialSet("c", "native", ["A", "B"], tests, np.zeros((2, 4)))
    log10 = np.where(ts.target, 2.0, -2.0)
    log10[1, 2] = -0.5
    ts.llr = log10 * math.log(10)
    ts.pairs = np.full((2, 4), pair)
    return ts


def test_trials_are_pooled_by_channel_pair_and_questioned_speech():
    groups = {(g.pair, g.speech): g for g in validation.groups_of([_trial_set("narrowband"), _trial_set("cross")])}
    assert sorted(groups) == sorted((p, s) for p in ("narrowband", "cross") for s in ("all", "<2s", "2-5s", ">=10s"))
    every = groups[("narrowband", "all")]
    assert len(every.targets) == 4 and len(every.nontargets) == 4
    assert sorted(every.targets) == [-0.5, 2.0, 2.0, 2.0]
    two_to_five = groups[("narrowband", "2-5s")]  # the tests of 3 s: one per speaker, each against both speakers
    assert len(two_to_five.targets) == 2 and len(two_to_five.nontargets) == 2
    row = every.row()
    assert row["target_trials"] == 4 and row["misleading_same"] == 1 and row["misleading_different"] == 0
    assert row["eer"] == pytest.approx(0.0) and row["cllr"] > 0
    assert row["target_log10_lr"] == [-0.5, 2.0, 2.0, 2.0] and len(row["nontarget_log10_lr_quantiles"]) == validation.NONTARGET_QUANTILES


def test_a_case_row_is_its_pair_and_bucket_and_a_thin_bucket_plots_the_whole_pair():
    record = {"groups": [g.row() for g in validation.groups_of([_trial_set("narrowband")])]}
    rows = validation.rows_for_case(record, "narrowband", 3.2)
    assert [(r["pair"], r["speech"]) for r in rows if r["this_case"]] == [("narrowband", "2-5s")]
    assert not any(r["this_case"] for r in validation.rows_for_case(record, "wideband", 3.2))
    group, bucket = validation.curves_for_case(record, "narrowband", 3.2)  # 2 same-speaker trials: too few to plot alone
    assert bucket == "all" and group is not None and len(group.targets) == 4
    assert validation.curves_for_case(record, "wideband", 3.2) == (None, "")


def test_the_shipped_default_model_carries_a_validation_of_its_own_back_end():
    record, why = validation.load()
    assert record is not None, why
    assert record["backend_sha256"] == validation.backend_sha(None)
    pairs = {g["pair"] for g in record["groups"]}
    assert pairs == {"wideband", "narrowband", "cross"}
    narrow = next(g for g in record["groups"] if g["pair"] == "narrowband" and g["speech"] == "all")
    assert narrow["target_trials"] == len(narrow["target_log10_lr"]) > 100 and narrow["nontarget_trials"] > 10_000


def test_a_validation_is_cited_only_while_it_measured_this_back_end_and_its_hash_holds(model_copy):
    assert validation.load()[0] is not None
    path = model_copy / "backend" / validation.VALIDATION_FILE
    record = json.loads(path.read_text())
    record["groups"][0]["eer"] = 0.0  # a better figure written in by hand
    path.write_text(json.dumps(record))
    got, why = validation.load()
    assert got is None and "not the one hashed in model.json" in why

    record["backend_sha256"] = "0" * 64  # measured on another back end, then hashed as if reviewed
    path.write_text(json.dumps(record))
    scoring.record_evidence_hashes(model_copy)
    scoring._LOADED.clear()
    got, why = validation.load()
    assert got is None and "another back end" in why

    path.unlink()
    scoring.record_evidence_hashes(model_copy)
    scoring._LOADED.clear()
    got, why = validation.load()
    assert got is None and "voiceprint backend validate" in why


def test_an_edited_validation_file_is_refused_with_the_other_evidence_files(model_copy):
    from voiceprint.errors import ModelError

    path = model_copy / "backend" / validation.VALIDATION_FILE
    record = json.loads(path.read_text())
    record["groups"][0]["misleading_different"] = 0  # fewer misleading LRs written in by hand
    path.write_text(json.dumps(record))
    with pytest.raises(ModelError, match="backend/validation.json fails its checksum"):
        scoring.load_backend()


def test_every_voice_of_a_case_marks_its_row_and_a_voice_without_one_is_named():
    """A report marked the held-out row of a query's first voice only, and nothing at all for a voice of a duration the
    held-out data hold no trials of."""
    record = {"groups": [g.row() for g in validation.groups_of([_trial_set("narrowband")])]}  # no 5-10s bucket, no wideband
    rows, missing = validation.rows_for_cases(record, [("voice 0", "narrowband", 3.2), ("voice 1", "narrowband", 1.0),
                                                       ("voice 2", "narrowband", 7.0), ("voice 3", "wideband", 3.0), ("voice 4", "narrowband", 4.0)])
    marked = {(r["pair"], r["speech"]): r["cases"] for r in rows if r["this_case"]}
    assert marked == {("narrowband", "2-5s"): ["voice 0", "voice 4"], ("narrowband", "<2s"): ["voice 1"]}
    assert missing == [{"label": "voice 2", "pair": "narrowband", "speech": "5-10s", "pair_rows": True},
                       {"label": "voice 3", "pair": "wideband", "speech": "2-5s", "pair_rows": False}]
