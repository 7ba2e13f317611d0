"""Enrolment in worker threads (voiceprint.enrolment): the same voiceprints and outcomes as in
this process, lookups first so a re-run does no work, refusals audited, a stop keeps what was done.
(Kill -9 and Ctrl-C of a worker run through the CLI: tests/test_crash.py.)"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from voiceprint import crashcheck, enrolment, preparers
from voiceprint.errors import AudioError
from voiceprint.library import EnrolItem, Library

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def items(tmp_path_factory) -> list[EnrolItem]:
    folder = tmp_path_factory.mktemp("clips")
    clips = crashcheck.make_clips(10, folder)
    broken = folder / "broken.wav"
    broken.write_bytes(b"RIFF not really a wav file")
    rows = [EnrolItem(str(c), f"P{i // 2}") for i, c in enumerate(clips)]
    return rows[:5] + [EnrolItem(str(broken), "P9")] + rows[5:]


def _vectors(lib: Library) -> dict:
    rows = lib.store.db.execute("SELECT r.sha256, p.name, v.vector FROM voiceprints v JOIN recordings r ON r.id = v.recording_id "
                                "JOIN persons p ON p.id = v.person_id").fetchall()
    return {(sha, name): np.frombuffer(blob, np.float32) for sha, name, blob in rows}


def test_worker_count_needs_enough_files_and_cores(monkeypatch):
    monkeypatch.delenv("VOICEPRINT_WORKERS", raising=False)
    assert enrolment.worker_count(enrolment.MIN_FILES_FOR_WORKERS - 1, 4) == 0
    assert enrolment.worker_count(100, 1) == 0
    assert enrolment.worker_count(100, 3) == 3 and enrolment.worker_count(9, 16) == 9
    monkeypatch.setenv("VOICEPRINT_WORKERS", "0")
    assert enrolment.worker_count(100) == 0
    monkeypatch.setenv("VOICEPRINT_WORKERS", "2")
    assert enrolment.worker_count(100) == 2


def test_workers_enrol_the_same_voiceprints_in_order_and_rerun_without_work(items, tmp_path, monkeypatch):
    with Library.create(tmp_path / "here", operator="tester") as lib:
        here = lib.enrol_many(items, min_speech=0.5, workers=0)
        expected = _vectors(lib)
    with Library.create(tmp_path / "workers", operator="tester") as lib:
        seen: list[str] = []
        there = lib.enrol_many(items, min_speech=0.5, workers=2, progress=lambda o: seen.append(o.path))
        got = _vectors(lib)
        assert seen == [i.path for i in items]  # reported (and committed) in the manifest's order
        assert [(o.status, o.path) for o in there.outcomes] == [(o.status, o.path) for o in here.outcomes]
        assert there.count("enrolled") == 10 and there.count("refused") == 1
        assert "broken.wav" in there.refused[0].reason
        assert lib.audit(action="enrol.refused")
        assert lib.check_index()["status"] == "ok"

        def no_workers(*args, **kwargs):
            raise AssertionError("a re-run of an enrolled manifest must start no worker")

        monkeypatch.setattr("voiceprint.preparers.start", no_workers)
        again = lib.enrol_many([i for i in items if "broken" not in i.path], min_speech=0.5, workers=2)
        assert again.count("already") == 10
    assert got.keys() == expected.keys()
    for key, vec in expected.items():
        assert float(vec @ got[key]) > 0.9999


def test_a_stop_between_files_keeps_what_was_committed(items, tmp_path):
    asked: list[int] = []
    good = [i for i in items if "broken" not in i.path]

    def should_stop() -> bool:
        asked.append(1)
        return len(asked) > 3  # three files, then stop
    with Library.create(tmp_path / "lib", operator="tester") as lib:
        with pytest.raises(KeyboardInterrupt):
            lib.enrol_many(good, min_speech=0.5, workers=2, should_stop=should_stop)
        assert lib.store.db.execute("SELECT COUNT(*) FROM voiceprints").fetchone()[0] == 3
        assert lib.check_index()["status"] == "ok"
        rest = lib.enrol_many(good, min_speech=0.5, workers=2)
        assert [o.status for o in rest.outcomes] == ["already"] * 3 + ["enrolled"] * 7


@pytest.mark.parametrize("bad", ["broken.wav", "missing.wav"])
def test_a_refusal_stops_the_run_when_asked_after_the_files_before_it(items, tmp_path, bad):
    """A file that fails in a worker (undecodable) or at the lookup (missing) stops the run in its turn."""
    rows = list(items) if bad == "broken.wav" else [*items[:5], EnrolItem(str(tmp_path / bad), "P9"), *items[6:]]
    with Library.create(tmp_path / "lib", operator="tester") as lib:
        with pytest.raises(Exception, match=bad):
            lib.enrol_many(rows, min_speech=0.5, workers=2, stop_on_error=True)
        assert lib.store.db.execute("SELECT COUNT(*) FROM voiceprints").fetchone()[0] == 5  # the files before it
        assert lib.audit(action="enrol.refused")


def test_few_files_left_to_do_are_enrolled_here(items, tmp_path, monkeypatch):
    good = [i for i in items if "broken" not in i.path]
    with Library.create(tmp_path / "lib", operator="tester") as lib:
        lib.enrol_many(good[:7], min_speech=0.5, workers=0)

        def no_workers(*args, **kwargs):
            raise AssertionError("3 files to do: no worker is worth starting")

        monkeypatch.setattr("voiceprint.preparers.start", no_workers)
        done = lib.enrol_many(good, min_speech=0.5, workers=2)
        assert [o.status for o in done.outcomes] == ["already"] * 7 + ["enrolled"] * 3


def test_a_file_gone_before_its_turn_is_refused_not_fatal(items, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    good = [EnrolItem(str(shutil.copy(i.path, folder / Path(i.path).name)), i.person) for i in items if "broken" not in i.path]
    Path(good[-1].path).unlink()
    with Library.create(tmp_path / "lib", operator="tester") as lib:
        done = lib.enrol_many(good, min_speech=0.5, workers=2)
        assert done.count("enrolled") == 9 and "file not found" in done.refused[0].reason


def test_stopping_the_workers_abandons_the_files_they_prepare():
    import torch

    from voiceprint.audio import progress_hook

    def long_recording(item):  # reports its progress as decoding and the VAD do
        for i in range(400):
            time.sleep(0.05)
            report = progress_hook(None)
            assert report is not None
            report("decode", i, 400)
        return item

    threads = torch.get_num_threads()
    pool = preparers.ThreadPreparers(2, long_recording)
    assert torch.get_num_threads() == 1  # the workers fill the cores: one intra-op thread meanwhile
    futures = [pool.submit(EnrolItem(f"f{i}.wav", "P")) for i in range(4)]
    time.sleep(0.3)
    started = time.monotonic()
    pool.stop()
    assert time.monotonic() - started < 2
    assert not any(t.is_alive() for t in pool._threads)  # none left running native code at exit
    assert [f.cancelled() for f in futures] == [False, False, True, True]  # two being prepared, two never started
    assert all(f.exception() is not None for f in futures[:2])
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("kind", ["ThreadPreparers", "ProcessPreparers"])
def test_a_refusal_comes_back_as_a_value_and_a_bug_as_an_error(kind):
    def prepare_one(item):
        if item.path == "bad.wav":
            raise AudioError(Path(item.path), "no speech")
        raise RuntimeError("bug in " + item.path)

    pool = getattr(preparers, kind)(2, prepare_one)
    try:
        assert isinstance(pool.submit(EnrolItem("bad.wav", "P")).result(timeout=30), AudioError)
        with pytest.raises(RuntimeError, match="bug in a.wav"):
            pool.submit(EnrolItem("a.wav", "P")).result(timeout=30)
    finally:
        pool.stop()


def test_many_workers_are_processes_from_the_main_thread_and_threads_elsewhere(monkeypatch):
    import threading

    made: list = []
    monkeypatch.setattr(preparers, "ProcessPreparers", lambda n, fn: made.append("processes"))
    monkeypatch.setattr(preparers, "ThreadPreparers", lambda n, fn: made.append("threads"))
    many = preparers.THREADS_UP_TO + 1
    preparers.start(preparers.THREADS_UP_TO, str, 10_000)
    preparers.start(many, str, 10_000)
    preparers.start(many, str, many * preparers.FILES_PER_PROCESS - 1)  # too few files to pay for the forks
    elsewhere = threading.Thread(target=preparers.start, args=(many, str, 10_000))
    elsewhere.start()
    elsewhere.join()
    assert made == ["threads", "processes", "threads", "threads"]


def test_forked_workers_enrol_the_same_voiceprints(items, tmp_path, monkeypatch):
    monkeypatch.setattr(preparers, "THREADS_UP_TO", 1)
    monkeypatch.setattr(preparers, "FILES_PER_PROCESS", 1)
    with Library.create(tmp_path / "here", operator="tester") as lib:
        lib.enrol_many(items, min_speech=0.5, workers=0)
        expected = _vectors(lib)
    with Library.create(tmp_path / "forked", operator="tester") as lib:
        done = lib.enrol_many(items, min_speech=0.5, workers=2)
        assert done.count("enrolled") == 10 and "broken.wav" in done.refused[0].reason
        got = _vectors(lib)
    assert got.keys() == expected.keys()
    assert all(float(vec @ got[key]) > 0.9999 for key, vec in expected.items())


def test_small_blocks_of_queued_work_still_commit_in_order(items, tmp_path, monkeypatch):
    """Blocks of 2 files (largest first within each), many blocks: outcomes in the manifest's order."""
    monkeypatch.setattr(enrolment, "IN_FLIGHT_PER_WORKER", 1)
    with Library.create(tmp_path / "lib", operator="tester") as lib:
        done = lib.enrol_many(items, min_speech=0.5, workers=2)
        assert [o.path for o in done.outcomes] == [i.path for i in items]
        assert done.count("enrolled") == 10 and done.count("refused") == 1
        ids = [o.voiceprint_id for o in done.outcomes if o.status == "enrolled"]
        assert ids == sorted(ids)  # committed in order, one transaction each


