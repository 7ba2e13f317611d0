"""Held-out validation of a model's back end: the figures an evaluative report cites for its case's conditions.

The back end is fitted and tuned on development speakers only; its cross-validated development figures are
in ``backend.json``. ``voiceprint backend validate`` scores the *test* speakers of ``../shared/data``, which
no fitted part ever saw, through the toolkit's own :func:`voiceprint.evaluate.evaluate`, and keeps per channel
pair (wideband, narrowband, cross) and per net speech of the questioned recording: the trial counts, EER
and Cllr of the calibrated LRs, every same-speaker log10 LR and quantiles of the different-speaker ones.

The file, ``backend/validation.json``, names the back end it measured (``backend_sha256``) and is itself
hashed in ``model.json`` with the other evidence files, so a report uses it only while both still hold.
A report then marks the row of its own case (channel pair and the questioned recording's net speech) and
draws its Tippett plot from these held-out trials.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError

VALIDATION_FILE = "validation.json"
#: The held-out conditions: (corpus folder, telephone simulation, only the tests simulated, enrolments, recordings per speaker).
#: The same protocols as docs/models.md's test tables.
PLAN = (
    ("speechocean762", "", False, 3, 6),
    ("speechocean762", "amrnb", False, 3, 6),
    ("speechocean762", "g711u", False, 3, 6),
    ("speechocean762", "amrnb", True, 3, 6),
    ("commonvoice_zh", "", False, 3, 5),
    ("commonvoice_zh", "amrnb", False, 3, 5),
    ("commonvoice_zh", "amrnb", True, 3, 5),
    ("hyke_ivr_8k", "", False, 1, None),
)
PAIRS = ("wideband", "narrowband", "cross")
#: A row with fewer same-speaker trials is shown, but a Tippett plot falls back to the pair's trials of every duration.
MIN_TARGETS_FOR_PLOT = 20
NONTARGET_QUANTILES = 501


@dataclass
class Group:
    """The held-out trials of one channel pair and one speech-duration bucket (``"all"``: every duration)."""

    pair: str
    speech: str
    targets: np.ndarray  # log10 LR of each same-speaker trial
    nontargets: np.ndarray  # log10 LR of each different-speaker trial

    def row(self) -> dict:
        from .evaluate import cllr, eer

        ln10 = math.log(10)
        row: dict = {"pair": self.pair, "speech": self.speech, "target_trials": int(len(self.targets)),
                     "nontarget_trials": int(len(self.nontargets))}
        if len(self.targets) and len(self.nontargets):
            row["eer"] = round(float(eer(self.targets, self.nontargets)), 5)
            row["cllr"] = round(float(cllr(self.targets * ln10, self.nontargets * ln10)), 4)
            row["misleading_same"] = int((self.targets < 0).sum())  # same speaker, LR < 1
            row["misleading_different"] = int((self.nontargets > 0).sum())  # different speakers, LR > 1
        row["target_log10_lr"] = [round(float(x), 3) for x in np.sort(self.targets)]
        row["nontarget_log10_lr_quantiles"] = ([round(float(x), 3) for x in np.quantile(self.nontargets, np.linspace(0, 1, NONTARGET_QUANTILES))]
                                               if len(self.nontargets) else [])
        return row


def speech_bucket(net_speech: float | None) -> str:
    """The duration bucket (``voiceprint.evaluate.DURATION_BUCKETS``) of a recording's net speech."""
    from .evaluate import _bucket

    return _bucket(float(net_speech or 0.0))


def groups_of(trial_sets) -> list[Group]:
    """Pool the held-out trials by channel pair, then by the tested recording's net speech."""
    from .evaluate import DURATION_BUCKETS

    pooled: dict[tuple[str, str], tuple[list, list]] = {}
    ln10 = math.log(10)
    for ts in trial_sets:
        if ts.llr is None or ts.pairs is None or not ts.tests:
            continue
        target = ts.target
        buckets = [speech_bucket(t.net_speech) for t in ts.tests]
        for j, bucket in enumerate(buckets):
            for i in range(len(ts.speakers)):
                for key in ((ts.pairs[i, j], "all"), (ts.pairs[i, j], bucket)):
                    tgt, non = pooled.setdefault(key, ([], []))
                    (tgt if target[i, j] else non).append(ts.llr[i, j] / ln10)
    order = ["all"] + [name for _, _, name in DURATION_BUCKETS]
    return [Group(pair, speech, np.asarray(pooled[(pair, speech)][0], float), np.asarray(pooled[(pair, speech)][1], float))
            for pair in PAIRS for speech in order if (pair, speech) in pooled]


