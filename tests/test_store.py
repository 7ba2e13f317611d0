"""The SQLite store: schema, permissions, persons/phones/cases, the reverse-strike lookup, audit."""

import os
import sqlite3
import stat

import numpy as np
import pytest

from voiceprint.errors import DataError, LibraryError, NotFound
from voiceprint.library import Library
from voiceprint.store import MIGRATIONS, Store


@pytest.fixture
def lib(tmp_path):
    with Library.create(tmp_path / "lib", operator="tester") as lib:
        yield lib


def test_create_sets_wal_foreign_keys_schema_and_private_permissions(lib):
    db = lib.store.db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert lib.store.schema_version == len(MIGRATIONS)
    assert stat.S_IMODE(os.stat(lib.root).st_mode) == 0o700
    lib.add_person("Zhang San")  # a write makes SQLite create its -wal file
    for name in os.listdir(lib.root):
        mode = stat.S_IMODE(os.stat(lib.root / name).st_mode)
        assert mode & 0o077 == 0, f"{name} is readable by others: {oct(mode)}"


def test_person_phone_case_and_reverse_lookup(lib):
    pid = lib.add_person("Zhang San", id_number="510104199001011234", category="prior offender")
    assert lib.add_person("Zhang San", id_number="510104199001011234") == pid  # idempotent
    lib.add_phone("138 0013 8000", pid)
    lib.add_case("AJ2026-001", title="refund scam", area="Chengdu")
    lib.link_case("AJ2026-001", person=pid)
    lib.add_case("AJ2026-002")
    lib.link_case("AJ2026-002", phone="+86 13800138000")

    hit = lib.lookup_person(phone="13800138000")
    assert hit["person"]["name"] == "Zhang San"
    assert hit["person"]["category"] == "prior_offender"
    assert hit["phones"] == ["+8613800138000"]
    assert [c["case_number"] for c in hit["cases"]] == ["AJ2026-001", "AJ2026-002"]
    assert lib.lookup_person(id_number="510104199001011234")["person"]["id"] == pid
    assert lib.lookup_person(phone="13900000000") is None


def test_a_case_number_typed_full_width_or_in_other_letter_case_is_the_same_case(lib):
    """A Chinese input method types ＡＪ２０２６－０８１５ and （反诈）; another officer types aj2026-0815. Each opened a second case."""
    from voiceprint.store.casefile import add_case_call, case_calls

    first = lib.add_case("AJ2026-0815", title="refund scam")
    assert lib.add_case("ａｊ２０２６－０８１５") == first and lib.add_case(" aj2026-0815 ") == first
    assert lib.store.case_id("Aj2026-0815") == first
    assert [r[0] for r in lib.store.db.execute("SELECT case_number FROM cases")] == ["AJ2026-0815"]  # kept as first typed
    bracketed = lib.add_case("川公（反诈）立字［2026］１２３号")
    assert lib.store.db.execute("SELECT case_number FROM cases WHERE id = ?", (bracketed,)).fetchone()[0] == "川公(反诈)立字[2026]123号"
    assert lib.add_case("川公(反诈)立字[2026]123号") == bracketed
    with lib.store.transaction():
        add_case_call(lib.store, "aj2026-0815", "13800138000", "2026-08-15 10:00")
    assert [c["case_number"] for c in case_calls(lib.store, "ＡＪ2026-0815")] == ["AJ2026-0815"]
    assert lib.add_case("AJ2026-0816") != first  # another number is another case


def test_an_id_number_typed_full_width_is_the_same_number(lib):
    pid = lib.add_person("Zhang San", id_number="11010519491231002X")
    assert lib.add_person("Zhang San", id_number="１１０１０５１９４９１２３１００２ｘ") == pid
    assert lib.store.person_for_id_number(" １１０１０５１９４９１２３１００２Ｘ") == pid
    assert lib.store.find_person("１１０１０５１９４９１２３１００２x")["id"] == pid
    assert lib.add_person("Zhang San", id_number="110105-19491231-002X") == pid  # hyphens written inside a resident ID
    assert lib.store.person_for_id_number("110105 19491231 002x") == pid
    assert lib.add_person("Passport Holder", id_number="E-1234-5678") != pid  # other IDs keep their hyphens


