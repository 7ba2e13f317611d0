"""The Library API end to end on real encoders and the real model: enrol, query, verify, recover."""

import csv

import audiogen
import pytest

from voiceprint.errors import AudioError, DataError, NotFound
from voiceprint.library import Library, folder_items, read_manifest


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    """Two synthetic 'people' (different pitch and articulation), two clips each, plus a stereo call."""
    d = tmp_path_factory.mktemp("voices")
    files = {
        "a1": audiogen.speech_file(d / "a1.wav", seed=1, f0=110),
        "a2": audiogen.speech_file(d / "a2.flac", "flac", seed=2, f0=110),
        "b1": audiogen.speech_file(d / "b1.wav", seed=3, f0=210),
        "amr": audiogen.speech_file(d / "a_call.amr", "amr_nb", seed=1, f0=110),
    }
    files["stereo"] = audiogen.write_audio(d / "call_stereo.wav", audiogen.stereo_call(8.0), 16000)
    files["empty"] = d / "empty.wav"
    files["empty"].write_bytes(b"")
    files["junk"] = d / "junk.mp3"
    files["junk"].write_text("this is not audio")
    return files


@pytest.fixture
def lib(tmp_path):
    with Library.create(tmp_path / "lib", operator="tester") as lib:
        yield lib


def test_enrol_then_query_leads_to_person_phones_and_cases(lib, voices):
    out = lib.enrol(voices["a1"], person="Zhang San", category="prior_offender", phone="13800138000", case="AJ-1")
    assert out.status == "enrolled" and out.net_speech > 1.0
    lib.enrol(voices["b1"], person="Li Si", category="suspect")
    [result] = lib.query(voices["a1"], top=2)
    top = result["hits"][0]
    assert top["person"]["name"] == "Zhang San" and top["person"]["category"] == "prior_offender"
    assert top["cosine"] == pytest.approx(1.0, abs=1e-3)  # the very same recording, and the result says so
    assert any("itself enrolled as a sample of person" in w for w in result["warnings"])
    assert top["sample"]["file"] == "a1.wav"
    assert top["phones"] == ["+8613800138000"]
    assert [c["case_number"] for c in top["cases"]] == ["AJ-1"]
    assert len(result["hits"]) == 2 and result["hits"][1]["score"] < top["score"]
    assert lib.check_index()["status"] == "ok"
    assert lib.audit(action="query")[0]["target"] == f"sha256:{result['sha256']}"  # the full hash (issue 12)


def test_a_case_link_that_exists_is_not_audited_again(lib, voices):
    """Each manifest row of a person's case added two `case.link` rows, whether or not the link was new."""
    lib.enrol(voices["a1"], person="Zhang San", phone="13800138000", case="AJ-1")
    lib.enrol(voices["a2"], person="Zhang San", phone="13800138000", case="AJ-1")
    lib.link_case("AJ-1", person="Zhang San")
    assert sorted(next(iter(r["detail"])) for r in lib.audit(action="case.link")) == ["person", "phone"]


def test_index_check_looks_again_under_the_lock_before_it_says_stale(lib, voices, monkeypatch):
    """A save read half-way (its four files are replaced one by one), or a writer that came and went between the two
    reads, made `index check` say missing or stale (exit 5) in routine concurrent use."""
    lib.enrol(voices["a1"], person="Zhang San")
    real, answers = lib._compare_index, list[dict]()

    def compare():
        answers.append(real() | ({"status": "stale"} if not answers else {}))
        return answers[-1]

    monkeypatch.setattr(lib, "_compare_index", compare)
    assert lib.check_index()["status"] == "ok" and len(answers) == 2


def test_a_writer_opened_before_a_model_switch_writes_nothing_after_it(lib, voices):
    """Enrolment holds the lock per commit: a run opened on the old model could commit an old-model voiceprint (or save
    an index of the old model's rows: none) after `library reembed` switched the library between two of its files."""
    from voiceprint.errors import LibraryError
    from voiceprint.library import Library

    lib.enrol(voices["a1"], person="Zhang San")
    with Library.open(lib.root) as other, other.writing(), other.store.transaction():
        other.store.set_meta("model", "another-model")  # what the switch of a move does, in another process
    with pytest.raises(LibraryError, match="moved to speaker model 'another-model'.*run the same command again"):
        lib.enrol(voices["b1"], person="Li Si")
    assert lib.store.count("voiceprints") == 1


