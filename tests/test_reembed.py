"""Moving a library from ``ecapa-voxceleb`` to ``campplus-zh-en`` (issue 13): real networks, tiny audio."""

import csv
import json
import shutil

import audiogen
import numpy as np
import pytest

from voiceprint.cli import run
from voiceprint.embedding import load_spec
from voiceprint.library import Library
from voiceprint.reembed import ReembedIncomplete, reembed
from voiceprint.store import verify_audit_chain, verify_seals

OLD, NEW = "ecapa-voxceleb", "campplus-zh-en"
PEOPLE = {  # file -> (person, phone, case, seed, f0, channel); Wang Wu speaks on the right channel of a stereo call
    "zhang.wav": ("Zhang San", "13800138000", "AJ-1", 1, 110, None),
    "li.flac": ("Li Si", "13900139000", "AJ-2", 3, 210, None),
    "wang.wav": ("Wang Wu", "13700137000", "AJ-1", 5, 160, 1),
}


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    d = tmp_path_factory.mktemp("enrolled")
    for name, (_, _, _, seed, f0, channel) in PEOPLE.items():
        if channel is None:
            audiogen.speech_file(d / name, "flac" if name.endswith(".flac") else "wav_pcm16", seconds=3.0, seed=seed, f0=f0)
        else:
            other = audiogen.synth_speech(3.0, seed=7, f0=250)
            audiogen.write_audio(d / name, np.stack([other, audiogen.synth_speech(3.0, seed=seed, f0=f0)]), 16000, "wav_pcm16")
    return d


@pytest.fixture(scope="module")
def template(tmp_path_factory, audio):
    """An ECAPA library with three persons, their phones and cases (copied per test)."""
    root = tmp_path_factory.mktemp("template") / "lib"
    with Library.create(root, model=OLD, operator="tester") as lib:
        for name, (person, phone, case, _, _, channel) in PEOPLE.items():
            lib.enrol(audio / name, person=person, category="suspect", phone=phone, case=case, channel=channel)
        lib.add_case("AJ-3", title="no person yet")
    return root


@pytest.fixture
def lib_path(tmp_path, template):
    dest = tmp_path / "lib"
    shutil.copytree(template, dest)
    return dest


def _snapshot(lib: Library) -> dict:
    db = lib.store.db
    return {
        "persons": [tuple(r) for r in db.execute("SELECT id, name, id_number, category, seal FROM persons ORDER BY id")],
        "phones": [tuple(r) for r in db.execute("SELECT id, number, person_id FROM phones ORDER BY id")],
        "cases": [tuple(r) for r in db.execute("SELECT id, case_number, title FROM cases ORDER BY id")],
        "links": [tuple(r) for r in db.execute("SELECT * FROM person_cases UNION ALL SELECT * FROM phone_cases")],
        "recordings": [tuple(r) for r in db.execute("SELECT id, sha256, channel, quality FROM recordings ORDER BY id")],
        "audit": [tuple(r) for r in db.execute("SELECT id, hash FROM audit ORDER BY id")],
    }


def test_move_keeps_persons_phones_cases_and_audit_and_a_rerun_is_a_no_op(lib_path, audio):
    with Library.open(lib_path) as lib:
        before = _snapshot(lib)
        summary = reembed(lib, NEW, [audio])
        assert summary.switched and summary.embedded == 3 and not summary.missing
        assert lib.model == NEW
        after = _snapshot(lib)
    for key in ("persons", "phones", "cases", "links", "recordings"):
        assert after[key] == before[key], key
    assert after["audit"][: len(before["audit"])] == before["audit"]  # the trail only grew
    with Library.open(lib_path) as lib:
        assert lib.model == NEW and lib.store.get_meta("model_fingerprint") == load_spec(NEW).fingerprint
        assert {r[0] for r in lib.store.db.execute("SELECT model FROM voiceprints")} == {NEW}
        assert verify_seals(lib.store)["ok"] and verify_audit_chain(lib.store)["ok"]
        assert lib.check_index()["status"] == "ok"
        for name, (person, phone, _, _, _, channel) in PEOPLE.items():
            [result] = lib.query(audio / name, top=3, channel=channel)
            top = result["hits"][0]
            assert top["person"]["name"] == person and top["phones"] == [f"+86{phone}"]
            assert top["sample"]["score"] == pytest.approx(1.0, abs=1e-3)  # the same voice of the same recording
        [row] = lib.audit(action="library.reembed")
        assert row["detail"]["from_model"] == OLD and row["detail"]["embedded"] == 3 and row["detail"]["removed_old"] == 3
        assert (lib_path / row["detail"]["backup"]).is_file()
        n_audit = lib.store.count("audit")
    assert run(["verify-library", "--library", str(lib_path)]) == 0
    with Library.open(lib_path) as lib:
        again = reembed(lib, NEW, [audio])
        assert not again.switched and again.embedded == 0 and lib.store.count("audit") == n_audit + 0
    assert run(["library", "reembed", "--model", NEW, "--audio", str(audio), "--library", str(lib_path)]) == 0