def test_an_id_number_held_by_a_person_of_another_name_is_refused_naming_that_person(lib):
    """`enrol --person 张伟 --id-number <P_cvzh_000's number>` silently made a second person with the same ID number."""
    pid = lib.add_person("P_cvzh_000", id_number="11010519491231002X")
    for name in ("张伟", "P_cvzh_000 "[:-1] + "1"):
        with pytest.raises(DataError, match=rf"ID number 11010519491231002X already belongs to person {pid} \('P_cvzh_000'\), not '{name}' - "
                                            rf"check the name and the number.*`voiceprint person update {pid} --name \.\.\.`"):
            lib.add_person(name, id_number="１１０１０５１９４９１２３１００２ｘ")
        with pytest.raises(DataError, match="already belongs to person"):
            lib.store.person_to_enrol(name, " 11010519491231002x ")
    assert lib.add_person(" P_cvzh_000 ", id_number="１１０１０５１９４９１２３１００２ｘ") == pid  # the same person, however typed
    assert lib.store.db.execute("SELECT COUNT(*) FROM persons").fetchone()[0] == 1
    assert lib.add_person("张伟", id_number="110105194912310038") != pid  # another number, another person


def test_same_name_different_people_need_an_id(lib):
    lib.add_person("Wang Wei", id_number="A1")
    lib.add_person("Wang Wei", id_number="B2")
    with pytest.raises(NotFound, match="share that name"):
        lib.person("Wang Wei")
    assert lib.person("B2")["person"]["id_number"] == "B2"
    with pytest.raises(NotFound):
        lib.person("Nobody")


def test_unknown_category_is_refused(lib):
    with pytest.raises(DataError, match="unknown category"):
        lib.add_person("X", category="villain")


def test_audit_records_operator_and_action(lib):
    lib.add_person("Li Si", category="suspect")
    rows = lib.audit()
    assert rows[0]["action"] == "person.add"
    assert rows[0]["operator"] == "tester"
    # The audit trail refers to people by id, never by name.
    assert all("Li Si" not in str(r) for r in rows)


def test_delete_person_cascades_to_voiceprints(lib):
    store = lib.store
    with store.transaction():
        pid = store.add_person("A")
        rid = store.add_recording("ab" * 32, 0, "a.wav", 3.0, 2.5, 16000)
        store.add_voiceprint(rid, pid, lib.model, np.ones(192, np.float32))
    gen = store.generation
    lib.delete_person(pid)
    assert store.count("voiceprints") == 0 and store.count("recordings") == 0
    assert store.generation > gen
    assert lib.audit(action="person.delete")[0]["target"] == f"person:{pid}"


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "x.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(LibraryError, match="newer voiceprint"):
        Store(path)


def test_a_library_appears_only_once_its_database_is_complete(tmp_path, monkeypatch):
    # A reader opens library.sqlite without the creation lock, so the name must not exist before the
    # model is recorded (CI once caught a concurrent `enrol` reading a model of NULL).
    seen = []
    real_set_meta = Store.set_meta

    def watching_set_meta(self, key, value):
        seen.append((key, (tmp_path / "lib" / "library.sqlite").exists()))
        return real_set_meta(self, key, value)

    monkeypatch.setattr(Store, "set_meta", watching_set_meta)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / ".library.sqlite.creating").write_bytes(b"left by a killed creation")
    with Library.create(tmp_path / "lib") as lib:
        assert lib.model == lib.store.get_meta("model") and lib.model
    assert seen and not any(exists for _, exists in seen)
    assert not [n for n in os.listdir(tmp_path / "lib") if "creating" in n]
    with Library.open(tmp_path / "lib") as again:
        assert [r["action"] for r in again.audit()] == ["library.create"]


def test_a_database_without_a_model_is_refused_with_what_to_do(tmp_path):
    (tmp_path / "lib").mkdir()
    Store(tmp_path / "lib" / "library.sqlite").close()  # what a creation killed part-way used to leave
    with pytest.raises(LibraryError, match="creation did not finish"):
        Library.open(tmp_path / "lib")


def test_open_missing_library_says_how_to_create(tmp_path):
    with pytest.raises(NotFound, match="voiceprint init"):
        Library.open(tmp_path / "nope")