def test_a_killed_writers_registration_is_forgotten_by_the_next_open(lib):
    from voiceprint.library import Library
    from voiceprint.writers import WRITERS_DIR

    (lib.root / WRITERS_DIR).mkdir(exist_ok=True)
    (lib.root / WRITERS_DIR / "24702-fff36c7e").write_text("pid 24702 (root)")  # unlocked: its run was killed
    Library.open(lib.root).close()
    assert not (lib.root / WRITERS_DIR / "24702-fff36c7e").exists()


def test_enrolment_is_idempotent_by_file_hash_and_person(lib, voices):
    first = lib.enrol(voices["a1"], person="Zhang San")
    again = lib.enrol(voices["a1"], person="Zhang San")
    assert again.status == "already" and again.voiceprint_id == first.voiceprint_id
    assert lib.store.count("voiceprints") == 1
    assert len(lib.audit(action="enrol")) == 1


def test_a_person_is_searchable_by_the_mean_of_several_samples(lib, voices):
    lib.enrol(voices["a1"], person="Zhang San")
    lib.enrol(voices["a2"], person="Zhang San")  # 2.5 s of speech: below the enrolment gate, enrolled with a warning
    lib.enrol(voices["b1"], person="Li Si")
    [result] = lib.query(voices["a2"], top=2)
    top = result["hits"][0]
    assert top["person"]["name"] == "Zhang San" and top["voice_samples"] == 2
    # The person score is against the mean, the sample score against the best single sample.
    assert top["sample"]["score"] == pytest.approx(1.0, abs=1e-3)
    assert top["cosine"] < top["sample"]["score"]


def test_stereo_call_is_two_voices(lib, voices):
    with pytest.raises(AudioError, match="2 voices"):
        lib.enrol(voices["stereo"], person="Caller")
    assert lib.store.count("recordings") == 0
    assert lib.enrol(voices["stereo"], person="Caller", channel=0).channel == 0
    results = lib.query(voices["stereo"])
    assert [r["channel"] for r in results] == [0, 1]


def test_8khz_amr_nb_call_is_decoded_and_screened(lib, voices):
    lib.enrol(voices["a1"], person="Zhang San")
    lib.enrol(voices["b1"], person="Li Si")
    [result] = lib.query(voices["amr"])
    assert result["codec"] == "amr_nb" and result["source_rate"] == 8000
    assert result["hits"][0]["person"]["name"] == "Zhang San"


@pytest.mark.parametrize("key,match", [("empty", "empty"), ("junk", "not a readable audio file")])
def test_bad_audio_is_refused_and_leaves_nothing(lib, voices, key, match):
    with pytest.raises(AudioError, match=match):
        lib.enrol(voices[key], person="X")
    assert lib.store.count("recordings") == 0 and lib.store.count("persons") == 0
    assert not list(lib.root.glob("*.tmp"))


def test_enrol_many_collects_refusals_and_continues(lib, voices):
    items = read_manifest(_manifest(voices, lib.root.parent / "m.csv", ["a1", "junk", "b1"]))
    summary = lib.enrol_many(items)
    assert [o.status for o in summary.outcomes] == ["enrolled", "refused", "enrolled"]
    assert "junk.mp3" in summary.refused[0].reason


def test_missing_or_stale_index_is_rebuilt_from_the_database(lib, voices):
    lib.enrol(voices["a1"], person="Zhang San")
    from voiceprint.index import index_files

    for f in index_files(lib.root):
        (lib.root / f).unlink()
    lib._index = None
    assert lib.check_index()["status"] == "missing"
    assert lib.query(voices["a1"])[0]["hits"][0]["person"]["name"] == "Zhang San"
    assert lib.rebuild_index()["status"] == "ok"


def test_delete_person_removes_them_from_search(lib, voices):
    lib.enrol(voices["a1"], person="Zhang San")
    lib.enrol(voices["b1"], person="Li Si")
    lib.delete_person("Zhang San")
    hits = lib.query(voices["a1"])[0]["hits"]
    assert [h["person"]["name"] for h in hits] == ["Li Si"]
    assert lib.check_index()["status"] == "ok"


