"""Issue 12: the store proves its integrity, deletion erases, retention, and the smaller audit items.

The libraries here hold voiceprints written straight through the store (random unit vectors), so
no speaker model is loaded: seals, erasure and retention do not depend on what the vectors mean.
"""

import csv
import json
import os
import sqlite3
import stat

import numpy as np
import pytest

from voiceprint import scoring
from voiceprint.cli import run
from voiceprint.errors import LibraryError, ModelError
from voiceprint.library import Library, read_manifest
from voiceprint.store import KEY_NAME, MIGRATIONS, verify_seals

ID_NUMBER = "510104199001017777"
#: A float32 whose bytes are easy to find in a file: 0x4B1D_FACE (not a value an embedding takes).
MARKER = np.frombuffer(bytes.fromhex("cefa1d4b"), np.float32)[0]


def _vec(seed: int, dim: int = 192) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def _enrol_direct(lib, name: str, seed: int, id_number: str = "", vector=None) -> tuple[int, int]:
    """A person with one voiceprint, written through the store as an enrolment would."""
    with lib.store.transaction():
        pid = lib.store.add_person(name, id_number)
        rid = lib.store.add_recording(f"{seed:064x}", 0, f"{name}.wav", 10.0, 8.0, 16000)
        vid = lib.store.add_voiceprint(rid, pid, lib.model, _vec(seed) if vector is None else vector)
    return pid, vid


@pytest.fixture
def two(tmp_path):
    """A library of two persons, one voiceprint each, with its index built."""
    with Library.create(tmp_path / "lib", operator="tester") as lib:
        _enrol_direct(lib, "Zhang San", 1)
        _enrol_direct(lib, "Li Si", 2)
        lib.rebuild_index()
    return tmp_path / "lib"


def _tamper(root, sql_params, forge=True, drop_triggers=False):
    """What an insider with file access does: edit the database with sqlite3, not through voiceprint."""
    db = sqlite3.connect(root / "library.sqlite")
    if forge:  # the toolkit's seal function does not exist here; a forger supplies one
        db.create_function("vp_seal_voiceprint", 6, lambda *a: "0" * 64)
        db.create_function("vp_seal_person", 5, lambda *a: "0" * 64)
    if drop_triggers:
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
            db.execute(f'DROP TRIGGER "{name}"')
    for sql, params in sql_params:
        db.execute(sql, params)
    db.commit()
    db.close()


def _swap_vectors(root, **kw):
    db = sqlite3.connect(root / "library.sqlite")
    (a, va), (b, vb) = db.execute("SELECT id, vector FROM voiceprints ORDER BY id").fetchall()
    db.close()
    _tamper(root, [("UPDATE voiceprints SET vector = ? WHERE id = ?", (vb, a)),
                   ("UPDATE voiceprints SET vector = ? WHERE id = ?", (va, b))], **kw)
    return a, b


# -- integrity seals ----------------------------------------------------------------------------
def test_new_library_has_a_private_key_and_every_row_sealed(two):
    key = two / KEY_NAME
    assert key.exists() and stat.S_IMODE(os.stat(key).st_mode) == 0o600
    with Library.open(two) as lib:
        report = verify_seals(lib.store)
        assert report["ok"] and report["voiceprints_checked"] == 2 and report["persons_checked"] == 2
        assert all(len(r[0]) == 64 for r in lib.store.db.execute("SELECT seal FROM voiceprints"))


def test_plain_sqlite3_cannot_write_a_voiceprint(two):
    db = sqlite3.connect(two / "library.sqlite")
    with pytest.raises(sqlite3.OperationalError, match="vp_seal_voiceprint"):
        db.execute("UPDATE voiceprints SET vector = vector")
    db.close()


@pytest.mark.parametrize("how", [{"forge": True}, {"forge": False, "drop_triggers": True}])
def test_swapped_vectors_are_named_by_every_check_and_nothing_is_built_or_answered_from_them(two, capsys, how):
    """The issue's attack: two voiceprint vectors swapped with sqlite3 directly."""
    a, b = _swap_vectors(two, **how)
    lib = str(two)
    capsys.readouterr()
    assert run(["verify-library", "--library", lib, "--json"]) == 5
    out, err = capsys.readouterr()
    failing = {(f["table"], f["id"]) for f in json.loads(out)["failures"]}
    assert failing == {("voiceprints", a), ("voiceprints", b)}
    assert "integrity check failed" in err and f"voiceprint {a}" in err and f"voiceprint {b}" in err
    assert run(["index", "check", "--library", lib]) == 5
    assert f"voiceprint {a}, voiceprint {b}" in capsys.readouterr().err
    if how.get("drop_triggers"):
        assert run(["verify-library", "--library", lib]) == 5
        assert "seal triggers removed" in capsys.readouterr().err
    assert run(["index", "rebuild", "--library", lib]) == 5  # refuses to rebuild from tampered rows
    assert "nothing is built" in capsys.readouterr().err
    assert run(["index", "check", "--library", lib]) == 5  # and the check still fails afterwards
    with Library.open(two) as opened, pytest.raises(LibraryError, match="fail their integrity seal"):
        opened.search_vector(_vec(1), 2)  # a query never scores altered rows


