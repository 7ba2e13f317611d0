"""An online backup: one consistent moment, checked before it is put in place, and a library of its own."""

import json
import os
import stat

import audiogen
import pytest

from voiceprint import backup as backup_module
from voiceprint.cli import run
from voiceprint.errors import LibraryError
from voiceprint.library import Library, upload_path


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    d = tmp_path_factory.mktemp("voices")
    return {name: audiogen.speech_file(d / f"{name}.wav", seed=seed, f0=f0)
            for name, seed, f0 in (("a", 1, 110), ("b", 3, 210), ("c", 5, 150))}


@pytest.fixture
def lib(tmp_path, voices):
    with Library.create(tmp_path / "lib", operator="tester") as lib:
        lib.enrol(voices["a"], person="Zhang San", phone="13800138000", case="AJ-1")
        lib.enrol(voices["b"], person="Li Si")
        yield lib


def _private(folder):
    return [p for p in [folder, *folder.rglob("*")] if stat.S_IMODE(p.stat().st_mode) & 0o077]


def test_a_backup_is_a_checked_library_of_its_own(lib, voices, tmp_path):
    done = lib.backup(tmp_path / "bk")
    assert (done["persons"], done["voiceprints"], done["index"]) == (2, 2, "copied")
    assert lib.audit(action="library.backup")[0]["detail"]["audit_head"] == done["audit_head"]
    assert not _private(tmp_path / "bk") and not list(tmp_path.glob(".bk.partial"))
    assert backup_module.check_backup(tmp_path / "bk")["ok"]
    with Library.open(tmp_path / "bk", operator="restorer") as copy:
        assert copy.check_index()["status"] == "ok"
        [result] = copy.query(voices["a"], top=1)
        assert result["hits"][0]["person"]["name"] == "Zhang San" and result["hits"][0]["phones"] == ["+8613800138000"]
    assert not backup_module.check_backup(tmp_path / "bk")["ok"]  # opened and written to: no longer the backup as taken


def test_rows_committed_after_the_snapshot_stay_out_and_the_copy_gets_an_index_of_its_moment(lib, voices, tmp_path, monkeypatch):
    real = backup_module._copy_uploads

    def copy_uploads_while_someone_enrols(root, partial):
        lib.enrol(voices["c"], person="Wang Wu")  # commits after the snapshot, and saves the index at the new moment
        return real(root, partial)

    monkeypatch.setattr(backup_module, "_copy_uploads", copy_uploads_while_someone_enrols)
    done = lib.backup(tmp_path / "bk")
    assert (done["persons"], done["voiceprints"], done["index"]) == (2, 2, "built from the copy's database")
    with Library.open(tmp_path / "bk", operator="restorer") as copy:
        assert copy.check_index()["status"] == "ok" and copy.store.count("voiceprints") == 2


def test_uploads_come_along_and_an_erased_ones_do_not(lib, tmp_path):
    from voiceprint.web import accounts

    for data in (b"first upload", b"second upload"):
        incoming = tmp_path / "incoming.wav"
        incoming.write_bytes(data)
        import hashlib

        accounts.keep_upload(lib, incoming, hashlib.sha256(data).hexdigest(), "call.wav", len(data))
    gone = hashlib.sha256(b"second upload").hexdigest()
    upload_path(lib.root, gone).unlink()  # erased with its person
    done = lib.backup(tmp_path / "bk")
    assert done["uploads"] == 1 and upload_path(tmp_path / "bk", hashlib.sha256(b"first upload").hexdigest()).read_bytes() == b"first upload"
    assert not _private(tmp_path / "bk")


def test_a_backup_killed_part_way_leaves_no_folder_and_the_next_one_completes(lib, tmp_path, monkeypatch):
    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(backup_module, "_check_copy", killed)
    with pytest.raises(KeyboardInterrupt):
        lib.backup(tmp_path / "bk")
    assert not (tmp_path / "bk").exists() and not list(tmp_path.glob(".bk*"))
    monkeypatch.undo()
    os.mkdir(tmp_path / ".bk.partial")  # what a kill -9 leaves
    assert lib.backup(tmp_path / "bk")["voiceprints"] == 2 and not (tmp_path / ".bk.partial").exists()


