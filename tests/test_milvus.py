"""Vectors in Milvus (embedded Milvus Lite here): the same index semantics and the same library tests as FAISS."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="pymilvus not installed - run `make install`")
pytest.importorskip("milvus_lite", reason="milvus-lite not installed - run `make install`")

from test_library import (  # noqa: E402  (the library tests, collected again here on Milvus)
    lib,  # noqa: F401
    test_a_deleted_persons_vectors_are_gone_from_every_file,  # noqa: F401
    test_a_person_is_searchable_by_the_mean_of_several_samples,  # noqa: F401
    test_delete_person_removes_them_from_search,  # noqa: F401
    test_enrol_then_query_leads_to_person_phones_and_cases,  # noqa: F401
    test_enrolment_is_idempotent_by_file_hash_and_person,  # noqa: F401
    test_missing_or_stale_index_is_rebuilt_from_the_database,  # noqa: F401
    voices,  # noqa: F401
)

from voiceprint.index import MilvusSet, VoiceIndex, read_backend, write_backend  # noqa: E402


@pytest.fixture(scope="module")
def milvus_uri(tmp_path_factory):
    """One embedded Milvus Lite database for the module (its server takes seconds to start);
    each library gets its own collections in it."""
    return str(tmp_path_factory.mktemp("milvus") / "vectors.db")


@pytest.fixture(scope="module", autouse=True)
def closed_at_the_end():
    """No Milvus client (nor its gRPC threads) outlives this module: Spark's tests fork a Java gateway
    later in the same process, and once it exited at start beside them."""
    yield
    from voiceprint.index import close_milvus_clients

    close_milvus_clients()


@pytest.fixture(autouse=True)
def on_milvus(milvus_uri, monkeypatch):
    """Every library created in these tests keeps its vectors in Milvus."""
    monkeypatch.setenv("VOICEPRINT_MILVUS_URI", milvus_uri)


def _unit(rng, n, dim=16):
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_milvus_index_answers_like_exact_faiss_and_updates_in_place(tmp_path, milvus_uri):
    rng = np.random.default_rng(0)
    ids, persons, vecs = np.arange(1, 41), np.repeat(np.arange(10), 4), _unit(rng, 40)
    backend = write_backend(tmp_path, "milvus", milvus_uri)
    assert backend["backend"] == "milvus"
    index = VoiceIndex.build(ids[:30], persons[:30], vecs[:30], "m", 1, backend=backend, folder=tmp_path)
    assert isinstance(index.samples, MilvusSet) and index.size == 30
    index.update(ids[4:], persons[4:], vecs[4:], 2)  # person 0 gone, persons 7..9 arrive
    index.save(tmp_path)
    loaded = VoiceIndex.load(tmp_path)
    exact = VoiceIndex.build(ids[4:], persons[4:], vecs[4:], "m", 2, kind="flat")
    assert loaded.generation == 2 and sorted(loaded.sample_ids()) == list(ids[4:])
    for q in vecs[::5]:
        for level in ("search_samples", "search_persons"):
            s1, i1 = getattr(loaded, level)(q, 3)
            s2, i2 = getattr(exact, level)(q, 3)
            assert list(i1[0]) == list(i2[0])
            np.testing.assert_allclose(s1, s2, atol=1e-5)


def test_backend_file_is_private_and_checked(tmp_path, milvus_uri):
    from voiceprint.errors import LibraryError

    assert read_backend(tmp_path) == {"backend": "faiss"}  # no file: FAISS, whatever the environment says
    cfg = write_backend(tmp_path, "milvus", milvus_uri)
    assert read_backend(tmp_path) == cfg and (tmp_path / "index_backend.json").stat().st_mode & 0o077 == 0
    with pytest.raises(LibraryError, match="needs --milvus-uri"):
        write_backend(tmp_path, "milvus", None)
    (tmp_path / "index_backend.json").write_text('{"backend": "redis"}')
    with pytest.raises(LibraryError, match="backend must be"):
        read_backend(tmp_path)


def test_a_model_switch_drops_the_old_models_collections(tmp_path, milvus_uri):
    """After `library reembed` the old model's Milvus collections still held every voiceprint, erased or not."""
    from pathlib import Path

    import voiceprint
    from voiceprint.index import _milvus, collection_name
    from voiceprint.library import Library
    from voiceprint.reembed import reembed

    speaker = Path(voiceprint.__file__).parent / "demo_data" / "so762_0024"
    root = tmp_path / "lib"
    with Library.create(root, model="ecapa-voxceleb", operator="tester") as library:
        library.enrol(speaker / "interview_1.flac", person="Zhang San")
        old = [collection_name(root, "ecapa-voxceleb", level) for level in ("samples", "persons")]
        assert all(_milvus(milvus_uri).has_collection(c) for c in old)
        summary = reembed(library, "campplus-zh-en", [speaker])
        assert summary.switched
        assert not any(_milvus(milvus_uri).has_collection(c) for c in old)
        assert library.query(speaker / "interview_2.flac", top=1)[0]["hits"][0]["person"]["name"] == "Zhang San"