def test_an_index_update_checks_the_rows_it_reads(two):
    """Each enrolment updates the index from its persons' rows only (a full check per enrolment would
    cost O(library): seconds at 10^5 voiceprints), and those rows are checked before they are read."""
    _tamper(two, [("UPDATE voiceprints SET vector = ? WHERE person_id = 1", (_vec(9).tobytes(),))])
    with Library.open(two) as lib:
        _ = lib.index
        with lib.writing():
            _enrol_direct(lib, "Wang Wu", 3)  # another person: the update reads Wang Wu's rows, not Zhang San's
            lib.save_index()
        assert lib.index.size == 3
        with lib.writing(), lib.store.transaction():  # a second sample for the tampered person
            rid = lib.store.add_recording(f"{4:064x}", 0, "z2.wav", 10.0, 8.0, 16000)
            lib.store.add_voiceprint(rid, 1, lib.model, _vec(4))
        with lib.writing(), pytest.raises(LibraryError, match="fail their integrity seal: voiceprint 1 -"):
            lib.save_index()  # refuses to read Zhang San's altered row into the index
        with pytest.raises(LibraryError, match="fail their integrity seal"):
            lib.search_vector(_vec(1), 3)  # and no query scores it


def test_renamed_person_and_edited_recording_hash_are_caught(two):
    _tamper(two, [("UPDATE persons SET name = 'Wang Wu' WHERE id = 1", ()),
                  ("UPDATE recordings SET sha256 = ? WHERE id = 2", ("f" * 64,))])
    with Library.open(two) as lib:
        report = verify_seals(lib.store)
    assert not report["ok"]
    assert {(f["table"], f["id"]) for f in report["failures"]} == {("persons", 1), ("voiceprints", 2)}


def test_changes_made_through_voiceprint_keep_the_seals(two, capsys):
    with Library.open(two) as lib:
        lib.add_phone("13800138000", "Zhang San")
        _enrol_direct(lib, "Wang Wu", 3)
    assert run(["person", "update", "Zhang San", "--category", "suspect", "--retain-until", "2031-01-01", "--library", str(two)]) == 0
    assert run(["verify-library", "--library", str(two)]) == 0
    assert "ok: 3 voiceprint(s) and 3 person(s) verified" in capsys.readouterr().out
    assert run(["index", "rebuild", "--library", str(two)]) == 0


def _schema2_library(root):
    """A library as the previous release wrote it (schema 2, no seals, no key)."""
    root.mkdir(mode=0o700)
    db = sqlite3.connect(root / "library.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    for number, script in enumerate(MIGRATIONS[:2]):
        db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number + 1};\nCOMMIT;")
    from voiceprint.embedding import load_spec

    spec = load_spec()
    for k, v in {"model": spec.name, "model_fingerprint": spec.fingerprint, "embedding_dim": "192", "generation": "1"}.items():
        db.execute("INSERT INTO meta VALUES (?, ?)", (k, v))
    db.execute("INSERT INTO persons(name, id_number, category, created_at) VALUES ('Old Case', '', 'suspect', 0)")
    db.execute("INSERT INTO recordings(sha256, original_name, duration, net_speech, sample_rate, created_at)"
               " VALUES (?, 'old.wav', 10, 8, 16000, 0)", ("a" * 64,))
    db.execute("INSERT INTO voiceprints(recording_id, person_id, model, vector, created_at) VALUES (1, 1, ?, ?, 0)",
               (spec.name, _vec(5).tobytes()))
    db.close()


def test_older_library_gets_a_key_and_its_rows_sealed_once_audited(tmp_path):
    _schema2_library(tmp_path / "old")
    with Library.open(tmp_path / "old") as lib:
        assert verify_seals(lib.store)["ok"]
        [row] = lib.audit(action="integrity.seal")
        assert row["detail"] == {"voiceprints": 1, "persons": 1}
    with Library.open(tmp_path / "old") as lib:  # never again
        assert len(lib.audit(action="integrity.seal")) == 1
    assert stat.S_IMODE(os.stat(tmp_path / "old" / KEY_NAME).st_mode) == 0o600