def test_refusals(lib, tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(LibraryError, match="exists - back up into a new folder"):
        lib.backup(tmp_path / "taken")
    with pytest.raises(LibraryError, match="inside the library"):
        lib.backup(lib.root / "bk")
    with pytest.raises(LibraryError, match="is not a folder - create it first"):
        lib.backup(tmp_path / "no" / "bk")


def test_the_cli_backs_up_and_check_backup_names_a_changed_file(lib, tmp_path, capsys):
    folder = str(tmp_path / "bk")
    assert run(["library", "backup", folder, "--json", "--library", str(lib.root)]) == 0
    assert json.loads(capsys.readouterr().out)["voiceprints"] == 2
    assert run(["library", "check-backup", folder]) == 0
    with open(tmp_path / "bk" / "library.key", "ab") as fh:
        fh.write(b"x")
    assert run(["library", "check-backup", folder]) == 5
    assert "library.key changed" in capsys.readouterr().err
    assert run(["library", "check-backup", str(tmp_path)]) == 5  # not a backup


def test_check_backup_reads_without_writing_and_checks_seals_and_chain(lib, tmp_path, capsys):
    lib.backup(tmp_path / "bk")
    before = {p.name: p.read_bytes() for p in (tmp_path / "bk").iterdir()}
    result = backup_module.check_backup(tmp_path / "bk")
    assert result["ok"] and result["seals_ok"] and result["audit_ok"] and result["audit_rows"] > 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "bk").iterdir()} == before  # nothing written, no -wal or -shm made
    # a seal broken inside the database: BACKUP.json is rewritten to match, so only the seals can tell
    import sqlite3

    db = sqlite3.connect(tmp_path / "bk" / "library.sqlite")
    db.execute("DROP TRIGGER IF EXISTS persons_seal_update")
    db.execute("UPDATE persons SET name = 'Someone Else' WHERE id = 1")
    db.commit()
    db.close()
    listed = json.loads((tmp_path / "bk" / "BACKUP.json").read_text())
    listed["files"]["library.sqlite"] = backup_module._sha256(tmp_path / "bk" / "library.sqlite")
    (tmp_path / "bk" / "BACKUP.json").write_text(json.dumps(listed))
    assert run(["library", "check-backup", str(tmp_path / "bk")]) == 5
    assert "fail their seals" in capsys.readouterr().err


def test_a_copied_library_folder_is_checked_too_and_the_command_folds_its_log(lib, tmp_path, capsys):
    """`library backup` left its own audit row in library.sqlite-wal: the admin commands never closed the library."""
    import shutil

    lib.close()
    assert run(["library", "backup", str(tmp_path / "bk"), "--library", str(lib.root)]) == 0
    assert not (lib.root / "library.sqlite-wal").exists() or (lib.root / "library.sqlite-wal").stat().st_size == 0
    shutil.copytree(lib.root, tmp_path / "copy")
    assert run(["library", "check-backup", str(tmp_path / "copy")]) == 0
    assert "no BACKUP.json" in capsys.readouterr().out


def test_the_folder_of_a_backup_killed_part_way_is_removed_by_the_next_command(lib, tmp_path):
    """A kill -9 left `.DEST.partial`, a whole copy of the voice data, that no later backup (named by date) removed."""
    from voiceprint.writers import held_record

    partial = tmp_path / ".bk-2026-12-07.partial"
    (lib.root / backup_module.RUNNING_DIR).mkdir()
    record = lib.root / backup_module.RUNNING_DIR / "4242-1a2b3c4d"
    record.write_text(str(partial))  # what a kill -9 leaves: the record, which no process holds any more
    partial.mkdir()
    (partial / backup_module.BUILDING_MARK).write_bytes(b"")
    (partial / "library.sqlite").write_bytes(b"voices")
    running = tmp_path / ".bk-running.partial"
    with held_record(lib.root / backup_module.RUNNING_DIR, str(running)):  # a backup still under way
        running.mkdir()
        (running / backup_module.BUILDING_MARK).write_bytes(b"")
        Library.open(lib.root).close()
        assert not partial.exists() and not record.exists()
        assert running.exists()


def test_the_audit_row_is_written_before_the_copy_is_in_place(lib, tmp_path, monkeypatch):
    real = os.rename

    def rename(src, dst):
        if os.fspath(dst) == os.fspath(tmp_path / "bk"):  # the copy put in place (not the record of the backup under way)
            assert lib.audit(action="library.backup", limit=1), "the copy appeared before its audit row"
        real(src, dst)

    monkeypatch.setattr(backup_module.os, "rename", rename)
    lib.backup(tmp_path / "bk")
    assert (tmp_path / "bk" / "library.sqlite").exists() and not (tmp_path / "bk" / backup_module.BUILDING_MARK).exists()
