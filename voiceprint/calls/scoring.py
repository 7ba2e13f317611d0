"""Two scorers over one per-number feature table: a label-free rule score and a supervised model.

A feature table is our own ``calls features`` output or a third-party per-number table (the
Sichuan BTG / CDR2IMG / HaoREN layouts are recognised from their columns); several tables join on
their key. Each layout maps its columns onto canonical signal names (``templates/features_*.toml``),
which is what the rule score reads; the supervised model reads every numeric column.

Rule score: each signal is placed between a typical-normal and a typical-fraud anchor (domain
reference points, on a log scale for counts) and ranked within the population; the score is the
weighted mean of both over the signals the table has. No labels are used.

Supervised: LightGBM gradient boosting; the decision threshold maximises fraud-class F1 over
out-of-fold predictions on the *training* data only, averaged over repeated k-fold splits so the
threshold does not hang on one split.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from voiceprint.errors import DataError, looks_binary, not_a_text_table
from voiceprint.fsutil import write_atomic

from .ingest import TEMPLATE_DIR

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Signal:
    name: str
    direction: int  # +1: higher is more suspicious, -1: lower is
    normal: float  # typical value of a normal number
    fraud: float  # typical value of a fraud number
    weight: float
    label: str
    log: bool = True


# Anchors are round reference points from the published descriptive statistics of the Sichuan data
# (README medians, normal vs fraud) and from anti-fraud practice; they are not fitted to labels.
SIGNALS = [
    Signal("out_share", +1, 0.5, 0.95, 1.5, "mostly outgoing calls", log=False),
    Signal("calls_per_other", -1, 7.0, 1.2, 1.5, "few repeat contacts"),
    Signal("distinct_others", +1, 60, 140, 1.0, "many distinct counter-parties"),
    Signal("days_of_month", -1, 31, 7, 1.0, "active on few days"),
    Signal("n_hours", -1, 18, 11, 0.5, "calls in a narrow band of hours"),
    Signal("n_counties", -1, 4, 1, 0.7, "calls from one place"),
    Signal("n_imei", +1, 1, 2, 0.7, "several handsets"),
    Signal("max_numbers_per_imei", +1, 1, 3, 0.7, "handset shared by several numbers"),
    Signal("numbers_on_id", +1, 1, 3, 1.0, "several numbers on one ID card"),
    Signal("two_way_share", -1, 0.3, 0.02, 1.0, "few two-way contacts", log=False),
    Signal("repeat_other_share", -1, 0.5, 0.1, 0.7, "counter-parties rarely called twice", log=False),
    Signal("max_callees_day", +1, 5, 40, 1.0, "bursts of distinct callees in a day"),
    Signal("mean_callees_6h", +1, 1.3, 10, 1.0, "many distinct callees per 6-hour window"),
    Signal("office_share", +1, 0.45, 0.85, 0.5, "calls in office hours", log=False),
    Signal("far_callee_share", +1, 0.2, 0.8, 0.7, "callees far away", log=False),
    Signal("fraud_contacts", +1, 0, 3, 1.5, "contacts shared with known fraud numbers"),
    Signal("community_known_fraud", +1, 0, 1, 1.0, "in a community with known fraud numbers"),
    Signal("sms_out_recipients", +1, 20, 300, 0.5, "SMS mass sending"),
    Signal("sms_total", -1, 900, 170, 0.5, "little SMS traffic (a calling-only handset)"),
    Signal("app_count", -1, 150, 16, 0.7, "few apps used (a calling-only handset)"),
]
SIGNAL_BY_NAME = {s.name: s for s in SIGNALS}
ANCHOR_SHARE = 0.5  # weight of the anchor position against the population rank


# ---------------------------------------------------------------- feature tables


@dataclass
class FeatureTable:
    """Numbers (index), all numeric columns, canonical signals, and labels when the table has them."""

    frame: pd.DataFrame  # model columns, index = number
    canonical: pd.DataFrame  # canonical signals, same index
    labels: pd.Series | None  # 0/1, or None
    layouts: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # what reading the tables left out, for the analyst


def _joined(paths: list[Path], frames: list, notes: list[str]):
    """The tables joined on the first one's numbers; what the others held beyond it is noted."""
    frame = frames[0]
    for path, extra in zip(paths[1:], frames[1:]):
        if left_out := int((~extra.index.isin(frame.index)).sum()):
            notes.append(f"{path.name}: {left_out} number(s) not in {paths[0].name} were left out - the first --features table "
                         "decides which numbers are scored; put the one holding every number first")
        frame = frame.join(extra, how="left")
    return frame


