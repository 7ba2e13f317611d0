"""Enrolment survives kill -9 and Ctrl-C, and concurrent writers are serialised (the fast
version of scripts/crash_enrol.py (both use voiceprint.crashcheck), which runs the full 1,000-file experiment)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from voiceprint import crashcheck as crash_enrol
from voiceprint.enrolment import MIN_FILES_FOR_WORKERS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    return crash_enrol.make_clips(30, tmp_path_factory.mktemp("clips"))


def _run_until(cmd: list[str], library: Path, voiceprints: int, sig: signal.Signals, log: Path) -> int:
    """Start ``cmd``; once the library holds ``voiceprints`` voiceprints send ``sig``; return the exit code."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None and crash_enrol.voiceprint_count(library) < voiceprints:
            time.sleep(0.05)
        if proc.poll() is not None:  # finished before the moment came: nothing was interrupted
            pytest.fail(f"the enrolment finished before it held {voiceprints} voiceprints "
                        f"({crash_enrol.voiceprint_count(library)} seen): {log.read_text()}")
        proc.send_signal(sig)
        return proc.wait(timeout=120)


def test_interrupted_enrolment_ends_with_every_file_enrolled_once(clips, tmp_path):
    manifest, library = tmp_path / "manifest.csv", tmp_path / "lib"
    rows = crash_enrol.write_manifest(clips, manifest)
    cmd = crash_enrol.enrol_cmd(manifest, library)

    rc_kill = _run_until(cmd, library, 5, signal.SIGKILL, tmp_path / "kill.log")
    after_kill = crash_enrol.voiceprint_count(library)
    rc_int = _run_until(cmd, library, after_kill + 5, signal.SIGINT, tmp_path / "int.log")
    final = subprocess.run(cmd, capture_output=True, text=True)

    assert rc_kill == -signal.SIGKILL and 5 <= after_kill < len(rows)
    assert rc_int == 130, (tmp_path / "int.log").read_text()
    assert "run the same command again" in (tmp_path / "int.log").read_text()
    assert final.returncode == 0, final.stderr
    assert "refused 0" in final.stdout and "already enrolled 0," not in final.stdout
    check = crash_enrol.check_library(library, rows)
    assert check == check | {"voiceprints": len(rows), "duplicates": 0, "missing": 0, "extra": 0, "dup_recordings": 0,
                             "index": "ok", "tmp_files": [], "audit_ok": True, "integrity": "ok", "ok": True}


def test_rerun_after_a_kill_between_last_commit_and_index_save_leaves_the_index_current(clips, tmp_path):
    from voiceprint.library import EnrolItem, Library

    items = [EnrolItem(str(c), f"P{i}") for i, c in enumerate(clips[:3])]
    with Library.open(tmp_path / "lib", create=True) as lib:
        lib.enrol_many(items, min_speech=0.5)
    # What a kill -9 at that moment leaves: the index one generation behind, a save's temp file.
    meta = tmp_path / "lib" / "index.json"
    meta.write_text(meta.read_text().replace('"generation": 3', '"generation": 2'))
    (tmp_path / "lib" / ".samples.faiss.k1ll3d.tmp").write_bytes(b"partial")
    with Library.open(tmp_path / "lib") as lib:
        assert lib.check_index()["status"] == "stale"
        again = lib.enrol_many(items, min_speech=0.5)
        assert [o.status for o in again.outcomes] == ["already"] * 3
        assert lib.check_index()["status"] == "ok"
    assert not list((tmp_path / "lib").glob("*.tmp"))


def test_two_concurrent_writers_are_serialised_and_both_finish(clips, tmp_path):
    # Overlapping manifests into one new library, started together: each waits for the other's commits only.
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    rows_a = crash_enrol.write_manifest(clips[:20], first)
    rows_b = crash_enrol.write_manifest(clips, second)  # its first 20 rows are a.csv's
    library = tmp_path / "lib"
    cmds = [crash_enrol.enrol_cmd(m, library) for m in (first, second)]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
    outs = [p.communicate(timeout=240) for p in procs]
    # A writer waits up to 60 s for one commit: it then proceeds, or (stuck machine) gives up with exit 6.
    assert sorted(p.returncode for p in procs) in ([0, 0], [0, 6]), outs
    for cmd, proc, (_, err) in zip(cmds, procs, outs):
        if proc.returncode == 6:
            assert "wait for it to finish and run this again" in err.strip().splitlines()[-1]
            assert subprocess.run(cmd, capture_output=True).returncode == 0
    expected = {(r["path"], r["person"]) for r in rows_a + rows_b}
    check = crash_enrol.check_library(library, [{"path": p, "person": n} for p, n in sorted(expected)])
    assert check["ok"], check


