"""``voiceprint demo`` on the real voices it ships: the sample is complete and attributed, and the
demo run end to end on a fresh library meets every expectation it prints (exit 0)."""

import csv
import hashlib
import re
from pathlib import Path

import pytest

from voiceprint.cli import run
from voiceprint.demo import DATA, MARKER, load_sample

pytestmark = pytest.mark.slow


def test_sample_files_are_the_listed_ones_and_small():
    with open(DATA / "sample.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    listed = {r["path"] for r in rows}
    on_disk = {p.relative_to(DATA).as_posix() for p in DATA.rglob("*.flac")}
    assert listed == on_disk
    for r in rows:
        assert hashlib.sha256((DATA / r["path"]).read_bytes()).hexdigest() == r["sha256"], r["path"]
    assert sum((DATA / p).stat().st_size for p in listed) < 5 * 2**20
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in readme and "613968e3b0b789fc33936fb5eba1973176ba7d11" in readme
    assert all(p in readme for p in listed), "the README lists every shipped file"


def test_sample_roles_are_disjoint_and_enrolment_manifest_matches():
    sample = load_sample()
    enrolled = {r["speaker"] for r in sample["enrol"]}
    strangers = {r["speaker"] for r in sample["stranger"]}
    assert len(enrolled) >= 8 and len(strangers) >= 2 and not enrolled & strangers
    assert {r["speaker"] for r in sample["holdout"]} == enrolled
    with open(DATA / "enrol.csv", encoding="utf-8") as fh:
        manifest = list(csv.DictReader(fh))
    assert {r["path"] for r in manifest} == {r["path"] for r in sample["enrol"]}
    assert all(r["phone"] and r["case"] and r["category"] for r in manifest)


def test_sample_ships_as_package_data():
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'"voiceprint"\s*=\s*\[[^\]]*"demo_data/', pyproject)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One end-to-end run through the CLI (as ``make demo`` runs it), on a tmp library."""
    tmp = tmp_path_factory.mktemp("demo")
    capture = pytest.MonkeyPatch()
    lines = []
    capture.setattr("typer.echo", lambda msg="", *a, **k: lines.append(str(msg)))
    try:
        rc = run(["demo", "--library", str(tmp / "lib"), "--workdir", str(tmp / "work")])
    finally:
        capture.undo()
    return rc, "\n".join(lines), tmp


def test_demo_meets_its_expectations(demo_run):
    rc, out, tmp = demo_run
    assert rc == 0, out
    summary = out.split("summary - what the demo expected and what it found:")[1]
    assert "FAIL" not in summary
    for what in ("OK   enrolment: expected 24 recordings enrolled, none refused", "OK   unseen recordings, right person first",
                 "OK   right first hits with a meaningful LR", "OK   AMR-NB call of", "OK   1:1 call vs enrolment recording",
                 "OK   two-party call: expected 2 voices"):
        assert what in summary
    assert summary.count("OK   stranger") == len({r["speaker"] for r in load_sample()["stranger"]})
    # every unseen recording is reported, a right hit with its calibrated LR (a number, not a bare score)
    per_query = re.findall(r"expected (\S+) -> top hit (\S+), log10 LR (-?[\d.]+) \((right|right, weak LR|MISSED)\)", out)
    assert len(per_query) == len(load_sample()["holdout"])
    assert sum(want == got for want, got, _, _ in per_query) >= 0.9 * len(per_query)
    assert (tmp / "work" / "fraud_call_8k.amr").exists() and (tmp / "work" / "two_party_mono.flac").exists()


def test_demo_rerun_recreates_only_its_own_library(demo_run, tmp_path, capsys):
    _, _, tmp = demo_run
    assert (tmp / "lib" / MARKER).exists()
    other = tmp_path / "county"
    assert run(["init", "--library", str(other)]) == 0
    capsys.readouterr()
    assert run(["demo", "--library", str(other), "--workdir", str(tmp_path / "w")]) == 5
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did not make" in err
    assert (other / "library.sqlite").exists()


def test_a_library_of_the_earlier_synthetic_demo_is_replaced(tmp_path):
    from voiceprint.demo import _fresh_library
    from voiceprint.library import Library

    old = tmp_path / "demo"
    with Library.create(old, operator="demo") as lib:
        lib.add_person("Li Na", category="suspect")
    with _fresh_library(old, "demo") as lib:
        assert lib.persons() == [] and (old / MARKER).exists()