def test_a_case_number_new_to_the_library_is_said_once(items, tmp_path):
    """A mistyped case number silently opened a case nobody else files under."""
    lib = Library.create(tmp_path / "lib", operator="tester")
    lib.store.add_case("AJ2026-001")
    first, second, third = (EnrolItem(items[i].path, items[i].person, case=case)
                            for i, case in ((0, "AJ2026-001"), (1, "AJ2026-0O1"), (2, "AJ2026-0O1")))
    outcomes = lib.enrol_many([first, second, third], workers=0).outcomes
    said = [[w for w in o.warnings if "was not in the library" in w] for o in outcomes]
    assert said == [[], ["case AJ2026-0O1 was not in the library: it was opened (check the number if you meant an existing case)"], []]


def test_a_copy_of_another_persons_sample_is_enrolled_with_a_note_naming_that_person(tmp_path):
    """A re-encoded copy of one person's interview was enrolled as a second person without a word."""
    import soundfile as sf

    [clip] = crashcheck.make_clips(1, tmp_path)
    samples, rate = sf.read(clip, dtype="float32")
    copy = tmp_path / "export.flac"
    sf.write(copy, samples * 0.9, rate)  # other bytes, the same recording
    with Library.create(tmp_path / "lib", operator="tech") as lib:
        first = lib.enrol(clip, person="王五")
        second = lib.enrol(copy, person="赵六")
        other = lib.enrol(crashcheck.make_clips(2, tmp_path / "more")[1], person="孙七")
    assert second.status == "enrolled" and any(f"of person {first.person_id}" in w and "same recording under two names" in w
                                               for w in second.warnings), second.warnings
    assert not any("same recording under two names" in w for w in other.warnings)