def test_a_deleted_persons_vectors_are_gone_from_every_file(lib):
    """Erasure: no file keeps a deleted voiceprint's bytes (its sample and its person's mean). Ten persons,
    one deleted: below the share that compacts a FAISS set, so the entry is masked; Milvus Lite deletes
    only mark a row of its SQLite file free (test_milvus runs this on Milvus Lite)."""
    from pathlib import Path

    import numpy as np
    from vectorgen import add_random_persons

    from voiceprint.index import person_means, read_backend

    vectors = add_random_persons(lib, 10, seed=7)
    with lib.writing():
        lib.save_index()
    erased = [vectors[0].tobytes(), person_means(np.array([1]), vectors[:1])[1][0].tobytes()]
    kept = vectors[1].tobytes()
    backend = read_backend(lib.root)

    def holding(data: bytes) -> list[str]:  # every file there is now (a save leaves its own set of index files)
        files = [p for p in lib.root.rglob("*") if p.is_file()] + ([Path(backend["uri"])] if backend["backend"] == "milvus" else [])
        return [p.name for p in files if data in p.read_bytes()]

    assert erased[0] in lib.store.db.execute("SELECT vector FROM voiceprints WHERE person_id = 1").fetchone()[0]
    assert holding(erased[0])  # the bytes to look for are there before
    lib.delete_person("Person 0")
    assert [holding(data) for data in erased] == [[], []]
    assert holding(kept)  # the search looks in the right places: a kept voiceprint is found there
    assert lib.check_index()["status"] == "ok"
    assert lib.index.search_persons(vectors[1], 1)[1][0][0] == 2


def test_verify_compares_two_recordings(lib, voices):
    same = lib.verify(voices["a1"], voices["a1"])
    other = lib.verify(voices["a1"], voices["b1"])
    assert same["cosine"] == pytest.approx(1.0, abs=1e-3) and other["score"] < same["score"]
    assert any("same recording" in w for w in same["a"]["warnings"]) and not other["a"]["warnings"]  # a file against itself
    assert lib.audit(action="verify")
    # a side with too little speech is weak evidence, whatever its LR, and the result says so
    short = audiogen.speech_file(voices["a1"].parent / "short.wav", seconds=2.5, seed=1, f0=110)
    weak = lib.verify(voices["a1"], short)
    assert weak["a"]["warnings"] == [] and weak["b"]["warnings"][0].startswith("weak recording: only")


def test_verify_gives_the_same_evidence_whichever_file_comes_first(lib):
    """Neither file of a 1:1 comparison is the enrolment: on one real speaker's 3.7 s and 2.1 s of speech
    the LLR was 6.59 one way and 6.19 the other (the calibration weighs the two sides' speech differently)."""
    from pathlib import Path

    import voiceprint

    speaker = Path(voiceprint.__file__).parent / "demo_data" / "so762_0024"
    ab = lib.verify(speaker / "interview_1.flac", speaker / "000240116.flac")
    ba = lib.verify(speaker / "000240116.flac", speaker / "interview_1.flac")
    assert ab["a"]["net_speech"] != pytest.approx(ab["b"]["net_speech"], abs=0.5)
    assert ba["score"] == pytest.approx(ab["score"], abs=1e-4)
    assert ba["llr"] == pytest.approx(ab["llr"], abs=1e-3) and ba["verbal"] == ab["verbal"]


def test_manifest_gbk_encoding_and_duplicate_rows(tmp_path, voices):
    path = tmp_path / "m.csv"
    text = f"path,person,category,phone,case\n{voices['a1']},张三,前科,13800138000,AJ-1\n{voices['a1']},张三,前科,13800138000,AJ-1\n"
    path.write_bytes(text.encode("gbk"))
    items = read_manifest(path)
    assert len(items) == 1 and items[0].person == "张三"
    bad = tmp_path / "bad.csv"
    bad.write_text("file,who\nx,y\n")
    with pytest.raises(DataError, match=r"lacks column\(s\) path, person \(it has file, who\)"):
        read_manifest(bad)
    bad.write_text("path,person\n")
    with pytest.raises(DataError, match="header but no rows"):
        read_manifest(bad)


@pytest.mark.parametrize("separator, encoding", [("\t", "utf-16"), ("\uff0c", "utf-8"), (";", "gbk"), ("\t", "utf-8-sig")])
def test_a_manifest_as_spreadsheets_save_it_is_read(tmp_path, voices, separator, encoding):
    """Excel's "Unicode text" (UTF-16, tabs) and full-width commas typed in a Chinese spreadsheet were refused as
    a manifest without the path and person columns."""
    path = tmp_path / "m.txt"
    rows = [["path", "person", "category"], [str(voices["a1"]), "张三", "suspect"], [str(voices["b1"]), "李四", ""]]
    path.write_bytes("\r\n".join(separator.join(r) for r in rows).encode(encoding))
    assert [(i.path, i.person) for i in read_manifest(path)] == [(str(voices["a1"]), "张三"), (str(voices["b1"]), "李四")]


def test_folder_layout_gives_one_person_per_subfolder(tmp_path, voices):
    for who in ("zhang", "li"):
        (tmp_path / who).mkdir()
        (tmp_path / who / "x.wav").write_bytes(voices["a1"].read_bytes())
    assert sorted(i.person for i in folder_items(tmp_path)) == ["li", "zhang"]
    with pytest.raises(DataError):
        folder_items(tmp_path / "zhang")  # files directly in the folder need --person