def measure(model: str | None = None, echo: Callable[[str], None] = print) -> dict:
    """Score the plan's test speakers through the model's back end; the validation record (not yet saved)."""
    from .corpora import shared_data_dir
    from .embedding import load_spec
    from .evaluate import evaluate
    from .scoring import load_backend

    backend = load_backend(model)
    if backend is None:
        raise DataError(f"model {model or 'default'} has no fitted back end: nothing to validate (fit one with `voiceprint backend fit`)")
    sets, conditions = [], []
    for corpus, simulate, tests_only, enrol, per_speaker in PLAN:
        manifest = shared_data_dir() / corpus / "manifest.csv"
        if not manifest.exists():
            raise DataError(f"{manifest} is missing: held-out validation needs the corpora of ../shared/data (or $VOICEPRINT_SHARED_DATA)")
        result = evaluate([manifest], enrol=enrol, model=model, simulate=simulate, speakers="test", per_speaker=per_speaker,
                          simulate_tests_only=tests_only)
        ts = result.trial_sets[0]
        if result.overlap_speakers:
            raise DataError(f"{corpus}: {len(result.overlap_speakers)} test speaker(s) were in the back end's fit - not held out")
        name = f"{corpus}/{(simulate or 'clean') if not tests_only else 'clean>' + simulate}"
        row = next((r for r in result.rows if r["subset"] == "all"), {})
        conditions.append({"condition": name, "enrol": enrol, "per_speaker": per_speaker, "speakers": len(ts.speakers),
                           "tests": len(ts.tests), "eer": row.get("eer_backend"), "cllr": row.get("cllr_backend")})
        echo(f"{name}: {len(ts.speakers)} speakers, {len(ts.tests)} tests, EER {100 * (row.get('eer_backend') or 0):.2f} %, "
             f"Cllr {row.get('cllr_backend') or 0:.3f}")
        sets.append(ts)
    return {"version": 1, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "model": load_spec(model).name,
            "backend_sha256": backend_sha(model), "speakers": "test (never used to fit or tune the back end)",
            "protocol": "each test speaker enrolled from its first recordings (mean voiceprint), every other test recording of the corpus "
                        "scored against every enrolled speaker; LRs through the shipped calibration of each trial's channel pair",
            "conditions": conditions, "groups": [g.row() for g in groups_of(sets)]}


def backend_sha(model: str | None) -> str:
    """SHA-256 of the back end's ``backend.json`` (which names its arrays' own hash): the back end a record measured."""
    from .scoring import _file_sha, backend_dir

    return _file_sha(backend_dir(model) / "backend.json")


def save(record: dict, model: str | None = None) -> Path:
    """Write ``validation.json`` beside the back end and hash it into ``model.json`` with the other evidence files."""
    from .fsutil import write_atomic
    from .scoring import MODEL_FILE, backend_dir, record_evidence_hashes

    folder = backend_dir(model)
    path = folder / VALIDATION_FILE
    write_atomic(path, json.dumps(record, indent=1, ensure_ascii=False) + "\n", MODEL_FILE)
    record_evidence_hashes(folder.parent)
    return path


def load(model: str | None = None) -> tuple[dict | None, str]:
    """The held-out validation of a model's shipped back end, or None and why it cannot be cited."""
    from .scoring import EVIDENCE_KEY, _file_sha, backend_dir, load_backend

    if load_backend(model) is None:  # also checks every hashed evidence file, this one included
        return None, "no back end is fitted"
    folder = backend_dir(model)
    path = folder / VALIDATION_FILE
    if not path.exists():
        return None, "no held-out validation was measured for this back end (`voiceprint backend validate`)"
    recorded = json.loads((folder.parent / "model.json").read_text(encoding="utf-8")).get(EVIDENCE_KEY, {})
    if recorded.get(f"{folder.name}/{VALIDATION_FILE}") != _file_sha(path):
        return None, "the held-out validation file is not the one hashed in model.json: run `voiceprint backend validate`"
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("backend_sha256") != backend_sha(model):
        return None, "the held-out validation was measured on another back end (refit since): run `voiceprint backend validate`"
    return record, ""


def rows_for_case(record: dict, pair: str | None, net_speech: float | None) -> list[dict]:
    """The record's rows, each marked ``this_case`` when it has the case's channel pair and questioned speech bucket."""
    return rows_for_cases(record, [("", pair, net_speech)])[0]


def rows_for_cases(record: dict, cases) -> tuple[list[dict], list[dict]]:
    """The record's rows marked for several voices of one case (``cases``: ``(label, pair, net speech)`` per voice with a
    hit). Each row carries ``this_case`` and ``cases``, the labels of the voices whose pair and speech bucket it has. Also
    the voices no row fits (``label``, ``pair``, ``speech``, and ``pair_rows``: whether the pair has trials of other durations):
    a report must say that those voices' conditions have no held-out trials, not mark nothing."""
    wanted = [(label, pair, speech_bucket(net) if net is not None else None) for label, pair, net in cases]
    groups = record.get("groups", [])
    rows = []
    for g in groups:
        labels = [label for label, pair, bucket in wanted if g["pair"] == pair and g["speech"] == bucket]
        rows.append({**g, "this_case": bool(labels), "cases": labels})
    missing = [{"label": label, "pair": pair or "", "speech": bucket or "", "pair_rows": any(g["pair"] == pair for g in groups)}
               for label, pair, bucket in wanted if not any(g["pair"] == pair and g["speech"] == bucket for g in groups)]
    return rows, missing


def curves_for_case(record: dict, pair: str | None, net_speech: float | None) -> tuple[Group | None, str]:
    """The held-out trials a case's Tippett plot shows: its pair and speech bucket, or its pair at every duration when that
    bucket holds fewer than :data:`MIN_TARGETS_FOR_PLOT` same-speaker trials."""
    by_key = {(g["pair"], g["speech"]): g for g in record.get("groups", [])}
    bucket = speech_bucket(net_speech) if net_speech is not None else "all"
    chosen = by_key.get((pair, bucket))
    if chosen is None or chosen["target_trials"] < MIN_TARGETS_FOR_PLOT:
        chosen, bucket = by_key.get((pair, "all")), "all"
    if chosen is None:
        return None, ""
    group = Group(pair or "", bucket, np.asarray(chosen["target_log10_lr"], float), np.asarray(chosen["nontarget_log10_lr_quantiles"], float))
    return group, bucket