def test_an_unsealed_library_with_a_key_already_is_not_sealed_wholesale(tmp_path):
    _schema2_library(tmp_path / "old")
    (tmp_path / "old" / KEY_NAME).write_text("ab" * 32)  # as if the database were set back to 'unsealed'
    with pytest.raises(LibraryError, match="never sealed"):
        Library.open(tmp_path / "old")


def test_lost_key_refuses_to_open_until_an_audited_reseal(two, capsys):
    (two / KEY_NAME).unlink()
    assert run(["person", "list", "--library", str(two)]) == 5
    err = capsys.readouterr().err
    assert "library.key is missing" in err and "--reseal" in err
    assert run(["verify-library", "--library", str(two)]) == 5  # without --reseal it only reports
    assert run(["verify-library", "--reseal", "--yes", "--library", str(two)]) == 0
    with Library.open(two) as lib:
        assert lib.audit(action="integrity.reseal")[0]["detail"]["voiceprints"] == 2


# -- the model that answers ---------------------------------------------------------------------
def test_a_library_refuses_a_model_with_another_fingerprint(two, tmp_path, capsys):
    query = tmp_path / "q.wav"
    query.write_bytes(b"")  # never decoded: the model is checked first or the audio fails; either way no answer
    _tamper(two, [("UPDATE meta SET value = 'deadbeefdeadbeef' WHERE key = 'model_fingerprint'", ())], forge=False)
    with Library.open(two) as lib, pytest.raises(ModelError, match="re-enrol the original recordings") as err:
        lib._embedder()
    assert "deadbeefdeadbeef" in str(err.value) and "voiceprint init --library NEW" in str(err.value)
    assert ModelError.exit_code == 4
    assert run(["verify-library", "--library", str(two)]) == 5  # the fingerprint is part of every seal


def test_shipped_models_hash_their_back_ends_and_load():
    from voiceprint.embedding import load_spec

    for name in ("ecapa-voxceleb", "ecapa-ge2e"):
        spec = load_spec(name)
        meta = json.loads((spec.home / "model.json").read_text())
        assert "backend/backend.json" in meta[scoring.EVIDENCE_KEY]
        scoring.verify_backend_files(spec)
    assert "centres.npz" in json.loads((load_spec("ecapa-ge2e").home / "model.json").read_text())[scoring.EVIDENCE_KEY]


def test_an_edited_backend_json_is_refused(model_copy):
    meta = json.loads((model_copy / "backend" / "backend.json").read_text())
    meta["llr_limit"]["all"] = [-50.0, 50.0]  # LRs a hundred orders of magnitude beyond the data
    (model_copy / "backend" / "backend.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="backend/backend.json fails its checksum"):
        scoring.load_backend()


def test_an_unhashed_backend_is_refused_until_trusted(model_copy, capsys):
    meta = json.loads((model_copy / "model.json").read_text())
    del meta[scoring.EVIDENCE_KEY]
    (model_copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="not hashed in model.json"):
        scoring.load_backend()
    assert run(["models", "trust-evidence", model_copy.name]) == 4  # shows the hashes, records nothing
    assert run(["models", "trust-evidence", model_copy.name, "--trust"]) == 0
    scoring._LOADED.clear()
    assert scoring.load_backend() is not None


# -- erasure ------------------------------------------------------------------------------------
def _library_bytes(root) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.iterdir()) if p.is_file())


def test_deleted_person_leaves_no_id_number_or_vector_in_database_wal_or_index(tmp_path):
    vector = np.full(192, MARKER, np.float32)
    pattern = vector[:8].tobytes()
    with Library.create(tmp_path / "lib", operator="tester") as lib:
        lib.store.db.execute("PRAGMA wal_autocheckpoint = 0")  # keep every page in the WAL until we checkpoint
        _enrol_direct(lib, "Keep Me", 1)
        pid, _ = _enrol_direct(lib, "Erase Me", 2, ID_NUMBER, vector=vector)
        lib.add_phone("13800138000", pid)
        lib.rebuild_index()
        before = _library_bytes(lib.root)
        assert ID_NUMBER.encode() in before and pattern in before  # the test can see them
        result = lib.delete_person(pid)
        assert result["wal"]["busy"] is False
        after = _library_bytes(lib.root)
        assert ID_NUMBER.encode() not in after and pattern not in after
        assert b"Erase Me" not in after
        assert lib.store.db.execute("PRAGMA secure_delete").fetchone()[0] == 1
        wal = lib.root / "library.sqlite-wal"
        assert not wal.exists() or wal.stat().st_size == 0
        # What deletion keeps: the phone number (case data), now registered to no one.
        assert [tuple(r) for r in lib.store.db.execute("SELECT person_id FROM phones")] == [(None,)]