def _manifest(voices, path, keys):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "person", "category", "phone", "case"])
        for k in keys:
            w.writerow([voices[k], f"person-{k}", "suspect", "", ""])
    return path


SHARED = audiogen.shared_data_dir()


@pytest.mark.skipif(SHARED is None, reason="../shared/data (real speech) is not present")
def test_real_speakers_are_identified(tmp_path):
    """Five real speechocean762 speakers, three enrolment recordings each, one query each."""
    rows = list(csv.DictReader(open(SHARED / "speechocean762" / "manifest.csv")))
    speakers = sorted({r["speaker"] for r in rows})[:5]
    lib = Library.create(tmp_path / "lib")
    queries = {}
    for s in speakers:
        mine = [r for r in rows if r["speaker"] == s]
        for r in mine[:3]:
            lib.enrol(SHARED / "speechocean762" / r["path"], person=s)  # single utterances: below the gate, enrolled with a warning
        queries[s] = SHARED / "speechocean762" / mine[6]["path"]
    correct = sum(lib.query(q)[0]["hits"][0]["person"]["name"] == s for s, q in queries.items())
    assert correct >= 4


def test_enrolling_by_name_follows_the_one_person_of_that_name_and_refuses_a_guess(lib, voices):
    first = lib.enrol(voices["a1"], person="张伟", id_number="510104199001011234")
    # by name alone: the one 张伟 there is, not a second person
    assert lib.enrol(voices["a2"], person="张伟").person_id == first.person_id
    lib.enrol(voices["b1"], person="张伟", id_number="510104199202022345")  # another 张伟, told apart by ID number
    with pytest.raises(NotFound, match="2 persons are named '张伟'.*give the ID number"):
        lib.enrol(voices["amr"], person="张伟")
    assert lib.store.count("persons") == 2 and lib.store.count("voiceprints") == 3


def test_one_voice_of_one_recording_is_never_two_peoples(lib, voices):
    lib.enrol(voices["a1"], person="Zhang San")
    with pytest.raises(DataError, match="already enrolled for person 1"):
        lib.enrol(voices["a1"], person="Li Si")  # the same file filed under another name
    assert lib.store.count("voiceprints") == 1 and lib.store.count("persons") == 1  # Li Si not left behind either
    # the two voices of one stereo call are two persons' samples
    lib.enrol(voices["stereo"], person="Caller", channel=0)
    assert lib.enrol(voices["stereo"], person="Callee", channel=1).status == "enrolled"


def test_screening_a_call_gives_the_lr_a_query_gives(lib, voices):
    """An 8 kHz call is calibrated as narrowband wherever it is scored: screen and case filing too."""
    lib.enrol(voices["a1"], person="Zhang San")
    lib.enrol(voices["b1"], person="Li Si")
    [asked] = lib.query(voices["amr"], top=2)
    [screened] = lib.links.screen([str(voices["amr"])], top=2)
    assert [(h["person"]["id"], h["log10_lr"]) for h in screened["hits"]] == [(h["person"]["id"], h["log10_lr"]) for h in asked["hits"]]


def test_enrolling_with_another_persons_number_moves_it_and_says_so(lib, voices):
    """A manifest row giving Zhang San's number to Li Si moved it silently: only the audit showed it."""
    lib.enrol(voices["a1"], person="Zhang San", phone="13800138000")
    out = lib.enrol(voices["b1"], person="Li Si", phone="13800138000")
    assert out.status == "enrolled"
    assert any("phone 13800138000 was registered to person" in w for w in out.warnings)
    assert lib.person_card(int(out.person_id))["phones"] == ["+8613800138000"]
    assert lib.audit(action="phone.assign")


def test_a_writer_taking_the_lock_again_and_again_still_lets_a_waiting_writer_in(lib):
    """A run commits file after file, letting the lock go in between: a writer waiting for it gets it at the end of
    one commit (it takes the turn first), not only if it happens to poll in a gap of a few microseconds."""
    import subprocess
    import sys
    import time

    loop = ("import sys, time\nfrom voiceprint.library import Library\nlib = Library.open(sys.argv[1])\n"
            "end = time.monotonic() + 60\nprint('go', flush=True)\n"
            "while time.monotonic() < end:\n    with lib.writing():\n        time.sleep(0.02)\n")
    other = subprocess.Popen([sys.executable, "-c", loop, str(lib.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "go"
        time.sleep(0.5)
        started = time.monotonic()
        with lib.writing(wait=10):
            waited = time.monotonic() - started
        assert other.poll() is None and waited < 5
    finally:
        other.kill()
        other.wait()