# -- the write lock: held for each commit and index save, not for a whole run ---------------------------------

@pytest.fixture
def short_lock_wait(monkeypatch):
    """A writer waits 1 s for the library's lock instead of 60 (a test that would wait fails fast)."""
    monkeypatch.setattr(Library.writing.__wrapped__, "__defaults__", (1.0, None))  # type: ignore[attr-defined]


def test_another_writer_enrols_and_saves_between_two_files_and_no_index_save_loses_its_voiceprints(items, tmp_path, short_lock_wait):
    """A second writer (a workbench, a second technician) enrols while a manifest is half done: it does not wait for
    the manifest to end, and neither writer's index save drops the other's voiceprints."""
    from voiceprint.index import VoiceIndex

    def on_disk() -> set[int]:
        index = VoiceIndex.load(root)
        assert index is not None
        return set(index.sample_ids().tolist())

    good = [i for i in items if "broken" not in i.path]
    mine, theirs = good[:5], [EnrolItem(i.path, f"Other {n}") for n, i in enumerate(good[5:])]
    root = tmp_path / "lib"
    seen: dict = {}
    with Library.create(root, operator="tester") as lib, Library.open(root, operator="colleague") as other:
        def meanwhile(outcome):
            if len(seen) == 0 and outcome.status == "enrolled":
                seen["before"] = lib.store.count_voiceprints(lib.model)
                seen["theirs"] = other.enrol_many(theirs, min_speech=0.5, workers=0)  # would wait for the whole manifest
                seen["on_disk"] = on_disk()
                seen["after"] = {r["id"] for r in lib.store.db.execute("SELECT id FROM voiceprints")}

        done = lib.enrol_many(mine, min_speech=0.5, workers=0, progress=meanwhile)
        assert done.count("enrolled") == 5 and seen["theirs"].count("enrolled") == 5 and seen["before"] == 1
        assert seen["on_disk"] == seen["after"]  # the other's save kept this run's first voiceprint
        ids = lib.store.voiceprint_ids(lib.model)[0]
        assert len(ids) == 10 and on_disk() == set(ids.tolist())
        assert lib.check_index()["status"] == "ok" and other.check_index()["status"] == "ok"
        assert len(lib.audit(action="enrol", limit=100)) == 10


