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
    """The default model's back end, its pseudo-inverse transform and ten orthonormal directions of its
    projected space as speakers (different speakers score a cosine of 0 there, as impostors do)."""
    if not _SPACE:
        from voiceprint.embedding import load_spec
        from voiceprint.scoring import load_backend

        backend = load_backend(load_spec(None).name)
        if backend is None:
            return {}
        dim = backend.transform.shape[1]
        speakers = np.linalg.qr(np.random.default_rng(0).normal(size=(dim, 10)))[0].T
        _SPACE.update(backend=backend, pinv=np.linalg.pinv(backend.transform), speakers=speakers)
    return _SPACE


def voice(speaker: int, take: int, domain: str = "wideband") -> np.ndarray:
    """A stand-in raw voiceprint of ``speaker`` that the fitted back end sees as a real speaker would be seen:
    the speaker's direction in the projected space plus take noise (cosine ~0.75 between takes), mapped back
    through the back end's transform onto the domain's mean."""
    space = _space()
    b = space["backend"]
    rng = np.random.default_rng(take)
    y = space["speakers"][speaker] + 0.04 * rng.normal(size=len(space["speakers"][speaker]))
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


class _Recording:
    def __init__(self, name):
        self.sha256 = name.ljust(64, "0")
        self.duration, self.source_rate, self.codec, self.n_channels = 20.0, 8000, "amr_nb", 1
        self.channel_rate, self.domain = self.source_rate, "narrowband"


class _Embedder:
    def embed(self, speech):
        return voice(int(speech[0]), int(speech[1]), "narrowband")


def _enrol(lib, name: str, speaker: int, category: str, phone: str | None = None) -> int:
    with lib.store.transaction():
        pid = lib.store.add_person(name, id_number(name), category)
        for take in (1, 2):
            rid = lib.store.add_recording(f"{name}{take}".encode().hex().ljust(64, "0")[:64], 0, f"{name}_{take}.wav", 20.0, 15.0, 16000)
            lib.store.add_voiceprint(rid, pid, lib.model, voice(speaker, speaker * 100 + take, "wideband"))
        if phone:
            lib.store.add_phone(phone, pid)
    return pid


def build_scene(folder: Path):
    """A library over the tiny county, its lead graph refreshed: (library, county), or (None, county) without a
    fitted back end. Den 0: offender 甲 enrolled (speaker 1), straw owner 乙 only in the registry. Den 1:
    offender 丙 only in the registry (voice: speaker 4, unknown), key person 丁 enrolled with another voice
    (speaker 2). A resident (speaker 3), enrolled, called both victims too."""
    import pytest

    from voiceprint import graph, linking
    from voiceprint.audio import SpeechSegment
    from voiceprint.graph_cli import add_calls
    from voiceprint.library import CallVoice, Library
    from voiceprint.scoring import load_backend

    county = tiny_county(folder)
    lib = Library.create(folder / "lib", operator="analyst")
    if load_backend(lib.model) is None:
        lib.close()
        return None, county
    _enrol(lib, OWNERS[0][0], 1, "prior_offender")
    _enrol(lib, OWNERS[1][1], 2, "key_person")
    _enrol(lib, "resident", 3, "other", county["heavy"])
    speakers = {"AJ-01": (1, 11), "AJ-02": (1, 12), "AJ-11": (4, 41), "AJ-12": (4, 42)}
    mp = pytest.MonkeyPatch()
    mp.setattr(lib, "_embedder", lambda: _Embedder())
    mp.setattr(lib, "call_voices", lambda path, channel=None, min_speech=None: (_Recording(path), [CallVoice(
        0, 0, np.array(speakers[path[:5]] + (0.0,) * 10, np.float32), [SpeechSegment(0.5, 9.0)], {"net_speech_s": 8.5})]))
    try:
        for den in (0, 1):
            for k, (_victim, callers, times) in enumerate(county["victims"][den][:2]):
                case = f"AJ-{den}{k + 1}"
                lib.add_case(case, area="Guangdong")
                add_calls(lib, case, list(zip(callers, times, strict=False)) + [(county["heavy"], "2019-09-01 12:00:00")])
                linking.add_recordings(lib, case, [f"{case}.amr"])
    finally:
        mp.undo()
    graph.refresh(lib, county["calls"], county["features"], county["registry"])
    return lib, county
