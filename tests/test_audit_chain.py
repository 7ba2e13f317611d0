"""The tamper-evident audit trail, users on the command line, and four-eyes approval in the CLI.

No speech model is needed here: audit rows, users and pending voiceprints are written directly."""

from __future__ import annotations

import io
import sqlite3
import sys

import numpy as np
import pytest

from voiceprint import store as store_mod
from voiceprint.cli import run
from voiceprint.library import DB_NAME, Library
from voiceprint.store import AUDIT_GENESIS, Store, audit_chain_head, verify_audit_chain

PASSWORD = "correct-horse-battery"


@pytest.fixture
def lib(tmp_path):
    with Library.create(tmp_path / "lib", operator="tester") as lib:
        for i in range(5):
            with lib.store.transaction():
                lib.store.audit("query", f"sha256:{i:016x}", hits=[[1, 2]])
        yield lib


def test_every_row_is_chained_and_the_chain_verifies(lib):
    rows = lib.store.db.execute("SELECT id, prev_hash, hash FROM audit ORDER BY id").fetchall()
    assert rows[0]["prev_hash"] == AUDIT_GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(rows, rows[1:], strict=False))
    result = verify_audit_chain(lib.store)
    assert result["ok"] and result["rows"] == len(rows) and result["head"] == rows[-1]["hash"]
    assert audit_chain_head(lib.store) == {"id": rows[-1]["id"], "hash": rows[-1]["hash"]}