def feature_layouts() -> dict[str, dict]:
    out = {}
    for path in sorted(TEMPLATE_DIR.glob("features_*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        out[data["name"]] = data
    return out


COMPRESSED = (".gz", ".bz2", ".zip", ".xz", ".zst")  # pandas reads these by their suffix


def _read_table(path: Path, keys: set[str] | frozenset[str] = frozenset()):
    """One feature table as read; the ``keys`` columns (numbers) are read as text from CSV, so ``+86...`` keeps its
    ``+`` and a leading zero stays."""
    import pandas as pd

    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes)")
    with open(path, "rb") as fh:
        parquet = path.suffix == ".parquet" or fh.read(4) == b"PAR1"
    if not parquet and path.suffix not in COMPRESSED and looks_binary(path):
        raise not_a_text_table(path)
    try:
        if parquet:
            return pd.read_parquet(path)
        try:
            text = {k: str for k in keys}
            return pd.read_csv(path, sep=None, engine="python", dtype=text) if path.suffix in (".tsv", ".txt") else pd.read_csv(path, dtype=text)
        except UnicodeDecodeError:
            return pd.read_csv(path, encoding="gb18030", dtype={k: str for k in keys})
    except UnicodeDecodeError:
        raise not_a_text_table(path) from None
    except (ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{path}: cannot be read as a feature table ({str(err).splitlines()[0]})") from None


def _detect_layout(columns, layouts: dict[str, dict], path) -> dict:
    present = set(columns)
    best = [lay for lay in layouts.values() if all(c in present for c in lay["signature"])]
    if not best:
        raise DataError(f"{path}: unknown feature layout - pass --mapping FILE.toml (copy {TEMPLATE_DIR / 'features_btg.toml'})")
    return max(best, key=lambda lay: len(lay["signature"]))


def _mapped(df, expr: str):
    """A column or ``a / b`` of two columns (zero denominators give NaN)."""
    if "/" in expr:
        num, den = (part.strip() for part in expr.split("/", 1))
        return df[num] / df[den].where(df[den] != 0)
    return df[expr]


def read_mapping(mapping: str | Path) -> dict:
    """A ``--mapping`` file: a TOML layout with a ``name`` and a ``[columns]`` table (as in the built-in features_*.toml)."""
    path = Path(mapping)
    example = TEMPLATE_DIR / "features_btg.toml"
    if not path.is_file():
        raise DataError(f"{path}: no such mapping file")
    try:
        custom = tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise DataError(f"{path}: not a TOML column mapping ({err}) - copy {example} and edit it") from None
    if custom.get("identity"):  # every column is the signal of its own name
        custom.setdefault("columns", {})
    missing = [k for k in ("name", "columns") if k not in custom]
    if missing:
        raise DataError(f"{path}: the mapping lacks {' and '.join(repr(k) for k in missing)} - copy {example} and edit it")
    if not isinstance(custom["columns"], dict) or not all(isinstance(v, str) for v in custom["columns"].values()):
        raise DataError(f"{path}: [columns] must map each signal to a column name (or 'a / b') - copy {example} and edit it")
    if not isinstance(custom["name"], str):
        raise DataError(f"{path}: name must be a string - copy {example} and edit it")
    custom.setdefault("signature", [])
    return custom


def load_feature_table(paths, mapping: str | Path | None = None, label: str | None = None) -> FeatureTable:
    """Read one or several per-number feature tables (CSV, gzip CSV, Parquet) joined on their key."""
    import pandas as pd

    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    layouts = feature_layouts()
    if mapping:
        custom = read_mapping(mapping)
        layouts = {custom["name"]: custom}
    frames, canon, labels, notes = [], {}, None, []
    used: list[str] = []
    keys = {lay.get("key", "number") for lay in layouts.values()}
    for path in paths:
        df = _read_table(path, keys)
        lay = _detect_layout(df.columns, layouts, path) if not mapping else next(iter(layouts.values()))
        if lay["name"] in used:  # the tables would give each number two values of every column: not joined, not stacked
            first = paths[used.index(lay["name"])]
            raise DataError(f"{first} and {path} have the same layout ({lay['name']}): pass one table per layout - for two periods, "
                            "compute the features once over both (`calls features` with both periods' calls)")
        key, lab = lay.get("key", "number"), label or lay.get("label", "label")
        if key not in df.columns:
            raise DataError(f"{path}: no key column {key!r}")
        if df.empty:
            raise DataError(f"{path}: the table has a header but no rows")
        repeated = int(df[key].duplicated().sum())
        if repeated:
            notes.append(f"{path.name}: {repeated} row(s) repeat a number already read; the first row of each number was kept")
        df = df.drop_duplicates(subset=key).set_index(key)
        df.index = df.index.astype(str)
        df.index.name = "number"
        if lab in df.columns:
            lab_values = pd.to_numeric(df[lab], errors="coerce")
            if lab_values.notna().any():
                labels = lab_values if labels is None else labels.combine_first(lab_values)
            df = df.drop(columns=[lab])
        mapped = {c: src for c, src in lay.get("columns", {}).items()}
        if lay.get("identity"):
            mapped = {c: c for c in df.columns}
        for name, src in mapped.items():
            if name not in canon and name in SIGNAL_BY_NAME:
                try:
                    canon[name] = pd.to_numeric(_mapped(df, src), errors="coerce")
                except KeyError:
                    continue
        numeric = df.drop(columns=[c for c in lay.get("drop", []) if c in df.columns])
        numeric = numeric.apply(pd.to_numeric, errors="coerce").dropna(axis=1, how="all")
        frames.append(numeric.add_prefix(f"{lay['name']}.") if len(paths) > 1 else numeric)
        used.append(lay["name"])
    frame = _joined(paths, frames, notes)
    canonical = pd.DataFrame(canon, index=frame.index) if canon else pd.DataFrame(index=frame.index)
    if labels is not None:
        labels = labels.reindex(frame.index)
        if labels.notna().sum() == 0:
            labels = None
    return FeatureTable(frame=frame.astype(float), canonical=canonical.reindex(frame.index).astype(float), labels=labels, layouts=used,
                        notes=notes)


# ---------------------------------------------------------------- rule score


def signal_scores(canonical):
    """Per-signal suspicion in [0, 1] (NaN where the table lacks the value)."""
    import numpy as np
    import pandas as pd

    out = {}
    for name in canonical.columns:
        sig = SIGNAL_BY_NAME.get(name)
        if sig is None:
            continue
        values = canonical[name]
        tf = (lambda x: np.log1p(np.clip(x, 0, None))) if sig.log else (lambda x: x)
        lo, hi, v = tf(sig.normal), tf(sig.fraud), tf(values)
        anchor = ((v - lo) / (hi - lo)).clip(0, 1)
        rank = (values * sig.direction).rank(pct=True, method="average")
        score = ANCHOR_SHARE * anchor + (1 - ANCHOR_SHARE) * rank if len(values) > 1 else anchor
        out[name] = score.where(values.notna())
    return pd.DataFrame(out, index=canonical.index)


def rule_score(canonical):
    """The label-free rule score in [0, 1] per number (weighted mean over available signals)."""
    import numpy as np

    scores = signal_scores(canonical)
    if scores.empty:
        raise DataError("the feature table maps to none of the rule signals - pass --mapping")
    weights = np.array([SIGNAL_BY_NAME[c].weight for c in scores.columns])
    filled = scores.fillna(0).to_numpy() * weights
    present = scores.notna().to_numpy() * weights
    return (filled.sum(axis=1) / np.maximum(present.sum(axis=1), 1e-9)).clip(0, 1), scores


def rule_reasons(canonical, scores, population_median, top: int = 4) -> list[list[str]]:
    """For every number, the signals that put it high (suspicion >= 0.6, heaviest first), each
    with its value, the population's median and the signal's two anchors: a value at the median can
    still be suspicious when the anchors say so (a population of call-centre numbers), and the
    anchors say why. A number with none that high but several above
    0.5 (a rule score can reach the flag so) gets those, marked "moderate": a flagged number is never
    left without a reason. Vectorised: 10^5 numbers take about a second."""
    import numpy as np

    names = list(scores.columns)
    if not names:
        return [[] for _ in range(len(scores))]
    weights = np.array([SIGNAL_BY_NAME[n].weight for n in names])
    s = np.nan_to_num(scores.to_numpy(dtype=float), nan=0.0)
    key = np.where(s >= 0.6, s * weights, -1.0)
    moderate: np.ndarray = ~np.any(key >= 0, axis=1)
    key[moderate] = np.where(s[moderate] > 0.5, s[moderate] * weights, -1.0)
    order = np.argsort(-key, axis=1, kind="stable")[:, :top]
    values = canonical[names].to_numpy(dtype=float)
    labels = [f"{SIGNAL_BY_NAME[n].label}: {n}=" for n in names]
    medians = [f" (population median {_fmt(population_median.get(n))}; typical of fraud {_fmt(SIGNAL_BY_NAME[n].fraud)}, "
               f"of normal use {_fmt(SIGNAL_BY_NAME[n].normal)})" for n in names]
    mark = ["", ", moderate"]
    return [[labels[j] + _fmt(values[i, j]) + medians[j][:-1] + mark[int(moderate[i])] + ")" for j in order[i] if key[i, j] >= 0]
            for i in range(len(s))]


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.3g}" if isinstance(v, float) and not float(v).is_integer() else str(int(v)) if float(v).is_integer() else str(v)


# ---------------------------------------------------------------- supervised model


DEFAULT_ROUNDS = 800
#: a model refuses a table lacking more than this share of its feature columns (``Model.features_of``)
MAX_MISSING_SHARE = 0.1


def _models(seed: int = 0, rounds: int = DEFAULT_ROUNDS):
    # Averaging in scikit-learn's HistGradientBoosting as well gave the same AUC (0.962 on the
    # joined Sichuan tables) at five times the training time, so LightGBM alone is used.
    import lightgbm as lgb

    return [
        lgb.LGBMClassifier(n_estimators=rounds, learning_rate=0.02, num_leaves=7, subsample=0.8, subsample_freq=1,
                           colsample_bytree=0.3, min_child_samples=10, random_state=seed, verbose=-1, n_jobs=1),
    ]


def _fit_predict(X_train, y_train, X_test, seed: int = 0, rounds: int = DEFAULT_ROUNDS):
    import numpy as np
    from threadpoolctl import threadpool_limits

    # One thread: on a shared 2-core machine OpenMP spin-waiting makes more threads slower, and
    # the tables here are small (thousands of numbers).
    with threadpool_limits(limits=1):
        fitted = [m.fit(X_train, y_train) for m in _models(seed, rounds)]
    return fitted, np.mean([m.predict_proba(X_test)[:, 1] for m in fitted], axis=0)


THRESHOLD_FOLDS = 5  # inner folds: the inner models see 80 % of the training data, close to the final model
THRESHOLD_REPEATS = 3  # inner k-fold repeated with different splits; their F1 curves are averaged


def tune_threshold(X, y, folds: int = THRESHOLD_FOLDS, seed: int = 0, rounds: int = DEFAULT_ROUNDS,
                   repeats: int = THRESHOLD_REPEATS) -> tuple[float, float]:
    """The probability threshold that maximises fraud-class F1 over out-of-fold predictions
    (the F1-by-threshold curve averaged over ``repeats`` differently shuffled k-fold splits)."""
    import numpy as np
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    grid = np.linspace(0.05, 0.95, 91)
    curves = []
    for r in range(repeats):
        oof = np.zeros(len(y))
        for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed + 1 + r).split(X, y):
            oof[te] = _fit_predict(X.iloc[tr], y[tr], X.iloc[te], seed, rounds)[1]
        curves.append([f1_score(y, oof >= t) for t in grid])
    f1s = np.mean(curves, axis=0)
    best = int(np.argmax(f1s))
    return float(grid[best]), float(f1s[best])