def test_a_relative_milvus_lite_path_is_kept_absolute(tmp_path, milvus_uri, monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(Path(milvus_uri).parent)
    cfg = write_backend(tmp_path, "milvus", Path(milvus_uri).name)  # as `init --milvus-uri vectors.db` from that folder
    assert cfg["uri"] == str(Path(milvus_uri).resolve()) and read_backend(tmp_path)["uri"] == cfg["uri"]
    assert write_backend(tmp_path, "faiss") == {"backend": "faiss"}


def test_a_dropped_milvus_collection_is_a_missing_index_not_a_traceback(tmp_path, milvus_uri):
    from pathlib import Path

    import voiceprint
    from voiceprint.index import _milvus, collection_name
    from voiceprint.library import Library

    speaker = Path(voiceprint.__file__).parent / "demo_data" / "so762_0024"
    root = tmp_path / "lib"
    with Library.create(root, operator="tester") as library:
        library.enrol(speaker / "interview_1.flac", person="Zhang San")
    _milvus(milvus_uri).drop_collection(collection_name(root, "campplus-zh-en", "samples"))
    with Library.open(root) as library:
        assert library.check_index()["status"] == "missing"  # `index check` says so, with its advice to rebuild
        assert library.query(speaker / "interview_2.flac", top=1)[0]["hits"][0]["person"]["name"] == "Zhang San"  # rebuilt from the database
        assert library.check_index()["status"] == "ok"


def test_milvus_lite_leaves_no_log_files_in_tmp(tmp_path, monkeypatch):
    """Each Milvus Lite start left a glog file in /tmp naming the library's collections (267 in a day of tests)."""
    import glob
    import tempfile

    from voiceprint.index import _milvus

    for name in ("GLOG_log_dir", "GLOG_minloglevel"):  # set, then removed: either way restored after the test
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    pattern = str(Path(tempfile.gettempdir()) / "milvus.*.log.*")
    before = set(glob.glob(pattern))
    _milvus(str(tmp_path / "own" / "vectors.db")).list_collections()
    assert set(glob.glob(pattern)) == before
    assert (tmp_path / "own" / "milvus_logs").stat().st_mode & 0o077 == 0


def test_an_existing_faiss_library_never_moves_to_milvus_with_the_environment(tmp_path, milvus_uri):
    """$VOICEPRINT_MILVUS_URI (set here by the module's fixture) used to make every library without an
    index_backend.json - every FAISS library - rebuild its index into Milvus at the next command."""
    from voiceprint.index import _milvus, collection_name
    from voiceprint.library import Library

    speaker = Path(__file__).resolve().parent.parent / "voiceprint" / "demo_data" / "so762_0024"
    root = tmp_path / "faiss_lib"
    with Library.create(root, operator="tester", milvus_uri="") as library:
        library.enrol(speaker / "interview_1.flac", person="Zhang San")
    with Library.open(root, operator="tester") as library:
        assert library.query(speaker / "interview_2.flac")[0]["hits"][0]["person"]["name"] == "Zhang San"
    assert read_backend(root) == {"backend": "faiss"} and not (root / "index_backend.json").exists()
    assert not any(_milvus(milvus_uri).has_collection(collection_name(root, model, "samples")) for model in ("campplus-zh-en", "ecapa-voxceleb"))
    with Library.create(tmp_path / "new_lib", operator="tester") as library:  # a new library follows the environment
        assert read_backend(library.root) == {"backend": "milvus", "uri": milvus_uri}


def test_a_library_pointed_at_another_milvus_moves_its_index_there(tmp_path, milvus_uri):
    """An administrator moving a library to a new Milvus edits index_backend.json; the index stayed at the old URI."""
    from voiceprint.index import _milvus, collection_name
    from voiceprint.library import Library

    speaker = Path(__file__).resolve().parent.parent / "voiceprint" / "demo_data" / "so762_0024"
    root = tmp_path / "lib"
    with Library.create(root, operator="tester") as library:
        library.enrol(speaker / "interview_1.flac", person="Zhang San")
        model = library.model
    new_uri = str(tmp_path / "moved" / "vectors.db")
    write_backend(root, "milvus", new_uri)
    with Library.open(root, operator="tester") as library:
        assert library.check_index()["status"] == "missing"  # not "ok" at the old place: `index rebuild` is due
        assert library.query(speaker / "interview_2.flac")[0]["hits"][0]["person"]["name"] == "Zhang San"
        assert _milvus(new_uri).has_collection(collection_name(root, model, "samples"))
        library.rebuild_index()
        assert library.check_index()["status"] == "ok"
    assert json.loads((root / "index.json").read_text())["milvus"]["uri"] == new_uri