def test_a_file_another_writer_commits_while_this_one_prepares_it_is_enrolled_once(items, tmp_path, monkeypatch, short_lock_wait):
    """The same file in two runs at once: the look-up is repeated under the lock, right before the commit."""
    good = [i for i in items if "broken" not in i.path][:3]
    root = tmp_path / "lib"
    real_prepare = enrolment.prepare
    with Library.create(root, operator="tester") as lib, Library.open(root, operator="colleague") as other:
        raced: list = []

        def prepare_while_the_other_commits(item, embedder, min_speech):
            done = real_prepare(item, embedder, min_speech)
            if item.path == good[1].path and not raced:
                raced.append(1)
                raced.append(other.enrol_many([item], min_speech=0.5, workers=0).outcomes[0])
            return done

        monkeypatch.setattr(enrolment, "prepare", prepare_while_the_other_commits)
        done = lib.enrol_many(good, min_speech=0.5, workers=0)
        theirs = raced[1]
        assert theirs.status == "enrolled"
        assert [o.status for o in done.outcomes] == ["enrolled", "already", "enrolled"]
        assert done.outcomes[1].voiceprint_id == theirs.voiceprint_id
        assert lib.store.count_voiceprints(lib.model) == 3 and len(lib.audit(action="enrol")) == 3
        assert lib.check_index()["status"] == "ok"


def test_an_enrolment_refused_because_the_library_stays_busy_is_audited_without_file_names(items, tmp_path, short_lock_wait):
    """The workbench answered 422 'being written by another process' and the trail kept nothing of it."""
    import json

    from voiceprint.errors import LibraryBusy

    good = [i for i in items if "broken" not in i.path][:3]
    root = tmp_path / "lib"
    with Library.create(root, operator="tester") as lib, Library.open(root, operator="stuck") as other:
        with other.writing(), pytest.raises(LibraryBusy, match="is being written by pid"):
            lib.enrol_many(good, min_speech=0.5, workers=0)
        [row] = lib.audit(action="enrol.refused")
        assert row["operator"] == "tester" and row["target"] == "files:3"
        assert row["detail"]["error"] == "LibraryBusy" and row["detail"]["files"] == 3
        assert not any(Path(i.path).stem in json.dumps(row, ensure_ascii=False) for i in good)
        assert lib.store.count_voiceprints(lib.model) == 0


def test_each_commit_brings_the_index_forward_in_memory_without_reading_the_index_file_again(items, tmp_path, monkeypatch):
    """Each commit looked for copies in an index read whole from disk again (the database had moved on by one file):
    in a province's library, seconds under the write lock for every file."""
    from voiceprint.index import VoiceIndex

    good = [i for i in items if "broken" not in i.path]
    loads: list[int] = []
    real_load = VoiceIndex.load.__func__  # type: ignore[attr-defined]

    def counted_load(cls, folder):
        loads.append(1)
        return real_load(cls, folder)

    monkeypatch.setattr(VoiceIndex, "load", classmethod(counted_load))
    with Library.create(tmp_path / "lib", operator="tester") as lib:
        lib.enrol_many(good[:2], min_speech=0.5, workers=0)
    with Library.open(tmp_path / "lib") as lib:
        loads.clear()
        done = lib.enrol_many(good[2:], min_speech=0.5, workers=0)
        assert done.count("enrolled") == 8 and len(loads) == 1  # read once, at the first commit
        assert lib.check_index()["status"] == "ok"