def test_a_writer_that_cannot_get_the_lock_exits_6_with_a_clear_message(clips, tmp_path):
    from voiceprint.library import Library

    manifest = tmp_path / "m.csv"
    crash_enrol.write_manifest(clips[:2], manifest)
    lib = Library.open(tmp_path / "lib", create=True)
    # The CLI waits 60 s for the lock; this run is told to wait 1 s instead.
    shortened = ("from voiceprint.library import Library; Library.writing.__wrapped__.__defaults__ = (1.0, None); "
                 "from voiceprint.cli import main; main()")
    cmd = [sys.executable, "-c", shortened] + crash_enrol.enrol_cmd(manifest, tmp_path / "lib")[1:]
    with lib.writing():
        busy = subprocess.run(cmd, capture_output=True, text=True)
    assert busy.returncode == 6, busy.stderr
    last = busy.stderr.strip().splitlines()[-1]
    assert "is being written by pid" in last and "wait for it to finish and run this again" in last
    assert lib.store.count("voiceprints") == 0 and lib.check_index()["status"] in ("ok", "missing")
    # Once the lock is free the same command goes through.
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert lib.store.count("voiceprints") == 2 and lib.check_index()["status"] == "ok"
    lib.close()


def test_processes_creating_one_library_at_once_all_get_it(tmp_path):
    # `voiceprint enrol` creates the library on first use; several started together must not trip.
    start = time.time() + 3
    opener = ("import sys, time\nfrom voiceprint.library import Library\n"
              f"while time.time() < {start}: pass\n"
              "lib = Library.open(sys.argv[1], create=True); print(lib.model, lib.store.schema_version)")
    procs = [subprocess.Popen([sys.executable, "-c", opener, str(tmp_path / "lib")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, outs
    assert len({out for out, _ in outs}) == 1 and outs[0][0].split()[0] != "None", outs
    from voiceprint.library import Library

    with Library.open(tmp_path / "lib") as lib:
        assert [r["action"] for r in lib.audit()] == ["library.create"]


def test_should_stop_ends_an_enrolment_between_files_with_everything_saved(clips, tmp_path):
    from voiceprint.library import EnrolItem, Library

    items = [EnrolItem(str(c), f"P{i}") for i, c in enumerate(clips[:4])]
    asked = []

    def should_stop():
        asked.append(1)
        return len(asked) > 2  # two files, then stop

    with Library.open(tmp_path / "lib", create=True) as lib:
        with pytest.raises(KeyboardInterrupt):
            lib.enrol_many(items, min_speech=0.5, should_stop=should_stop)
        assert lib.check_index()["status"] == "ok"
        assert lib.store.db.execute("SELECT COUNT(*) FROM voiceprints").fetchone()[0] == 2
        again = lib.enrol_many(items, min_speech=0.5)
        assert [o.status for o in again.outcomes] == ["already", "already", "enrolled", "enrolled"]


def test_a_ctrl_c_swallowed_by_third_party_code_still_stops_the_cli(clips, tmp_path, monkeypatch):
    """silero-vad wraps calls in bare ``except:``; a KeyboardInterrupt raised there is lost. The
    CLI's SIGINT flag must stop the enrolment anyway, with exit code 130."""
    import voiceprint.library
    from voiceprint import cli

    manifest = tmp_path / "manifest.csv"
    rows = crash_enrol.write_manifest(clips[:MIN_FILES_FOR_WORKERS - 1], manifest)  # enrolled in the CLI's own thread
    real = voiceprint.library.Library._enrol_one
    calls = []

    def enrol_one_swallowing_a_ctrl_c(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            try:
                signal.raise_signal(signal.SIGINT)  # Ctrl-C arrives inside third-party code...
            except:  # noqa: E722 - ...which swallows it, as silero-vad's bare except does
                pass
        return real(self, *args, **kwargs)

    monkeypatch.setattr(voiceprint.library.Library, "_enrol_one", enrol_one_swallowing_a_ctrl_c)
    report = tmp_path / "report.csv"
    rc = cli.run(["enrol", str(manifest), "--library", str(tmp_path / "lib"), "--min-speech", "0.5", "--report", str(report)])
    assert rc == 130 and len(calls) == 2 < len(rows)
    assert signal.getsignal(signal.SIGINT) is not cli._on_sigint  # the handler is removed afterwards
    done = report.read_text(encoding="utf-8").splitlines()  # the files done before the interrupt, for the technician
    assert done[0].startswith("path,status") and 1 <= len(done) - 1 <= 2


def test_an_interrupted_enrolment_still_writes_its_report_of_the_files_done(clips, tmp_path, monkeypatch):
    """`--report` was not written when Ctrl-C stopped the enrolment, though stderr said files were reported."""
    import voiceprint.library
    from voiceprint import cli

    manifest = tmp_path / "manifest.csv"
    rows = crash_enrol.write_manifest(clips[:MIN_FILES_FOR_WORKERS - 1], manifest)
    real = voiceprint.library.Library._enrol_one
    calls = []

    def enrol_one_then_ctrl_c(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(voiceprint.library.Library, "_enrol_one", enrol_one_then_ctrl_c)
    report = tmp_path / "report.csv"
    rc = cli.run(["enrol", str(manifest), "--library", str(tmp_path / "lib"), "--min-speech", "0.5", "--report", str(report)])
    assert rc == 130 and len(rows) == 3
    done = report.read_text(encoding="utf-8").splitlines()
    assert done[0].startswith("path,status") and len(done) - 1 == 2  # the two files done before the interrupt


def test_a_full_disk_mid_enrolment_still_writes_the_report_and_says_what_was_kept(clips, tmp_path, monkeypatch, capsys):
    """A full disk stopped an enrolment after 15 commits with "what was reported done before is kept" and no --report."""
    import sqlite3

    import voiceprint.library
    from voiceprint import cli

    manifest = tmp_path / "manifest.csv"
    crash_enrol.write_manifest(clips[:MIN_FILES_FOR_WORKERS - 1], manifest)
    real = voiceprint.library.Library._enrol_one
    calls = []

    def enrol_one_then_disk_full(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise sqlite3.OperationalError("database or disk is full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(voiceprint.library.Library, "_enrol_one", enrol_one_then_disk_full)
    report = tmp_path / "report.csv"
    rc = cli.run(["enrol", str(manifest), "--library", str(tmp_path / "lib"), "--min-speech", "0.5", "--report", str(report)])
    err = capsys.readouterr().err
    assert rc == 5 and "no space left" in err and "2 enrolled before the error are kept" in err and str(report) in err
    assert len(report.read_text(encoding="utf-8").splitlines()) - 1 == 2


def test_an_erasure_killed_after_its_commit_is_finished_by_the_next_open_or_writer(tmp_path):
    """A kill -9 between an erasure's commit and its file steps left the person's vectors in the index files
    and their upload on disk, and the rerun said there was nothing to erase."""
    from vectorgen import add_random_persons

    from voiceprint.library import Library, upload_path
    from voiceprint.store import accounts as rows

    with Library.create(tmp_path / "lib", operator="tester") as lib:
        vectors = add_random_persons(lib, 3)
        with lib.writing(), lib.store.transaction():
            rows.insert_upload(lib.store, f"{0:064x}", "p0.wav", 7)
        kept_upload = upload_path(lib.root, f"{0:064x}")
        kept_upload.parent.mkdir(parents=True)
        kept_upload.write_bytes(b"voice 0")
        with lib.writing():
            lib.save_index()
        def index_bytes() -> bytes:
            from voiceprint.index import index_files

            return b"".join((lib.root / name).read_bytes() for name in index_files(lib.root))
        for victim, survivor in ((1, 2), (2, 3)):
            with lib.writing(), lib.store.transaction():  # the commit, and then the kill: no file step ran
                lib.store.delete_person(victim)
            assert vectors[victim - 1].tobytes() in index_bytes() and lib.store.pending_erasure() is not None
            if victim == 1:
                assert kept_upload.exists()
                with Library.open(lib.root) as again:  # the next command, whatever it is, finishes it
                    assert again.store.pending_erasure() is None
                assert not kept_upload.exists()
            else:
                import fcntl

                from voiceprint.library import LOCK_NAME

                with open(lib.root / LOCK_NAME) as held:  # another process at work: the open leaves it to the next writer
                    fcntl.flock(held, fcntl.LOCK_EX)
                    with Library.open(lib.root) as reader:
                        assert reader.store.pending_erasure() is not None
                with Library.open(lib.root) as writer, writer.writing():
                    assert writer.store.pending_erasure() is None
            assert vectors[victim - 1].tobytes() not in index_bytes()
            assert vectors[survivor - 1].tobytes() in index_bytes()  # the search looks in the right file
            assert lib.check_index()["status"] == "ok"


def _persons_manifest(clips: list[Path], path: Path, prefix: str) -> list[dict]:
    """A manifest of ``clips`` whose persons are named ``prefix`` N (four files each)."""
    import csv

    rows = [{"path": str(c), "person": f"{prefix} {i // crash_enrol.FILES_PER_PERSON}"} for i, c in enumerate(clips)]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "person"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def _enrol_at_once(manifests: list[Path], library: Path) -> list[tuple[int, str, str]]:
    """Run ``voiceprint enrol`` on each manifest at the same time; (exit code, stdout, stderr) of each."""
    assert subprocess.run([str(crash_enrol.VOICEPRINT), "init", "--library", str(library)], capture_output=True).returncode == 0
    procs = [subprocess.Popen(crash_enrol.enrol_cmd(m, library), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for m in manifests]
    outs = [p.communicate(timeout=240) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs, strict=True)]


def test_two_enrolments_of_different_manifests_commit_side_by_side(clips, tmp_path):
    """The write lock is held for one file's commit, not for a whole manifest: two technicians' manifests
    started together are committed in turns, and neither waits for the other's whole run."""
    import sqlite3

    more = crash_enrol.make_clips(40, clips[0].parent)
    rows_a = _persons_manifest(more[:20], tmp_path / "a.csv", "Alpha")
    rows_b = _persons_manifest(more[20:], tmp_path / "b.csv", "Beta")
    library = tmp_path / "lib"
    runs = _enrol_at_once([tmp_path / "a.csv", tmp_path / "b.csv"], library)
    assert [rc for rc, _, _ in runs] == [0, 0], runs
    assert all("enrolled 20, already enrolled 0, refused 0" in out for _, out, _ in runs), runs
    con = sqlite3.connect(library / "library.sqlite")
    whose = [name.split()[0] for (name,) in con.execute(
        "SELECT p.name FROM voiceprints v JOIN persons p ON p.id = v.person_id ORDER BY v.id")]
    con.close()
    # One manifest's commits between two of the other's: committed while the other was still at work
    # (a lock held for a whole manifest leaves two blocks, Alpha's and Beta's).
    turns = sum(1 for before, after in zip(whose, whose[1:]) if before != after)
    assert turns >= 2, whose
    check = crash_enrol.check_library(library, rows_a + rows_b)
    assert check["ok"], check


def test_the_same_files_enrolled_by_two_processes_at_once_are_each_enrolled_once(clips, tmp_path):
    """Two processes with the same rows (one manifest reversed, so that they meet half-way) each enrol some:
    the look-up repeated under the lock, right before the commit, stores every file once."""
    rows = crash_enrol.write_manifest(clips[:20], tmp_path / "forward.csv")
    import csv

    with open(tmp_path / "backward.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(reversed(rows))
    library = tmp_path / "lib"
    runs = _enrol_at_once([tmp_path / "forward.csv", tmp_path / "backward.csv"], library)
    assert [rc for rc, _, _ in runs] == [0, 0], runs
    import re

    counts = [tuple(int(n) for n in re.search(r"enrolled (\d+), already enrolled (\d+), refused 0", out).groups())
              for _, out, _ in runs]
    assert sum(enrolled for enrolled, _ in counts) == len(rows) and all(already + enrolled == len(rows) for enrolled, already in counts)
    assert all(enrolled >= 1 for enrolled, _ in counts), counts  # neither waited for the other's whole run
    check = crash_enrol.check_library(library, rows)
    assert check["ok"], check