MODEL_FORMAT = "voiceprint-calls-model/1"


@dataclass
class Model:
    """A trained scorer: LightGBM boosters, the columns they read, the tuned threshold, metadata.

    Saved as data, never as code: each booster in LightGBM's own text format, and the rest in
    JSON beside it, with the SHA-256 of the text so that an altered file is refused. A pickle
    (joblib) would run whatever code the file names when loaded, and model files travel between
    centres.
    """

    estimators: list  # lightgbm.Booster (or fitted LGBMClassifier, whose booster_ is used)
    columns: list
    threshold: float
    meta: dict

    @property
    def boosters(self) -> list:
        return [getattr(m, "booster_", m) for m in self.estimators]

    def features_of(self, frame):
        """``frame``'s columns in the model's order, refused when too many of them are absent.

        A missing column reaches the trees as "unknown" in every row, so a table of another layout
        (the CDR features against a model trained on BTG) would get one score for everyone."""
        missing = [c for c in self.columns if c not in frame.columns]
        if len(missing) > MAX_MISSING_SHARE * len(self.columns):
            layouts = ", ".join(self.meta.get("layouts") or []) or "another layout"
            raise DataError(f"the table lacks {len(missing)} of the model's {len(self.columns)} feature columns "
                            f"(e.g. {', '.join(missing[:3])}): the model was trained on {layouts} - score this table "
                            "without --model (the rule score) or with a model trained on tables like it")
        return frame.reindex(columns=self.columns).astype(float)

    def predict(self, frame):
        import numpy as np
        from threadpoolctl import threadpool_limits

        X = self.features_of(frame)
        with threadpool_limits(limits=1):
            return np.mean([b.predict(X, num_threads=1) for b in self.boosters], axis=0)

    def contributions(self, frame):
        """Per-feature contributions (LightGBM SHAP values, log-odds) for explanations."""
        return self.boosters[0].predict(self.features_of(frame), pred_contrib=True)

    def save(self, path) -> None:
        """``path``: the boosters as LightGBM text; ``path.json``: metadata and the text's SHA-256.

        Both are written under temporary names and renamed, so a crash leaves the old model whole.
        """
        import hashlib

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        texts = [b.model_to_string() for b in self.boosters]
        blob = _BOOSTER_SEPARATOR.join(texts).encode("utf-8")
        meta = {**self.meta, "format": MODEL_FORMAT, "threshold": self.threshold, "columns": self.columns,
                "boosters": len(texts), "sha256": hashlib.sha256(blob).hexdigest()}
        write_atomic(path, blob)
        write_atomic(Path(str(path) + ".json"), json.dumps(meta, indent=2))


