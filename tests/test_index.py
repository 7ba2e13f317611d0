"""FAISS indexes: exact search, person means, atomic persistence, staleness detection."""

from pathlib import Path

import numpy as np
import pytest

from voiceprint.index import VoiceIndex, index_files, person_means


def _unit(rng, n, dim=16):
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_person_means_are_normalised_means():
    vecs = np.array([[1, 0], [0, 1], [1, 0]], np.float32)
    pids, means = person_means(np.array([7, 7, 9]), vecs)
    assert list(pids) == [7, 9]
    np.testing.assert_allclose(means[0], [2 ** -0.5, 2 ** -0.5], rtol=1e-6)
    np.testing.assert_allclose(means[1], [1, 0])


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "auto"])
def test_search_finds_the_nearest_sample_and_person(kind):
    rng = np.random.default_rng(0)
    vecs = _unit(rng, 50)
    ids = np.arange(100, 150)
    persons = np.repeat(np.arange(10), 5)
    index = VoiceIndex.build(ids, persons, vecs, "m", 3, kind=kind)
    scores, found = index.search_samples(vecs[17], 3)
    assert found[0][0] == 117 and scores[0][0] == pytest.approx(1.0, abs=2e-4)  # HNSW stores fp16
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
    (tmp_path / index_files(tmp_path)[1]).write_bytes(b"garbage")  # the samples
    assert VoiceIndex.load(tmp_path) is None
    index.save(tmp_path)  # a file cut short (a full disk, a copy interrupted) is a damaged zip, not a crash
    persons = tmp_path / index_files(tmp_path)[2]
    persons.write_bytes(persons.read_bytes()[: persons.stat().st_size // 2])
    assert VoiceIndex.load(tmp_path) is None


def test_a_save_killed_part_way_leaves_the_previous_index_whole_and_in_force(tmp_path, monkeypatch):
    """A save replaced its files one by one: a kill after the first left new vectors beside the old index.json,
    which then read as no index at all ("missing") until the next writer."""
    from voiceprint import index as index_module

    first = VoiceIndex.build(np.arange(2), np.arange(2), _unit(np.random.default_rng(2), 2), "m", 1)
    first.save(tmp_path)
    second = VoiceIndex.build(np.arange(3), np.arange(3), _unit(np.random.default_rng(3), 3), "m", 2)
    real, written = index_module.write_atomic, []

    def killed_before_index_json(target, data, *args):
        if Path(target).name == "index.json":
            raise KeyboardInterrupt  # what a kill -9 does here: nothing after it runs
        written.append(Path(target).name)
        real(target, data, *args)

    monkeypatch.setattr(index_module, "write_atomic", killed_before_index_json)
    with pytest.raises(KeyboardInterrupt):
        second.save(tmp_path)
    monkeypatch.undo()
    loaded = VoiceIndex.load(tmp_path)
    assert len(written) == 3 and loaded is not None and loaded.generation == 1 and loaded.size == 2
    second.save(tmp_path)  # the next save: its set alone is left
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(index_files(tmp_path)) and VoiceIndex.load(tmp_path).generation == 2


def test_empty_index_searches_to_nothing():
    index = VoiceIndex.build(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.float32), "m", 0, dim=16)
    scores, ids = index.search_persons(np.ones(16, np.float32), 5)
    assert ids.shape == (1, 0)


def _library(rng, n_persons=30, per=4, dim=16):
    ids = np.arange(1, n_persons * per + 1)
    persons = np.repeat(np.arange(100, 100 + n_persons), per)
    return ids, persons, _unit(rng, len(ids), dim)


def _same_answers(a, b, queries, k=5):
    for q in queries:
        for search in ("search_samples", "search_persons"):
            sa, ia = getattr(a, search)(q, k)
            sb, ib = getattr(b, search)(q, k)
            assert list(ia[0]) == list(ib[0]), search
            np.testing.assert_allclose(sa, sb, atol=2e-4)  # HNSW scores come from fp16 vectors


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_incremental_update_equals_a_rebuild(kind):
    """Adding, deleting and moving samples in place gives the same searches as building from scratch."""
    rng = np.random.default_rng(3)
    ids, persons, vecs = _library(rng)
    index = VoiceIndex.build(ids[:80], persons[:80], vecs[:80], "m", 1, kind=kind)
    keep = ~np.isin(ids, [5, 6, 7, 8, 41])  # person 101 deleted whole, one sample of 110 gone
    persons2 = persons.copy()
    persons2[ids == 42] = 111  # a sample moved to another person
    index.update(ids[keep], persons2[keep], vecs[keep], 2)
    fresh = VoiceIndex.build(ids[keep], persons2[keep], vecs[keep], "m", 2, kind=kind)
    assert index.generation == 2 and index.size == keep.sum() and index.persons.ntotal == fresh.persons.ntotal
    assert sorted(index.sample_ids()) == sorted(ids[keep])
    _same_answers(index, fresh, vecs[::7])
    _, found = index.search_samples(vecs[5], 120)
    assert 6 not in found[0] and 101 not in index.search_persons(vecs[5], 40)[1][0]


def test_update_survives_save_and_load(tmp_path):
    rng = np.random.default_rng(4)
    ids, persons, vecs = _library(rng)
    index = VoiceIndex.build(ids[:60], persons[:60], vecs[:60], "m", 1, kind="hnsw")
    index.update(ids[4:], persons[4:], vecs[4:], 2)
    index.save(tmp_path)
    loaded = VoiceIndex.load(tmp_path)
    assert loaded.generation == 2 and loaded.samples.kind == "hnsw"
    _same_answers(index, loaded, vecs[::11])
    loaded.update(ids, persons, vecs, 3)  # the first person comes back
    _same_answers(loaded, VoiceIndex.build(ids, persons, vecs, "m", 3, kind="hnsw"), vecs[:8])


def test_auto_switches_from_exact_to_hnsw_past_its_threshold(monkeypatch):
    import voiceprint.index as vi

    monkeypatch.setattr(vi, "AUTO_HNSW_FROM", 50)
    rng = np.random.default_rng(5)
    ids, persons, vecs = _library(rng, n_persons=20, per=4)
    index = VoiceIndex.build(ids[:40], persons[:40], vecs[:40], "m", 1)
    assert index.kind == "auto" and index.samples.kind == "flat"
    index.update(ids, persons, vecs, 2)
    assert index.samples.kind == "hnsw" and index.persons.kind == "flat"  # 80 samples, 20 persons
    _same_answers(index, VoiceIndex.build(ids, persons, vecs, "m", 2, kind="flat"), vecs[::9], k=3)


def test_many_deletions_compact_the_set():
    rng = np.random.default_rng(6)
    ids, persons, vecs = _library(rng)
    index = VoiceIndex.build(ids, persons, vecs, "m", 1, kind="hnsw")
    keep = ids > 40
    index.update(ids[keep], persons[keep], vecs[keep], 2)
    assert len(index.samples.ids) == keep.sum(), "a third masked out: the set was rebuilt from its live vectors"
    _same_answers(index, VoiceIndex.build(ids[keep], persons[keep], vecs[keep], "m", 2, kind="hnsw"), vecs[50::9])


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_a_removed_vector_leaves_no_bytes_in_the_saved_set(kind):
    """Masked out (too few removed to compact) and zeroed: the index file keeps no erased voiceprint (HNSW and
    IVF store fp16), and search still finds the others."""
    from voiceprint.index import VectorSet

    vecs = _unit(np.random.default_rng(4), 400)
    stored = (lambda v: v.tobytes()) if kind == "flat" else (lambda v: v.astype(np.float16).tobytes())
    vs = VectorSet.build(vecs, np.arange(100, 500), kind)
    vs.remove(np.array([105, 106, 300]))
    saved = vs.to_bytes()
    assert vs.kind == kind and vs.ntotal == 397
    assert [stored(vecs[i]) in saved for i in (5, 6, 200)] == [False] * 3
    assert [stored(vecs[i]) in saved for i in (4, 7, 201)] == [True] * 3
    assert list(vs.search(vecs[[4, 7, 201]], 1)[1][:, 0]) == [104, 107, 301]


def test_unknown_kind_is_refused():
    from voiceprint.errors import LibraryError

    with pytest.raises(LibraryError, match="unknown index kind"):
        VoiceIndex.build(np.arange(2), np.arange(2), _unit(np.random.default_rng(7), 2), "m", 1, kind="lsh")


def test_huge_pages_leave_a_large_set_unchanged(monkeypatch):
    """Moving the graph and vectors into huge pages (done from HUGE_PAGES_FROM entries) keeps every answer."""
    import voiceprint.index as vi

    rng = np.random.default_rng(8)
    vecs = _unit(rng, 6000, dim=512)  # 6 MB of fp16 vectors: spans whole 2 MB pages
    monkeypatch.setattr(vi, "HNSW_NEIGHBOURS", 8)
    monkeypatch.setattr(vi, "HNSW_EF_CONSTRUCTION", 16)
    monkeypatch.setattr(vi, "HUGE_PAGES_FROM", 10**9)
    plain = vi.VectorSet.build(vecs, np.arange(6000), "hnsw")
    before = plain.search(vecs[:20], 5)
    monkeypatch.setattr(vi, "HUGE_PAGES_FROM", 1000)
    vi._huge_pages(plain.index)
    after = plain.search(vecs[:20], 5)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_array_equal(before[0], after[0])
    rebuilt = vi.VectorSet(plain.index, plain.ids, plain.live, "hnsw", "hnsw")  # the constructor's path
    np.testing.assert_array_equal(rebuilt.search(vecs[:20], 5)[1], before[1])


def test_ivf_over_many_lists_finds_each_voiceprint_and_survives_save_and_load(tmp_path):
    import voiceprint.index as vi

    rng = np.random.default_rng(8)
    ids, persons, vecs = _library(rng, n_persons=1000, per=4)
    index = VoiceIndex.build(ids, persons, vecs, "m", 1, kind="ivf")
    assert index.samples.index.nlist == 100 and index.samples.index.nprobe == vi.ivf_probes(100)  # 4,000 / 40 per list
    for i in range(0, 4000, 97):
        scores, found = index.search_samples(vecs[i], 5)
        assert found[0][0] == ids[i] and scores[0][0] == pytest.approx(1.0, abs=2e-3)
    index.save(tmp_path)
    loaded = VoiceIndex.load(tmp_path)
    assert loaded.samples.kind == "ivf" and loaded.samples.index.nprobe == index.samples.index.nprobe
    _same_answers(index, loaded, vecs[::501])
    np.testing.assert_allclose(loaded.samples.vectors()[:3], vecs[:3], atol=1e-3)  # reconstructed from fp16


def test_auto_moves_from_hnsw_to_ivf_and_a_compaction_keeps_it(monkeypatch):
    import voiceprint.index as vi

    monkeypatch.setattr(vi, "AUTO_HNSW_FROM", 20)
    monkeypatch.setattr(vi, "AUTO_IVF_FROM", 60)
    rng = np.random.default_rng(9)
    ids, persons, vecs = _library(rng, n_persons=20, per=4)
    index = VoiceIndex.build(ids[:40], persons[:40], vecs[:40], "m", 1)
    assert index.samples.kind == "hnsw"
    index.update(ids, persons, vecs, 2)
    assert index.samples.kind == "ivf" and index.persons.kind == "hnsw"  # 80 samples, 20 persons
    keep = ids > 32  # 40 % deleted: compacted to 48 live samples, below the threshold, still an inverted file
    index.update(ids[keep], persons[keep], vecs[keep], 3)
    assert len(index.samples.ids) == keep.sum() and index.samples.kind == "ivf"
    _same_answers(index, VoiceIndex.build(ids[keep], persons[keep], vecs[keep], "m", 3, kind="flat"), vecs[40::9], k=3)


def test_person_means_in_blocks_equal_one_pass(monkeypatch):
    import voiceprint.index as vi

    rng = np.random.default_rng(10)
    persons = rng.integers(0, 7, 50)
    vecs = _unit(rng, 50)
    whole_ids, whole = person_means(persons, vecs)
    monkeypatch.setattr(vi, "MEANS_BLOCK", 3)  # groups straddle block edges
    ids, means = person_means(persons, vecs)
    assert list(ids) == list(whole_ids) == sorted(set(persons))
    np.testing.assert_allclose(means, whole, rtol=1e-6)
    for p, m in zip(ids, means, strict=True):
        ref = vecs[persons == p].sum(axis=0)
        np.testing.assert_allclose(m, ref / np.linalg.norm(ref), rtol=1e-5)


def test_a_small_inverted_file_takes_new_voiceprints_without_a_rebuild():
    rng = np.random.default_rng(11)
    ids, persons, vecs = _library(rng, n_persons=20, per=4)
    index = VoiceIndex.build(ids[:60], persons[:60], vecs[:60], "m", 1, kind="ivf")
    faiss_index = index.samples.index
    index.update(ids[:61], persons[:61], vecs[:61], 2)
    assert index.samples.index is faiss_index and index.size == 61  # one list for 61 samples, as for 60


def test_a_new_empty_library_passes_index_check(tmp_path, capsys):
    """A monitoring job ran `index check` on every library: each new one failed with 'missing'."""
    from voiceprint.cli import run

    root = tmp_path / "new"
    assert run(["init", "--library", str(root)]) == 0
    assert run(["index", "check", "--library", str(root)]) == 0


def test_a_command_that_writes_one_sample_updates_the_index_on_disk_and_never_rebuilds_it(tmp_path, monkeypatch):
    from voiceprint.index import VoiceIndex
    from voiceprint.library import Library

    def add_sample(lib, name: str, seed: int) -> None:
        vector = np.random.default_rng(seed).normal(size=int(lib.store.get_meta("embedding_dim", "192"))).astype(np.float32)
        with lib.writing():
            with lib.store.transaction():
                pid = lib.store.add_person(name)
                rid = lib.store.add_recording(f"{seed:0>64}", 0, f"{name}.wav", 5.0, 4.0, 16000)
                lib.store.add_voiceprint(rid, pid, lib.model, vector / np.linalg.norm(vector))
            lib.save_index()

    with Library.create(tmp_path / "lib") as lib:
        add_sample(lib, "A", 1)  # the first index is built
    built = []
    real_build = VoiceIndex.build.__func__  # type: ignore[attr-defined]
    def counted_build(cls, *args, **kwargs):
        built.append(1)
        return real_build(cls, *args, **kwargs)

    monkeypatch.setattr(VoiceIndex, "build", classmethod(counted_build))
    with Library.open(tmp_path / "lib") as lib:  # a new process: the index was never read before the write
        add_sample(lib, "B", 2)
        assert built == [] and lib.check_index()["status"] == "ok" and lib.check_index()["index_voiceprints"] == 2


def test_a_reader_whose_set_a_save_removes_reads_the_new_one(tmp_path, monkeypatch):
    from voiceprint import index as index_module

    VoiceIndex.build(np.arange(2), np.arange(2), _unit(np.random.default_rng(2), 2), "m", 1).save(tmp_path)
    second = VoiceIndex.build(np.arange(3), np.arange(3), _unit(np.random.default_rng(3), 3), "m", 2)
    real, calls = index_module.VectorSet.from_file, []

    def from_file(path):
        calls.append(path)
        if len(calls) == 1:
            second.save(tmp_path)  # another process's save, between this reader's index.json and its first file
        return real(path)

    monkeypatch.setattr(index_module.VectorSet, "from_file", staticmethod(from_file))
    loaded = VoiceIndex.load(tmp_path)
    assert loaded is not None and loaded.generation == 2 and loaded.size == 3
