"""A tiny county for lead-graph tests: generated CDRs (voiceprint.calls.synthetic) with two dens, imported and featured
by the real pipeline, a registry naming each den's two ID-card owners, and victims the dens called."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from voiceprint.calls.synthetic import generate

SUBSCRIBERS, DENS, DEN_SIZE = 60, 2, 6
#: den -> (owner of its even numbers, owner of its odd numbers)
OWNERS = {0: ("甲 offender", "乙 straw owner"), 1: ("丙 offender", "丁 key person")}
_SPACE: dict = {}


def id_number(name: str) -> str:
    return f"51010119900101{sum(map(ord, name)) % 10000:04d}"


def _space() -> dict:
    """The default model's back end, its pseudo-inverse transform and ten mutually distant cohort vectors as speakers."""
    if not _SPACE:
        from voiceprint.embedding import load_spec
        from voiceprint.scoring import load_backend

        backend = load_backend(load_spec(None).name)
        if backend is None:
            return {}
        chosen: list[int] = []
        for i in range(len(backend.cohort)):
            if all(float(backend.cohort[i] @ backend.cohort[j]) < 0.1 for j in chosen):
                chosen.append(i)
            if len(chosen) == 10:
                break
        _SPACE.update(backend=backend, pinv=np.linalg.pinv(backend.transform), speakers=chosen)
    return _SPACE


def voice(speaker: int, take: int, domain: str = "wideband") -> np.ndarray:
    """A stand-in raw voiceprint of ``speaker`` that the fitted back end sees as a real speaker would be seen:
    a development impostor's projected vector plus take noise (cosine ~0.75 between takes), mapped back
    through the back end's transform onto the domain's mean."""
    space = _space()
    b = space["backend"]
    rng = np.random.default_rng(take)
    y = b.cohort[space["speakers"][speaker]] + 0.04 * rng.normal(size=b.cohort.shape[1])
    return (b.means[domain] + y @ space["pinv"]).astype(np.float32)


def den_numbers(den: int) -> list[str]:
    first = SUBSCRIBERS - DENS * DEN_SIZE + den * DEN_SIZE
    return [f"+86139{s:08d}" for s in range(first, first + DEN_SIZE)]


def tiny_county(folder: Path) -> dict:
    """Generate, import and feature a 20,000-row county; returns paths, victims and callers per den."""
    import duckdb

    from voiceprint.calls.features import compute_features
    from voiceprint.calls.ingest import import_calls, import_registry

    data = generate(folder / "gen", rows=20_000, subscribers=SUBSCRIBERS, dens=DENS, den_size=DEN_SIZE, fmt="csv", seed=3)
    rows = list(csv.DictReader(open(data["registry"], encoding="utf-8")))
    for r in rows:
        s = int(r["number"][3:])
        if s >= SUBSCRIBERS - DENS * DEN_SIZE:
            den = (s - (SUBSCRIBERS - DENS * DEN_SIZE)) // DEN_SIZE
            r["name"] = OWNERS[den][s % 2]
            r["id_number"] = id_number(r["name"])
    with open(folder / "registry.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = {"calls": folder / "calls.parquet", "registry": folder / "registry.parquet", "features": folder / "features.parquet"}
    import_calls(data["calls"], out["calls"])
    import_registry(folder / "registry.csv", out["registry"])
    compute_features(out["calls"], out=out["features"], registry=out["registry"], temp_directory=folder)
    victims = {}
    for den in range(DENS):
        nums = den_numbers(den)
        marks = ",".join("?" * len(nums))
        victims[den] = duckdb.execute(
            f"SELECT other, list(number ORDER BY start), list(strftime(start, '%Y-%m-%d %H:%M:%S') ORDER BY start) FROM read_parquet(?)"
            f" WHERE direction = 'out' AND number IN ({marks}) GROUP BY other ORDER BY other LIMIT 3", [str(out["calls"]), *nums]).fetchall()
    dens = [n for d in range(DENS) for n in den_numbers(d)]
    heavy = duckdb.execute(f"SELECT number FROM read_parquet(?) WHERE number NOT IN ({','.join('?' * len(dens))})"
                           " GROUP BY number ORDER BY count(*) DESC, number LIMIT 1", [str(out["calls"]), *dens]).fetchall()[0][0]
    return out | {"victims": victims, "heavy": heavy}
