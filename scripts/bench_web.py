"""The workbench's query page on a large library: time from the embedding to the rendered page.

Usage:
    .venv/bin/python scripts/bench_web.py [--persons 10000] [--repeats 30] [--json out/bench_web.json]

Builds a library of ``--persons`` persons (one voiceprint each, synthetic unit vectors clustered
like real speakers, each with a phone and a case, as a centre's library has), embeds one real
(synthetic-speech) recording with the library's model once, then - ``--repeats`` times - does what
``POST /query`` does after the embedding: the 1:N search with the fitted back end's re-ranking
(``Library._search``), saving the result, and rendering the query page through the real FastAPI
app (``GET /results/{id}`` with a logged-in session: session check, result load, audit row,
Jinja2 rendering). The target is < 300 ms for 10,000 persons. The same steps on a 100-person
library are the baseline measured in the same run, so machine load shows in both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

PASSWORD = "benchmark-password"


def build(root: Path, persons: int, rng: np.random.Generator):
    """A library of ``persons`` persons with one voiceprint, one phone and one case each."""
    import time as _t

    from voiceprint.library import Library
    from voiceprint.web.accounts import add_user

    lib = Library.create(root, operator="bench")
    dim = int(lib.store.get_meta("embedding_dim") or 192)
    centres = rng.standard_normal((persons, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    db, now = lib.store.db, _t.time()
    with lib.store.transaction():
        db.executemany("INSERT INTO persons(id, name, id_number, category, notes, created_at) VALUES (?, ?, '', 'suspect', '', ?)",
                       [(i + 1, f"person {i + 1:05d}", now) for i in range(persons)])
        db.executemany("INSERT INTO phones(id, number, person_id, created_at) VALUES (?, ?, ?, ?)",
                       [(i + 1, f"+86138{i:08d}", i + 1, now) for i in range(persons)])
        db.executemany("INSERT INTO cases(id, case_number, title, created_at) VALUES (?, ?, 'fraud', ?)",
                       [(i + 1, f"AJ-{i + 1:05d}", now) for i in range(persons)])
        db.executemany("INSERT INTO person_cases(person_id, case_id) VALUES (?, ?)", [(i + 1, i + 1) for i in range(persons)])
        db.executemany("INSERT INTO recordings(id, sha256, channel, original_name, duration, net_speech, sample_rate, codec, created_at)"
                       " VALUES (?, ?, 0, ?, 20, 15, 8000, 'amr_nb', ?)", [(i + 1, f"{i:064x}", f"s{i}.amr", now) for i in range(persons)])
        db.executemany("INSERT INTO voiceprints(id, recording_id, person_id, model, vector, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                       [(i + 1, i + 1, i + 1, lib.model, centres[i].tobytes(), now) for i in range(persons)])
        lib.store.bump_generation()
        lib.store.audit("bench.build", persons=persons)
    lib.rebuild_index()
    add_user(lib.store, "bench", "investigator", PASSWORD)
    lib.close()


def measure(root: Path, vector: np.ndarray, repeats: int, net: float) -> dict:
    """Median and p95 of search, save+render, and their total, in ms."""
    from fastapi.testclient import TestClient

    from voiceprint.web.accounts import save_result
    from voiceprint.web.app import Settings, create_app

    app = create_app(Settings(library=str(root)))
    wb = app.state.wb
    client = TestClient(app, follow_redirects=False)
    form = client.get("/login").text
    csrf = form.split('name="csrf_token" value="')[1].split('"')[0]
    assert client.post("/login", data={"username": "bench", "password": PASSWORD, "csrf_token": csrf}).status_code == 303

    def search(lib):
        t0 = time.perf_counter()
        hits = lib._search(vector, 5, "narrowband", net)
        voice = {"file": "call.amr", "sha256": "0" * 64, "channel": 0, "voice": 0, "segments": [[0.5, net + 0.5]], "duration": net + 1,
                 "net_speech": net, "source_rate": 8000, "codec": "amr_nb", "quality": {}, "warnings": [],
                 "library_size": int(lib.index.persons.ntotal), "kind": "investigative lead", "hits": hits}
        rid = save_result(lib.store, "query", {"files": [{"name": "call.amr", "sha256": "0" * 64, "size": 1}], "voices": [voice]})
        return time.perf_counter() - t0, rid

    wb.call_sync("bench", search)  # warm: index load, back end load
    rows = []
    for _ in range(repeats):
        t_search, rid = wb.call_sync("bench", search)
        t0 = time.perf_counter()
        page = client.get(f"/results/{rid}")
        t_render = time.perf_counter() - t0
        assert page.status_code == 200 and 'data-rank="1"' in page.text
        rows.append((t_search * 1000, t_render * 1000))
    wb.close()
    search_ms, render_ms = [r[0] for r in rows], [r[1] for r in rows]
    total = [a + b for a, b in rows]
    return {k: {"median": round(statistics.median(v), 1), "p95": round(sorted(v)[int(0.95 * (len(v) - 1))], 1)}
            for k, v in (("search_and_save_ms", search_ms), ("page_render_ms", render_ms), ("total_ms", total))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--persons", type=int, default=10_000)
    ap.add_argument("--baseline", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from voiceprint.embedding import get_embedder
    from voiceprint.library import Library
    from voiceprint.report import machine_line
    from voiceprint.synth import synth_speech

    rng = np.random.default_rng(0)
    out = {"machine": machine_line(), "persons": args.persons, "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        for n in (args.baseline, args.persons):
            build(Path(tmp) / f"lib{n}", n, rng)
        out["build_s"] = round(time.perf_counter() - t0, 1)
        with Library.open(Path(tmp) / f"lib{args.persons}") as lib:
            embedder = get_embedder(lib.model)
        speech = synth_speech(8.0, sr=16000, seed=3)
        embedder.embed(speech)  # warm
        t0 = time.perf_counter()
        vector = embedder.embed(speech)
        out["embedding_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        out["baseline"] = measure(Path(tmp) / f"lib{args.baseline}", vector, args.repeats, 7.0)
        out["library"] = measure(Path(tmp) / f"lib{args.persons}", vector, args.repeats, 7.0)
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    print(f"query page after the embedding, {args.persons} persons: median {out['library']['total_ms']['median']} ms "
          f"(p95 {out['library']['total_ms']['p95']} ms; {args.baseline} persons: {out['baseline']['total_ms']['median']} ms); target < 300 ms")


if __name__ == "__main__":
    main()
