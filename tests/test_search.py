"""Ranking hits: by the calibrated LLR of each person's own channel pair, not by the raw score."""

import itertools

import numpy as np
import pytest

from voiceprint import scoring
from voiceprint.search import rank_by_llr


def _inverted_pair(backend):
    """Two (score, channel pair) where the lower raw score carries the higher calibrated LLR."""
    non = backend.nontarget_scores
    grid = np.linspace(np.quantile(non, 0.999), np.quantile(non, 0.999) + 3 * np.std(non), 61)  # where matches score
    step = 0.02 * (grid[-1] - grid[0])
    for pair_hi, pair_lo in itertools.permutations(("wideband", "narrowband", "cross"), 2):
        for lo in grid:
            hi = lo + step
            if float(backend.llr(lo, 10.0, 10.0, pair_lo)) > float(backend.llr(hi, 10.0, 10.0, pair_hi)):
                return (float(hi), pair_hi), (float(lo), pair_lo)
    return None


def test_hits_of_different_channel_pairs_are_ranked_by_their_llr():
    backend = scoring.load_backend("campplus-zh-en")
    if backend is None:
        pytest.skip("no back end fitted for campplus-zh-en")
    found = _inverted_pair(backend)
    assert found is not None  # the premise: channel pairs are calibrated differently, so raw scores mislead
    (s1, pair1), (s2, pair2) = found  # s1 > s2, but person 2's LLR is higher
    scored = {1: (s1, pair1), 2: (s2, pair2)}
    candidates: dict[int, tuple] = {1: (None, [], 10.0), 2: (None, [], 10.0)}  # only the enrolled net speech is read
    assert s1 > s2  # ranked by score, person 1 would come first
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
