"""FAISS indexes: exact search, person means, atomic persistence, staleness detection."""

import numpy as np
import pytest

from voiceprint.index import VoiceIndex, person_means


def _unit(rng, n, dim=16):
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_person_means_are_normalised_means():
    vecs = np.array([[1, 0], [0, 1], [1, 0]], np.float32)
    pids, means = person_means(np.array([7, 7, 9]), vecs)
    assert list(pids) == [7, 9]
    np.testing.assert_allclose(means[0], [2 ** -0.5, 2 ** -0.5], rtol=1e-6)
    np.testing.assert_allclose(means[1], [1, 0])


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_search_finds_the_nearest_sample_and_person(kind):
    rng = np.random.default_rng(0)
    vecs = _unit(rng, 50)
    ids = np.arange(100, 150)
    persons = np.repeat(np.arange(10), 5)
    index = VoiceIndex.build(ids, persons, vecs, "m", 3, kind=kind)
    scores, found = index.search_samples(vecs[17], 3)
    assert found[0][0] == 117 and scores[0][0] == pytest.approx(1.0, abs=1e-5)
    _, who = index.search_persons(vecs[17], 1)
    assert who[0][0] == 3


def test_save_load_roundtrip_and_private_files(tmp_path):
    rng = np.random.default_rng(1)
    vecs = _unit(rng, 8)
    index = VoiceIndex.build(np.arange(8), np.arange(8) // 2, vecs, "m", 5)
    index.save(tmp_path)
    loaded = VoiceIndex.load(tmp_path)
    assert loaded.generation == 5 and loaded.size == 8 and loaded.persons.ntotal == 4
    assert not list(tmp_path.glob("*.tmp")), "no temporary files left behind"
    for f in tmp_path.iterdir():
        assert f.stat().st_mode & 0o077 == 0


def test_corrupt_index_file_reads_as_absent(tmp_path):
    index = VoiceIndex.build(np.arange(2), np.arange(2), _unit(np.random.default_rng(2), 2), "m", 1)
    index.save(tmp_path)
    (tmp_path / "samples.faiss").write_bytes(b"garbage")
    assert VoiceIndex.load(tmp_path) is None


def test_empty_index_searches_to_nothing():
    index = VoiceIndex.build(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.float32), "m", 0, dim=16)
    scores, ids = index.search_persons(np.ones(16, np.float32), 5)
    assert ids.shape == (1, 0)