@pytest.mark.parametrize("four_eyes", [False, True])
def test_each_commit_adds_its_sample_to_the_index_without_a_pass_over_every_id(items, tmp_path, monkeypatch, four_eyes):
    """Each commit brought the index forward by reading every voiceprint id in the database: a quarter of a second per
    file under the write lock at 10^5 voiceprints. The index now takes the committed sample alone, and ends up as a
    rebuild from the database would be (a four-eyes sample waiting for approval stays out of it)."""
    from voiceprint.web import accounts

    good = [i for i in items if "broken" not in i.path]
    with Library.create(tmp_path / "lib", operator="tester") as lib:
        lib.enrol_many(good[:2], min_speech=0.5, workers=0)
        accounts.set_four_eyes(lib.store, four_eyes)
        passes: list[int] = []
        real = lib.store.voiceprint_ids

        def counted(model):
            passes.append(1)
            return real(model)

        monkeypatch.setattr(lib.store, "voiceprint_ids", counted)
        done = lib.enrol_many(good[2:], min_speech=0.5, workers=0)
        assert done.count("enrolled") == 8 and passes == []
        live = lib.index
        assert live.generation == lib.store.generation and passes == []
        ids, persons = real(lib.model)
        assert sorted(live.samples.live_ids().tolist()) == ids.tolist()
        assert len(ids) == (2 if four_eyes else 10)
        assert dict(zip(live.samples.live_ids().tolist(), live.sample_persons.tolist(), strict=True)) == dict(
            zip(ids.tolist(), persons.tolist(), strict=True))
        rebuilt = lib._build_index()
        assert sorted(rebuilt.persons.live_ids().tolist()) == sorted(live.persons.live_ids().tolist())
        for pid in set(persons.tolist()):
            a = live.persons.vectors()[live.persons.live_ids() == pid][0]
            b = rebuilt.persons.vectors()[rebuilt.persons.live_ids() == pid][0]
            assert float(a @ b) > 0.99999
        assert lib.check_index()["status"] == "ok"


def test_a_file_committed_beside_an_altered_row_is_reported_enrolled_and_the_index_refuses(items, tmp_path):
    """The index's fast path checked the person's seals after the commit and raised: the file was reported refused
    although its voiceprint was stored. It now leaves the index to the general update, which refuses the altered row."""
    from voiceprint.errors import LibraryError

    good = [i for i in items if "broken" not in i.path]
    with Library.create(tmp_path / "lib", operator="tester") as lib:
        lib.enrol_many(good[:1], min_speech=0.5, workers=0)
        lib.store.db.execute("UPDATE voiceprints SET seal = '00'")
        lib.store.db.commit()
        seen: list[str] = []
        with pytest.raises(LibraryError, match="integrity seal"):
            lib.enrol_many([EnrolItem(good[1].path, good[0].person)], min_speech=0.5, workers=0, progress=lambda o: seen.append(o.status))
        assert seen == ["enrolled"]
        assert lib.store.db.execute("SELECT count(*) FROM voiceprints").fetchone()[0] == 2


def test_a_person_erased_while_their_enrolment_runs_is_not_made_again_from_its_later_files(items, tmp_path):
    """QA: `person delete` from another terminal during a manifest's run; the run's later files of that person made a
    new person of the same name, undoing the erasure under a new id without a word."""
    good = [i for i in items if "broken" not in i.path]
    run = [EnrolItem(good[0].path, "Erased"), EnrolItem(good[1].path, "Kept"), EnrolItem(good[2].path, "Erased"),
           EnrolItem(good[3].path, "Kept")]
    with Library.create(tmp_path / "lib", operator="tester") as lib:
        def erase_after_first(outcome):
            if outcome.path == good[0].path:
                with Library.open(tmp_path / "lib", operator="another-terminal") as other:
                    other.delete_person("Erased")

        done = lib.enrol_many(run, min_speech=0.5, workers=0, progress=erase_after_first)
        assert [o.status for o in done.outcomes] == ["enrolled", "enrolled", "refused", "enrolled"]
        assert "was erased while this enrolment ran" in done.outcomes[2].reason
        assert [r[0] for r in lib.store.db.execute("SELECT name FROM persons")] == ["Kept"]
        assert lib.check_index()["status"] == "ok"