# -- retention ----------------------------------------------------------------------------------
def test_retention_apply_erases_persons_past_their_date_audited(tmp_path, capsys):
    library = str(tmp_path / "lib")
    assert run(["init", "--library", library]) == 0
    assert run(["person", "add", "Past", "--retain-until", "2020-01-31", "--phone", "13800138000", "--library", library]) == 0
    assert run(["person", "add", "Future", "--retain-until", "2999-12-31", "--library", library]) == 0
    assert run(["person", "add", "Forever", "--library", library]) == 0
    assert run(["person", "add", "Bad date", "--retain-until", "31/01/2020", "--library", library]) == 8
    with Library.open(library) as lib:
        assert [p["name"] for p in lib.persons()] == ["Past", "Future", "Forever"]  # the bad date added nothing
        _, vid = _enrol_direct(lib, "Past", 7)
    capsys.readouterr()
    assert run(["retention", "apply", "--dry-run", "--json", "--library", library]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [p["retain_until"] for p in plan["persons"]] == ["2020-01-31"] and plan["erased"] == 0
    assert run(["retention", "apply", "--library", library]) == 0
    assert "erased 1 person(s)" in capsys.readouterr().out
    with Library.open(library) as lib:
        assert [p["name"] for p in lib.persons()] == ["Future", "Forever"]
        assert lib.store.count("voiceprints") == 0 and lib.store.count("phones") == 1
        assert lib.audit(action="retention.erase")[0]["detail"]["retain_until"] == "2020-01-31"
        assert lib.audit(action="retention.apply")[0]["detail"]["persons"] == 1
        assert lib.audit(action="person.delete")
        assert verify_seals(lib.store)["ok"] and lib.check_index()["status"] == "ok"
    assert run(["person", "update", "Future", "--retain-until", "none", "--library", library]) == 0
    assert run(["retention", "apply", "--as-of", "3000-01-01", "--json", "--dry-run", "--library", library]) == 0
    capsys.readouterr()
    # a date to come would erase persons whose retention has not passed: refused, and nobody is erased
    assert run(["retention", "apply", "--as-of", "3000-01-01", "--library", library]) == 8
    assert "is in the future" in capsys.readouterr().err
    with Library.open(library) as lib:
        assert [p["name"] for p in lib.persons()] == ["Future", "Forever"]


# -- smaller items (issue 12, item 7) -----------------------------------------------------------
@pytest.mark.parametrize("command", [
    ["person", "add", "X"], ["phone", "add", "13800138000"], ["case", "add", "AJ-1"], ["person", "list"],
    ["verify", "a.wav", "b.wav"], ["query", "a.wav"], ["case", "add-recording", "AJ-1", "a.wav"],
])
def test_a_misspelt_library_is_not_created(tmp_path, capsys, command):
    typo = tmp_path / "contry"
    assert run([*command, "--library", str(typo)]) == 7
    assert "voiceprint init" in capsys.readouterr().err
    assert not typo.exists()


def test_refused_enrolment_and_failed_query_leave_audit_rows_with_the_full_hash(tmp_path, capsys):
    library = str(tmp_path / "lib")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x00\x00garbage")
    import hashlib

    digest = hashlib.sha256(junk.read_bytes()).hexdigest()
    assert run(["init", "--library", library]) == 0
    assert run(["enrol", str(junk), "--person", "X", "--library", library]) == 3
    assert run(["query", str(junk), "--library", library]) == 3
    with Library.open(library) as lib:
        [refused] = lib.audit(action="enrol.refused")
        [failed] = lib.audit(action="query.failed")
    for row in (refused, failed):
        assert row["target"] == f"sha256:{digest}" and row["detail"]["error"] == "AudioError"
        assert "junk" not in json.dumps(row["detail"], ensure_ascii=False)  # the file's name is not kept


def test_a_refusal_keeps_no_file_name_in_the_audit_trail_which_outlives_erasure(tmp_path, capsys):
    """A refused file named after its person (name and ID number) left both in the trail after the person was erased."""
    library = str(tmp_path / "lib")
    named = tmp_path / "张伟_510104199001011234_审讯.wav"
    named.write_bytes(b"RIFF\x00\x00garbage")
    assert run(["init", "--library", library]) == 0
    assert run(["enrol", str(named), "--person", "张伟", "--library", library]) == 3
    assert run(["query", str(named), "--library", library]) == 3
    assert "张伟_510104199001011234" in capsys.readouterr().err  # the operator is still told which file
    with Library.open(library) as lib:
        trail = json.dumps(lib.audit(limit=1000), ensure_ascii=False)
    assert "510104199001011234" not in trail and "张伟" not in trail


def test_duplicated_manifest_rows_are_counted_in_the_summary_and_report(tmp_path, capsys):
    m = tmp_path / "m.csv"
    m.write_text("path,person\nmissing.wav,A\nother.wav,B\nmissing.wav,A\nmissing.wav,A\n")
    items = read_manifest(m)
    assert len(items) == 2 and [d["line"] for d in items.duplicates] == [4, 5]
    report = tmp_path / "report.csv"
    assert run(["enrol", str(m), "--report", str(report), "--library", str(tmp_path / "lib")]) == 3
    assert "refused 2, duplicate rows 2 (enrolled once)" in capsys.readouterr().out
    rows = list(csv.DictReader(report.open()))
    assert [r["status"] for r in rows] == ["refused", "refused", "duplicate", "duplicate"]
    assert rows[2]["reason"] == "line 4 repeats line 2"


def test_a_damaged_key_file_is_one_line_not_an_internal_error(two, capsys):
    right = (two / KEY_NAME).read_bytes()
    try:
        (two / KEY_NAME).write_bytes(right + b"x\xff")
        assert run(["person", "list", "--library", str(two)]) == 5
        err = capsys.readouterr().err
        assert "is not a library key (damaged) - restore it from the backup" in err and "internal error" not in err
    finally:
        (two / KEY_NAME).write_bytes(right)


def test_a_key_from_another_library_is_refused_before_anything_is_written(two, tmp_path, capsys):
    """A wrong key (restored from another backup) is not 4 edits; and an enrolment under it wrote rows sealed
    with that key, which then failed under the right one: the library stopped working."""
    import sqlite3

    import audiogen

    right = (two / KEY_NAME).read_bytes()
    counts = [sqlite3.connect(two / "library.sqlite").execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("voiceprints", "audit")]
    (two / KEY_NAME).write_bytes(os.urandom(32).hex().encode())
    clip = audiogen.speech_file(tmp_path / "new.wav", seed=7, f0=150, seconds=4.0)
    assert run(["verify-library", "--library", str(two)]) == 5
    assert "probably not this database's" in capsys.readouterr().err
    for argv in (["enrol", str(clip), "--person", "New One"], ["person", "list"], ["query", str(clip)]):
        assert run([*argv, "--library", str(two)]) == 5
        assert "is not the key this library was sealed with" in capsys.readouterr().err
    after = [sqlite3.connect(two / "library.sqlite").execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("voiceprints", "audit")]
    assert after == counts  # nothing written under the wrong key
    (two / KEY_NAME).write_bytes(right)
    assert run(["verify-library", "--library", str(two)]) == 0


def test_a_library_sealed_before_the_key_check_learns_it_and_still_refuses_a_wrong_key(two, capsys):
    import sqlite3

    db = sqlite3.connect(two / "library.sqlite")
    db.execute("DELETE FROM meta WHERE key = 'key_check'")
    db.commit()
    db.close()
    right = (two / KEY_NAME).read_bytes()
    (two / KEY_NAME).write_bytes(os.urandom(32).hex().encode())
    assert run(["person", "list", "--library", str(two)]) == 5
    assert "is not the key this library was sealed with" in capsys.readouterr().err
    (two / KEY_NAME).write_bytes(right)
    assert run(["person", "list", "--library", str(two)]) == 0
    with sqlite3.connect(two / "library.sqlite") as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone() is not None


def test_a_library_copied_with_loose_modes_is_made_private_again(two, capsys):
    """After a trip through a FAT stick the database and key were 0644 in a 0755 folder, and stayed so."""
    os.chmod(two, 0o755)
    for p in two.iterdir():
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    assert run(["person", "list", "--library", str(two)]) == 0
    assert "made private again" in capsys.readouterr().err
    assert oct(two.stat().st_mode & 0o777) == "0o700"
    assert all(oct(p.stat().st_mode & 0o777) == ("0o700" if p.is_dir() else "0o600") for p in two.rglob("*"))
    assert run(["person", "list", "--library", str(two)]) == 0
    assert "made private again" not in capsys.readouterr().err


def test_the_audit_trail_of_a_copy_without_its_key_can_still_be_checked(two, capsys):
    (two / KEY_NAME).unlink()
    assert run(["person", "list", "--library", str(two)]) == 5
    assert run(["audit", "verify", "--library", str(two)]) == 0
    assert "audit chain ok" in capsys.readouterr().out