def test_triggers_refuse_update_and_delete(lib):
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        lib.store.db.execute("UPDATE audit SET operator = 'someone else' WHERE id = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        lib.store.db.execute("DELETE FROM audit WHERE id = 3")


def _tamper(path, sql: str) -> None:
    """What someone with the file and the sqlite3 shell could do: drop the triggers, then edit."""
    con = sqlite3.connect(path)
    con.executescript("DROP TRIGGER audit_append_only_update; DROP TRIGGER audit_append_only_delete;" + sql)
    con.close()


@pytest.mark.parametrize("sql, broken, words", [
    ("UPDATE audit SET operator = 'mallory' WHERE id = 3;", 3, "edited"),
    ("DELETE FROM audit WHERE id = 4;", 5, "missing"),
    ("UPDATE audit SET detail = '{}', hash = 'f' || substr(hash, 2) WHERE id = 2;", 2, "edited"),
])
def test_an_edited_or_deleted_row_breaks_the_chain_and_audit_verify_exits_5(lib, capsys, sql, broken, words):
    path = lib.root / DB_NAME
    assert run(["audit", "verify", "--library", str(lib.root)]) == 0
    assert "audit chain ok" in capsys.readouterr().out
    _tamper(path, sql)
    with Store(path) as fresh:
        result = verify_audit_chain(fresh)
    assert not result["ok"] and result["first_broken"]["id"] == broken and words in result["first_broken"]["problem"]
    assert run(["audit", "verify", "--library", str(lib.root)]) == 5
    err = capsys.readouterr().err
    assert f"audit chain broken at row {broken}" in err and err.count("\n") == 1


def test_a_recomputed_row_hash_still_breaks_the_link_to_the_next_row(lib):
    row = dict(lib.store.db.execute("SELECT * FROM audit WHERE id = 3").fetchone())
    forged = store_mod.audit_row_hash(3, row["ts"], "mallory", row["action"], row["target"], row["detail"], row["prev_hash"])
    _tamper(lib.root / DB_NAME, f"UPDATE audit SET operator = 'mallory', hash = '{forged}' WHERE id = 3;")
    with Store(lib.root / DB_NAME) as fresh:
        result = verify_audit_chain(fresh)
    assert result["first_broken"]["id"] == 4 and "previous row" in result["first_broken"]["problem"]


def test_rows_written_before_the_chain_existed_are_sealed_on_upgrade(tmp_path, monkeypatch):
    path = tmp_path / "old.sqlite"
    monkeypatch.setattr(store_mod, "MIGRATIONS", store_mod.MIGRATIONS[:2])
    with Store(path, "old-version") as old:
        for i in range(3):
            old.db.execute("INSERT INTO audit(ts, operator, action, target, detail) VALUES (?, 'old', 'enrol', ?, '{}')", (1.0 + i, f"v:{i}"))
        assert old.schema_version == 2
    monkeypatch.undo()
    with Store(path, "new-version") as new:
        assert new.schema_version == len(store_mod.MIGRATIONS)
        with new.transaction():
            new.audit("query", "x")
        result = verify_audit_chain(new)
        assert result["ok"] and result["rows"] == 4


def test_user_add_with_password_stdin_list_disable_and_passwd(lib, monkeypatch, capsys):
    root = str(lib.root)
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert run(["user", "add", "chen", "--role", "investigator", "--password-stdin", "--library", root]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert run(["user", "add", "li", "--role", "investigator", "--password-stdin", "--library", root]) == 8
    assert "too short" in capsys.readouterr().err
    assert run(["user", "add", "li", "--role", "janitor", "--password-stdin", "--library", root]) == 8
    assert "unknown role" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal to prompt on: said so, not "interrupted"
    assert run(["user", "add", "li", "--role", "investigator", "--library", root]) == 8
    assert "--password-stdin" in capsys.readouterr().err
    assert run(["user", "list", "--json", "--library", root]) == 0
    out = capsys.readouterr().out
    assert '"chen"' in out and '"investigator"' in out and "argon2" not in out
    assert run(["user", "disable", "chen", "--library", root]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO("another-long-password\n"))
    assert run(["user", "passwd", "chen", "--password-stdin", "--library", root]) == 0
    users = lib.store.db.execute("SELECT name, role, disabled, password_hash FROM users").fetchall()
    assert [(u["name"], u["role"], u["disabled"]) for u in users] == [("chen", "investigator", 1)]
    assert users[0]["password_hash"].startswith("$argon2id$")
    assert {r["action"] for r in lib.audit(limit=20)} >= {"user.add", "user.disable", "user.passwd"}


def _pending_voiceprint(lib, person: str, operator: str = "tech") -> int:
    lib.store.operator = operator
    with lib.store.transaction():
        pid = lib.store.add_person(person)
        rid = lib.store.add_recording(f"{person:0>64}"[:64], 0, f"{person}.wav", 5.0, 4.0, 16000)
        vid = lib.store.add_voiceprint(rid, pid, lib.model, np.ones(int(lib.store.get_meta("embedding_dim", "192")), np.float32))
    lib.store.operator = "tester"
    return vid


def test_cli_four_eyes_pending_is_not_indexed_until_a_supervisor_approves(lib, monkeypatch, capsys):
    root = str(lib.root)
    assert run(["four-eyes", "on", "--library", root]) == 0
    for name, role in (("wang", "supervisor"), ("tech", "technician")):
        monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
        assert run(["user", "add", name, "--role", role, "--password-stdin", "--library", root]) == 0
    vid = _pending_voiceprint(lib, "Zhang San")
    assert lib.store.db.execute("SELECT pending FROM voiceprints WHERE id = ?", (vid,)).fetchone()[0] == 1
    assert lib.store.voiceprints(lib.model)[0].size == 0  # stored, not searchable
    assert lib.check_index()["database_voiceprints"] == 0
    assert run(["approve", "--list", "--json", "--library", root]) == 0
    assert '"Zhang San"' in capsys.readouterr().out
    # a technician cannot approve, a wrong password cannot approve, the right supervisor can
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert run(["--operator", "tech", "approve", str(vid), "--password-stdin", "--library", root]) == 5
    assert "not an active supervisor" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO("wrong-password-here\n"))
    assert run(["--operator", "wang", "approve", str(vid), "--password-stdin", "--library", root]) == 5
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert run(["--operator", "wang", "approve", str(vid), "--password-stdin", "--library", root]) == 0
    with Library.open(root) as fresh:
        assert fresh.store.voiceprints(fresh.model)[0].tolist() == [vid]
        assert fresh.check_index()["status"] == "ok"
        actions = [(r["operator"], r["action"]) for r in fresh.audit(limit=30)]
    assert ("wang", "enrol.approve") in actions and ("tech", "enrol.pending") in actions


def test_cli_reject_deletes_the_pending_voiceprint_and_init_can_switch_four_eyes_on(tmp_path, monkeypatch, capsys):
    root = str(tmp_path / "strict")
    assert run(["init", "--four-eyes", "--library", root]) == 0
    assert "four-eyes" in capsys.readouterr().out
    with Library.open(root) as lib:
        assert store_mod.four_eyes(lib.store)
        monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
        assert run(["user", "add", "wang", "--role", "supervisor", "--password-stdin", "--library", root]) == 0
        vid = _pending_voiceprint(lib, "Li Si")
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert run(["--operator", "wang", "approve", str(vid), "--reject", "--password-stdin", "--library", root]) == 0
    with Library.open(root) as lib:
        assert lib.store.count("voiceprints") == 0
        assert lib.audit(action="enrol.reject")[0]["operator"] == "wang"


def test_audit_verify_prints_the_hash_of_the_row_a_report_quotes(lib, capsys):
    row = lib.store.db.execute("SELECT id, hash FROM audit ORDER BY id LIMIT 1").fetchone()
    assert run(["audit", "verify", "--row", str(row[0]), "--library", str(lib.root)]) == 0
    assert f"row {row[0]}: {row[1]}" in capsys.readouterr().out
    assert run(["audit", "verify", "--row", "99999", "--library", str(lib.root)]) == 7


def test_cli_enrolment_in_a_four_eyes_library_needs_an_enrolling_account(tmp_path, monkeypatch, capsys):
    import audiogen

    root = str(tmp_path / "strict")
    clip = audiogen.speech_file(tmp_path / "a.wav", seed=1, f0=110, seconds=5.0)
    assert run(["init", "--four-eyes", "--library", root]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert run(["user", "add", "tech", "--role", "technician", "--password-stdin", "--library", root]) == 0
    capsys.readouterr()
    # an enroller who is nobody could then approve "their" sample as any supervisor
    assert run(["--operator", "nobody_real", "enrol", str(clip), "--person", "A", "--library", root]) == 5
    assert "not an active technician or supervisor" in capsys.readouterr().err
    # naming an account is not being it: the enroller's own password is asked for
    monkeypatch.setattr(sys, "stdin", io.StringIO("not-techs-password\n"))
    assert run(["--operator", "tech", "enrol", str(clip), "--person", "A", "--password-stdin", "--library", root]) == 5
    assert "needs your own workbench password" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert run(["--operator", "tech", "enrol", str(clip), "--person", "A", "--password-stdin", "--library", root]) == 0
    assert "wait for a second person's approval" in capsys.readouterr().err


def test_a_named_operator_is_recorded_with_the_os_account_that_ran_the_command(lib, monkeypatch, capsys):
    """`--operator` (or $USER) is taken on trust: the OS account behind it is in the row, inside what the chain hashes."""
    import json
    import os
    import pwd

    root, me = str(lib.root), pwd.getpwuid(os.getuid()).pw_name
    assert run(["--operator", "colleague", "case", "add", "AJ-1", "--library", root]) == 0
    monkeypatch.setenv("LOGNAME", "colleague2")
    monkeypatch.setenv("USER", "colleague2")
    assert run(["case", "add", "AJ-2", "--library", root]) == 0
    monkeypatch.setenv("LOGNAME", me)
    monkeypatch.setenv("USER", me)
    assert run(["case", "add", "AJ-3", "--library", root]) == 0
    capsys.readouterr()
    assert run(["audit", "--action", "case.add", "--json", "--library", root]) == 0
    rows = {r["target"]: r for r in json.loads(capsys.readouterr().out)}
    assert [(rows[f"case:{i}"]["operator"], rows[f"case:{i}"]["os_user"]) for i in (1, 2, 3)] == [
        ("colleague", me), ("colleague2", me), (me, "")]
    assert rows["case:1"]["detail"] == {"os_user": me}
    assert verify_audit_chain(lib.store)["ok"]
    _tamper(lib.root / DB_NAME, "UPDATE audit SET detail = '{}' WHERE action = 'case.add' AND target = 'case:1';")
    with Store(lib.root / DB_NAME) as fresh:
        assert verify_audit_chain(fresh)["first_broken"]["action"] == "case.add"