def test_an_id_number_is_letters_digits_and_dashes(lib):
    assert lib.add_person("Zhou", id_number=" 51010419900101123x ") and lib.person("51010419900101123X")
    for bad in ("<i>110101199001011234</i>", "1101 0119 9001", "' OR 1=1 --"):
        with pytest.raises(DataError, match="is not an ID number"):
            lib.add_person("Zhou", id_number=bad)


def test_ids_of_deleted_rows_are_never_given_again(tmp_path):
    """Audit rows name rows by id: a deleted top row's id handed to the next person or sample made
    `voiceprint:2` name two different samples."""
    import numpy as np

    from voiceprint.library import Library

    with Library.create(tmp_path / "lib", operator="t") as lib:
        store = lib.store
        with store.transaction():
            first = store.add_person("A")
            second = store.add_person("B")
            rec = store.add_recording("a" * 64, 0, "a.wav", 3.0, 2.0, 16000)
            vp = store.add_voiceprint(rec, second, lib.model, np.ones(192, np.float32))
        with store.transaction():
            store.delete_person(second)
        with store.transaction():
            third = store.add_person("C")
            rec2 = store.add_recording("b" * 64, 0, "b.wav", 3.0, 2.0, 16000)
            vp2 = store.add_voiceprint(rec2, third, lib.model, np.ones(192, np.float32))
        assert third > second > first and rec2 > rec and vp2 > vp


@pytest.mark.parametrize("damage", ["text", "empty"])
def test_a_damaged_or_empty_database_is_a_library_error_and_is_not_written(tmp_path, damage):
    """A garbage library.sqlite gave "internal error: DatabaseError", and a 0-byte one got a schema written into it."""
    from voiceprint.errors import LibraryError
    from voiceprint.library import Library

    root = tmp_path / "lib"
    Library.create(root, operator="t").close()
    db = root / "library.sqlite"
    db.write_bytes(b"this is not a database at all " * 200 if damage == "text" else b"")
    before = db.read_bytes()
    with pytest.raises(LibraryError, match="restore library.sqlite from the backup"):
        Library.open(root, operator="t")
    assert db.read_bytes() == before


def test_a_read_only_database_says_to_check_the_mount(tmp_path):
    """A library on a read-only mount gave "internal error: OperationalError: unable to open database file"."""
    from voiceprint.store import _open_failure

    name = tmp_path / "library.sqlite"
    made = sqlite3.connect(name)
    made.execute("CREATE TABLE t (x)")
    made.close()
    read_only = sqlite3.connect(f"file:{name}?mode=ro", uri=True)  # what SQLite sees on a read-only mount
    with pytest.raises(sqlite3.OperationalError) as caught:
        read_only.execute("INSERT INTO t VALUES (1)")
    read_only.close()
    message = _open_failure(name, caught.value)
    assert "read-only" in message and "check the mount" in message


def test_a_creation_that_fails_leaves_nothing_half_made(tmp_path, monkeypatch):
    """On a full disk `init` left a damaged library.sqlite and its -wal, and every later command failed on them."""
    from voiceprint import library as library_module
    from voiceprint.errors import LibraryError

    def unreachable(*args, **kwargs):
        raise LibraryError("cannot reach Milvus")

    monkeypatch.setattr("voiceprint.index.write_backend", unreachable)
    root = tmp_path / "lib"
    with pytest.raises(LibraryError, match="cannot reach Milvus"):
        library_module.Library.create(root, operator="t", milvus_uri="http://nowhere:19530")
    assert not (root / "library.sqlite").exists() and not list(root.glob(".library.sqlite*"))
    library_module.Library.create(root, operator="t", milvus_uri="").close()  # the next try starts clean


def test_an_id_number_shared_by_two_persons_names_neither(tmp_path):
    """`person delete <ID number>` deleted one of two persons sharing it, whichever SQLite returned first."""
    with Store(tmp_path / "lib.sqlite") as store:
        with store.transaction():
            a = store.add_person("Zhang San", "510100199001011234")
            b = store.fresh_id("persons")  # a library from before an ID number was refused to a second name
            store.db.execute("INSERT INTO persons(id, name, id_number, category, notes, created_at) VALUES (?, 'Zhang S.', ?, 'other', '', 0)",
                             (b, "510100199001011234"))
        with pytest.raises(NotFound, match=rf"2 persons share that ID number \(ids {a}, {b}\) - refer to one by id"):
            store.find_person("510100199001011234")
        assert store.find_person(str(b))["name"] == "Zhang S."