_BOOSTER_SEPARATOR = "\n# ---- voiceprint: next booster ----\n"


def load_model(path) -> Model:
    """Load a model saved by :meth:`Model.save`, refusing anything else (pickles included)."""
    import hashlib

    from voiceprint.errors import NotFound

    path = Path(path)
    meta_path = Path(str(path) + ".json")
    if not path.exists():
        raise NotFound(f"{path}: no such model - train one with `voiceprint calls train`")
    retrain = "retrain with `voiceprint calls train`"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DataError(f"{path}: not a calls model (no readable {meta_path.name} beside it) - {retrain}") from None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise DataError(f"{path}: not a calls model in the {MODEL_FORMAT} format (an old pickle is never loaded: it could run code) - {retrain}")
    blob = path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
        raise DataError(f"{path}: fails its checksum in {meta_path.name} - the model was altered or corrupted; {retrain}")
    import lightgbm as lgb

    try:
        boosters = [lgb.Booster(model_str=text) for text in blob.decode("utf-8").split(_BOOSTER_SEPARATOR)]
    except Exception as err:  # lightgbm.basic.LightGBMError and decoding errors
        raise DataError(f"{path}: not a LightGBM text model ({type(err).__name__}) - {retrain}") from None
    meta = dict(meta)
    columns, threshold = list(meta.pop("columns")), float(meta.pop("threshold"))
    for key in ("format", "boosters", "sha256"):
        meta.pop(key, None)
    return Model(boosters, columns, threshold, meta)