def test_missing_recording_is_refused_then_resumed_or_dropped(lib_path, audio, tmp_path, capsys):
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("zhang.wav", "li.flac"):
        shutil.copy(audio / name, partial / f"renamed_{name}")  # found by content, not by name
    assert run(["library", "reembed", "--model", NEW, "--audio", str(partial), "--library", str(lib_path), "--dry-run"]) == 0
    assert "would re-embed 2 of 3" in capsys.readouterr().out
    report = tmp_path / "missing.csv"
    code = run(["library", "reembed", "--model", NEW, "--audio", str(partial), "--library", str(lib_path), "--report", str(report)])
    err = capsys.readouterr().err
    assert code == 7 and "1 of 3 enrolled recording(s) were not found" in err and len(err.strip().splitlines()) == 1
    [row] = list(csv.DictReader(report.open(encoding="utf-8")))
    assert row["original_name"] == "wang.wav"
    with Library.open(lib_path) as lib:
        assert lib.model == OLD and lib.store.count_voiceprints(NEW) == 2  # kept for the next run
        assert lib.check_index()["status"] == "ok" and verify_seals(lib.store)["ok"]
        with pytest.raises(ReembedIncomplete):
            reembed(lib, NEW, [partial])
        summary = reembed(lib, NEW, [partial], allow_missing=True)
        assert summary.switched and summary.already == 2 and summary.embedded == 0
        wang = lib.store.find_person("Wang Wu")["id"]
        assert summary.dropped_persons == [wang]
        assert lib.person(wang)["phones"] == ["+8613700137000"]  # the person stays, without a voiceprint
        assert lib.store.count("voiceprints") == 2 and verify_seals(lib.store)["ok"]
        assert lib.audit(action="library.reembed")[0]["detail"]["dropped_persons"] == [wang]


def test_dry_run_changes_nothing(lib_path, audio, capsys):
    with Library.open(lib_path) as lib:
        before = _snapshot(lib)
    assert run(["library", "reembed", "--model", NEW, "--audio", str(audio), "--library", str(lib_path), "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dry_run"] and out["found"] == 3 and out["missing"] == 0 and not out["switched"]
    with Library.open(lib_path) as lib:
        assert _snapshot(lib) == before and lib.model == OLD and lib.store.count_voiceprints(NEW) == 0



def test_a_kept_web_upload_is_used_when_no_folder_holds_the_file(lib_path, audio, tmp_path):
    from voiceprint.voices import file_sha256
    from voiceprint.web.accounts import upload_path

    kept = upload_path(lib_path, file_sha256(audio / "wang.wav"))
    kept.parent.mkdir(parents=True)
    shutil.copy(audio / "wang.wav", kept)
    only_two = tmp_path / "two"
    only_two.mkdir()
    for name in ("zhang.wav", "li.flac"):
        shutil.copy(audio / name, only_two / name)
    with Library.open(lib_path) as lib:
        plan = reembed(lib, NEW, [only_two], dry_run=True)
    assert plan.found == 3 and not plan.missing and not plan.switched


def test_an_interrupted_run_keeps_its_committed_batches(lib_path, audio):
    asked: list[int] = []

    def stop_after_first_batch() -> bool:
        asked.append(1)
        return len(asked) > 1

    with Library.open(lib_path) as lib:
        with pytest.raises(KeyboardInterrupt):
            reembed(lib, NEW, [audio], batch=1, should_stop=stop_after_first_batch)
        assert lib.model == OLD and lib.store.count_voiceprints(NEW) == 1 and lib.store.count_voiceprints(OLD) == 3
        with lib.writing(wait=0):  # the lock was let go
            pass
        assert lib.check_index()["status"] == "ok" and verify_seals(lib.store)["ok"]


def test_an_erasure_reaches_the_copy_the_move_left(lib_path, audio, capsys):
    """Deletion and retention erase a person from the pre-move copy too: it must not outlive its retention there."""
    import sqlite3

    from voiceprint.reembed import copies_of
    from voiceprint.retention import apply_retention, set_retention

    with Library.open(lib_path) as lib:
        reembed(lib, NEW, [audio])
        [copy] = copies_of(lib_path)
        zhang = int(lib.store.find_person("Zhang San")["id"])
        li = int(lib.store.find_person("Li Si")["id"])
    assert run(["person", "delete", str(zhang), "--yes", "--library", str(lib_path)]) == 0
    assert f"also erased from {copy.name}" in capsys.readouterr().err
    with Library.open(lib_path) as lib:
        set_retention(lib, li, "2000-01-01")
        result = apply_retention(lib)
        assert result["erased"] == 1 and result["copies"] == [copy.name]
        [row] = lib.audit(action="person.erase_copies", limit=1)
        assert row["detail"]["persons"] == [li] and row["detail"]["copies"] == [copy.name]
    db = sqlite3.connect(copy)
    assert {r[0] for r in db.execute("SELECT name FROM persons")} == {"Wang Wu"}
    assert db.execute("SELECT count(*) FROM voiceprints WHERE person_id IN (?, ?)", (zhang, li)).fetchone()[0] == 0
    db.close()
    assert oct(copy.stat().st_mode & 0o777) == "0o600"
    assert not any(p.name.endswith("-wal") and p.stat().st_size for p in lib_path.iterdir())  # no log keeps the erased pages


def test_an_empty_file_a_full_disk_left_is_not_a_copy_and_stays_empty(lib_path):
    """A full disk left a 0-byte `before-reembed` file; an erasure opened it as a database and wrote an empty library into it."""
    from voiceprint.reembed import COPY_PREFIX, copies_of

    empty = lib_path / f"{COPY_PREFIX}20261207T175520"
    empty.write_bytes(b"")
    assert copies_of(lib_path) == []
    with Library.open(lib_path) as lib:
        lib.delete_person("Zhang San")
    assert empty.stat().st_size == 0
