"""Ranking hits: by the calibrated LLR of each person's own channel pair, not by the raw score."""

import numpy as np
import pytest

from voiceprint import scoring
from voiceprint.search import rank_by_llr


def test_hits_of_different_channel_pairs_are_ranked_by_their_llr():
    backend = scoring.load_backend("campplus-zh-en")
    if backend is None:
        pytest.skip("no back end fitted for campplus-zh-en")
    scored = {1: (4.5, "wideband"), 2: (4.0, "cross")}  # an interview vs an intercepted call's person
    candidates = {1: (None, ["wideband"], 10.0), 2: (None, ["narrowband"], 10.0)}
    llr = {p: float(backend.llr(s, 10.0, 10.0, pair)) for p, (s, pair) in scored.items()}
    assert llr[2] > llr[1]  # the premise: the same raw score means more across channels
    assert [p for p, _ in rank_by_llr(backend, scored, candidates, 10.0)] == [2, 1]
    assert rank_by_llr(backend, {}, {}, None) == []


def test_ties_at_an_llr_bound_fall_back_to_the_score():
    backend = scoring.load_backend("campplus-zh-en")
    if backend is None:
        pytest.skip("no back end fitted for campplus-zh-en")
    scored = {1: (50.0, "wideband"), 2: (60.0, "wideband")}  # both far above the pair's upper bound
    candidates = {1: (None, ["wideband"], 10.0), 2: (None, ["wideband"], 10.0)}
    assert np.allclose(backend.llr(np.array([50.0, 60.0]), 10.0, 10.0, "wideband"), backend.llr_limits("wideband")[1])
    assert [p for p, _ in rank_by_llr(backend, scored, candidates, 10.0)] == [2, 1]