def train_model(table: FeatureTable, seed: int = 0, columns: list | None = None, rounds: int = DEFAULT_ROUNDS) -> Model:
    """Fit the supervised scorer on a labelled feature table, threshold tuned by inner CV."""
    import numpy as np

    if table.labels is None:
        raise DataError("the feature table has no labels - add a 0/1 'label' column (1 = fraud) to train")
    keep = table.labels.notna().to_numpy()
    X = (table.frame[columns] if columns else table.frame)[keep]
    y = table.labels[keep].astype(int).to_numpy()
    if len(np.unique(y)) < 2 or min(np.bincount(y)) < 6:
        raise DataError("training needs at least 6 numbers of each label (0 normal, 1 fraud)")
    threshold, cv_f1 = tune_threshold(X, y, seed=seed, rounds=rounds)
    estimators, _ = _fit_predict(X, y, X.iloc[:1], seed, rounds)
    meta = {"layouts": table.layouts, "n_train": int(len(y)), "n_fraud": int(y.sum()), "cv_f1_at_threshold": cv_f1, "seed": seed, "rounds": rounds,
            "estimators": [type(m).__name__ for m in estimators]}
    return Model(estimators, list(X.columns), threshold, meta)


def cross_validate(table: FeatureTable, folds: int = 5, seed: int = 0) -> dict:
    """Outer k-fold CV: the model (threshold tuned inside each training part) and the rule score."""
    import numpy as np
    from sklearn.metrics import f1_score, roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    if table.labels is None:
        raise DataError("the feature table has no labels - add a 0/1 'label' column (1 = fraud)")
    keep = table.labels.notna().to_numpy()
    X, y = table.frame[keep], table.labels[keep].astype(int).to_numpy()
    rule = rule_score(table.canonical[keep])[0]
    oof, decided, per_fold = np.zeros(len(y)), np.zeros(len(y), bool), []
    for k, (tr, te) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y)):
        threshold, _ = tune_threshold(X.iloc[tr], y[tr], seed=seed)
        _, p = _fit_predict(X.iloc[tr], y[tr], X.iloc[te], seed)
        oof[te], decided[te] = p, p >= threshold
        per_fold.append({"fold": k, "auc": roc_auc_score(y[te], p), "f1": f1_score(y[te], p >= threshold), "threshold": threshold,
                         "rule_auc": roc_auc_score(y[te], rule[te])})
    return {
        "n": int(len(y)), "n_fraud": int(y.sum()), "features": int(X.shape[1]), "layouts": table.layouts,
        "model_auc": roc_auc_score(y, oof), "model_f1": f1_score(y, decided),
        "model_f1_mean_of_folds": float(np.mean([f["f1"] for f in per_fold])),
        "rule_auc": roc_auc_score(y, rule), "folds": per_fold,
    }
