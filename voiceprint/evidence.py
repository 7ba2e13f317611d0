"""The evidence report (HTML and PDF) and the figures the workbench shows beside a hit.

The report follows the ENFSI guideline for forensic speaker recognition and ISO 21043-5: the
question and the two propositions, the items with their SHA-256 and chain of custody, the case
assessment (quality gates, waveform and spectrogram with the speech marked), the method (software,
model fingerprint, back end, calibration and its bounds), the result (score, LR, log10 LR, verbal
scale), validation under similar conditions (Cllr, EER, Tippett plot), limitations and sign-off.
A 1:N query is reported as an *investigative lead*; a 1:1 ``verify`` as an *evaluative comparison*.
"""

from __future__ import annotations

import base64
import csv
import io
import logging
import math
import re
import secrets
import subprocess
import time
import unicodedata
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from .errors import DataError
from .i18n import HTML_LANG, translate

TEMPLATES = Path(__file__).resolve().parent / "web" / "templates"
#: Fonts the report asks for, in order: Latin first, then CJK (fonts-wqy-zenhei / fonts-noto-cjk, installed by `make install`).
REPORT_FONTS = '"DejaVu Sans", "WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans CJK", sans-serif'


# -- figures -----------------------------------------------------------------------------------
def _figure_fonts(plt) -> None:
    """Matplotlib falls back glyph by glyph through a list of families: file names and titles in Chinese
    are drawn with the CJK font the report itself uses, not as empty boxes."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    wanted = [f.strip(' "') for f in REPORT_FONTS.split(",")]
    families = [f for f in wanted if f in installed]
    if families:
        plt.rcParams["font.family"] = families
        # the CJK font has one weight, 500: matplotlib says so on stderr for every figure
        logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def voice_figure(path, channel: int, segments: list, title: str = "", lang: str = "en") -> bytes:
    """Waveform and spectrogram of one channel as PNG, with the time ranges of one voice shaded (labels in ``lang``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.signal import spectrogram

    from . import audio

    _figure_fonts(plt)
    rec = audio.load_recording(str(path), channels=max(int(channel), 0))
    ch = rec.channels[0]
    x, sr = ch.samples, ch.sample_rate
    t_end = len(x) / sr
    fig, (ax_w, ax_s) = plt.subplots(2, 1, figsize=(9, 4.2), sharex=True, gridspec_kw={"height_ratios": [1, 1.4]})
    # Waveform as a min/max envelope over at most 3000 columns: as exact as the screen can show.
    cols = max(1, min(3000, len(x)))
    edges = np.linspace(0, len(x), cols + 1).astype(int)
    lo = np.array([x[a:b].min() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:], strict=False)])
    hi = np.array([x[a:b].max() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:], strict=False)])
    tx = edges[:-1] / sr
    ax_w.fill_between(tx, lo, hi, color="#34495e", lw=0)
    ax_w.set_ylabel(translate("amplitude", lang))
    ax_w.set_ylim(-1.05, 1.05)
    hop = max(160, len(x) // 3000)
    f, t, sxx = spectrogram(x, fs=sr, nperseg=512, noverlap=max(0, 512 - hop), scaling="spectrum")
    ax_s.pcolormesh(t, f, 10 * np.log10(sxx + 1e-12), shading="auto", cmap="magma")
    ax_s.set_ylabel(translate("frequency (Hz)", lang))
    ax_s.set_xlabel(translate("time (s)", lang))
    for i, (a, b) in enumerate(segments):
        for ax in (ax_w, ax_s):
            ax.axvspan(a, b, color="#2ecc71", alpha=0.25, lw=0, label=translate("speech of this voice", lang) if (i == 0 and ax is ax_w) else None)
    ax_w.set_xlim(0, t_end)
    if segments:
        ax_w.legend(loc="upper right", fontsize=8)
    ax_w.set_title(title or translate("waveform and spectrogram (green: speech of this voice)", lang), fontsize=10)
    return _png(fig)


def tippett_figure(model: str, pair: str, net_a: float | None, net_b: float | None, case_log10: float | None,
                   trials: Path | None = None, symmetric: bool = False, lang: str = "en", at_bound: str | None = None) -> tuple[bytes | None, str]:
    """Tippett plot of development trials with this case's log10 LR marked, and a caption (both in ``lang``).

    The back end keeps its development impostor scores, so the different-speaker curve is always
    drawn, through the very calibration that gave the case's LR: its channel pair, both sides' net
    speech, and for a 1:1 comparison (``symmetric``) the mean of both roles, as ``verify`` computes it.
    The same-speaker curve needs the development trials file (``voiceprint evaluate --scores-out``),
    passed as ``trials``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .scoring import load_backend

    backend = load_backend(model)
    if backend is None:
        return None, translate("no back end is fitted for this model, so no likelihood ratio and no Tippett plot", lang)
    scores, n_trials = backend.impostor_scores(pair, questioned_speech(net_a, net_b, symmetric))  # the case's pair and duration
    impostors = np.asarray(backend.llr(scores, net_a, net_b, pair))
    if symmetric:
        impostors = 0.5 * (impostors + np.asarray(backend.llr(scores, net_b, net_a, pair)))
    curves = {translate("different speakers (development impostor trials)", lang): impostors / math.log(10)}
    caption = translate("{n} development impostor trials, through the {pair} calibration with this case's durations", lang,
                        n=n_trials, pair=translate(pair, lang))
    heldout = _heldout_curves(model, pair, net_a, net_b, symmetric, lang)
    if trials is not None:
        tgt, non = read_trials(trials)
        curves = {translate("same speaker ({n} trials)", lang, n=len(tgt)): tgt, translate("different speakers ({n} trials)", lang, n=len(non)): non}
        caption = translate("development trials from {file}", lang, file=Path(trials).name)
    elif heldout is not None:
        curves, caption = heldout
    else:
        caption += translate("; same-speaker curve: pass the development trials with --trials (from `voiceprint evaluate --scores-out`)", lang)
    _figure_fonts(plt)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for (label, vals), style in zip(curves.items(), ("-", "--"), strict=False):
        xs = np.sort(np.asarray(vals, dtype=float))
        ax.plot(xs, 1.0 - np.arange(len(xs)) / max(len(xs), 1), style, label=label)
    if case_log10 is not None:
        bound = {"upper": "≥ ", "lower": "≤ "}.get(at_bound or "", "")  # at the ELUB bound the data support no stronger value
        ax.axvline(case_log10, color="#c0392b", lw=2, label=translate("this case: log10 LR {value}", lang, value=f"{bound}{case_log10:+.2f}"))
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel(translate("log10 likelihood ratio", lang))
    ax.set_ylabel(translate("proportion of trials with log10 LR >= x", lang))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig), caption


def questioned_speech(net_a: float | None, net_b: float | None, symmetric: bool) -> float | None:
    """The net speech that picks a case's held-out validation row: the questioned (test) side, or for a 1:1
    comparison of two recordings the shorter of them."""
    if symmetric and net_a is not None and net_b is not None:
        return min(net_a, net_b)
    return net_b


def _heldout_curves(model: str, pair: str, net_a: float | None, net_b: float | None, symmetric: bool, lang: str) -> tuple[dict, str] | None:
    """A case's Tippett curves from the held-out validation of its back end (its channel pair and questioned speech), or None."""
    from . import validation

    record, _why = validation.load(model)
    if record is None:
        return None
    group, bucket = validation.curves_for_case(record, pair, questioned_speech(net_a, net_b, symmetric))
    if group is None:
        return None
    non = group.nontargets  # quantiles: each stands for an equal share of the different-speaker trials
    n_non = next((g["nontarget_trials"] for g in record["groups"] if g["pair"] == group.pair and g["speech"] == bucket), len(non))
    curves = {translate("same speaker ({n} trials)", lang, n=len(group.targets)): group.targets,
              translate("different speakers ({n} trials)", lang, n=n_non): non}
    speech = translate("every duration", lang) if bucket == "all" else translate("{bucket} of speech in the questioned recording", lang, bucket=bucket)
    caption = translate("held-out test speakers (never used to fit the back end), {pair} trials, {speech}", lang,
                        pair=translate(pair, lang), speech=speech)
    return curves, caption


def read_trials(path) -> tuple[np.ndarray, np.ndarray]:
    """Same- and different-speaker log10 LRs of a trials file (`voiceprint evaluate --scores-out`); DataError if it is none."""
    tgt: list[float] = []
    non: list[float] = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row.get("llr") in (None, ""):
                    continue
                (tgt if row.get("target") in ("1", "True", "true") else non).append(float(row["llr"]) / math.log(10))
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"{path}: not a trials file from `voiceprint evaluate --scores-out` ({err})") from err
    if not tgt or not non:
        raise DataError(f"{path}: needs both same- and different-speaker trials with an llr column")
    return np.array(tgt), np.array(non)


# -- who asked for the examination ---------------------------------------------------------------
#: The longest requesting unit or request reference taken (a case number has the library's own limit).
REQUEST_TEXT_MAX = 200
#: Unicode categories refused in a request field: control, format (invisible, bidi overrides), line/paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class RequestFieldError(DataError):
    """A request field the report cannot carry; ``field`` names it (``requested_by``, ``request_ref``, ``received``, ``case``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ExaminationRequest:
    """Who asked for the examination (委托) and under which reference: printed at the top of the report and
    recorded in its audit row. An empty field is shown as "not stated"."""

    requested_by: str = ""  #: requesting unit or officer (委托单位)
    request_ref: str = ""  #: the request's reference number (委托编号)
    received: str = ""  #: the day the items were received, YYYY-MM-DD (受理日期)
    case: str = ""  #: a case number of the library (案件编号)


def examination_request(requested_by: str | None = None, request_ref: str | None = None, received: str | None = None,
                        case: str | None = None, today: date | None = None) -> ExaminationRequest:
    """A checked :class:`ExaminationRequest`: plain one-line text of at most :data:`REQUEST_TEXT_MAX` characters
    (a case number: the library's limit), ``received`` a real day not after ``today`` (default: the local date).
    Raises :class:`RequestFieldError`, naming the field and what to type. Whether the case exists is checked
    when the report is written (:func:`report_html`)."""
    from .store import MAX_CASE_NUMBER

    day = (received or "").strip()
    return ExaminationRequest(requested_by=one_line_text("requested_by", requested_by, REQUEST_TEXT_MAX),
                              request_ref=one_line_text("request_ref", request_ref, REQUEST_TEXT_MAX),
                              received=_received_day(day, today or date.today()) if day else "",
                              case=one_line_text("case", case, MAX_CASE_NUMBER))


def one_line_text(field: str, value: str | None, limit: int) -> str:
    """``value`` stripped, when it is plain one-line text of at most ``limit`` characters; else :class:`RequestFieldError`."""
    text = (value or "").strip()
    if len(text) > limit:
        raise RequestFieldError(field, f"too long ({len(text)} characters) - type at most {limit} characters")
    refused = next((ch for ch in text if unicodedata.category(ch) in _REFUSED_CATEGORIES), None)
    if refused is not None:
        raise RequestFieldError(field, f"holds a control or invisible character (U+{ord(refused):04X}) - type plain text on one line")
    return text


def _received_day(text: str, today: date) -> str:
    try:
        if not _ISO_DAY.fullmatch(text):  # fromisoformat alone takes 20260815 and 2026-W33-1 too
            raise ValueError
        day = date.fromisoformat(text)
    except ValueError:
        raise RequestFieldError("received", f"{text[:40]!r} is not a date - type the day the items were received as YYYY-MM-DD "
                                            "(e.g. 2026-08-15)") from None
    if day > today:
        raise RequestFieldError("received", f"{text} is in the future - type the day the items were received as YYYY-MM-DD, "
                                            f"{today.isoformat()} or earlier")
    return day.isoformat()


def request_case(lib, request: ExaminationRequest) -> dict | None:
    """The request's case as the library holds it (its own number, however it was typed: AJ2026-0815 for ａｊ２０２６－０８１５;
    title), None when none is named; NotFound for a case the library does not hold (as `case file` refuses it: a mistyped
    number must not reach a report)."""
    if not request.case:
        return None
    row = lib.store.case_row(request.case)
    if row is None:
        lib.store.case_id(request.case)  # raises NotFound with the library's own wording
    return {"number": row["case_number"], "title": row["title"] or ""}


def report_html(lib, result_id: str, examiner: str, request: ExaminationRequest | None = None, trials: Path | None = None,
                lang: str = "en", audio_paths: dict | None = None) -> str:
    """The evidence report of a saved result as HTML (pass it to :func:`render_pdf` for a PDF): one ``report``
    audit row records its id, the examiner and the request, and the report quotes that row as its chain head.
    ``audio_paths`` adds readable copies of recordings (SHA-256 -> path) to those kept under the library."""
    from .library import upload_path
    from .store import audit_chain_head
    from .web.accounts import load_result

    request = request or ExaminationRequest()
    case = request_case(lib, request)
    if case is not None:  # the report and its audit row carry the library's case number, as `case add` stored it
        request = replace(request, case=case["number"])
    saved = load_result(lib.store, result_id)
    body = saved["body"]
    shas = [f["sha256"] for f in body.get("files", [])] or [body.get(k, {}).get("sha256", "") for k in ("a", "b")]
    paths = {s: upload_path(lib.root, s) for s in shas if s} | dict(audio_paths or {})
    report_id = f"VP-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4).upper()}"
    recorded = {k: v or None for k, v in asdict(request).items()}  # a field not given is null in the row, not left out
    with lib.store.transaction():
        lib.store.audit("report", f"result:{result_id}", report_id=report_id, examiner=examiner, lang=lang, **recorded)
        head = audit_chain_head(lib.store)  # this very row: it holds the request the report prints
    ctx = build_report(lib, saved, examiner, paths, trials, lang, request=request, report_id=report_id, chain_head=head)
    ctx.update(request_case=case, request_row=head["id"])
    return render_html(ctx)


# -- the report --------------------------------------------------------------------------------
def software_commit() -> str:
    """The git commit of the running code (read locally; 'not a git checkout' for an installed wheel)."""
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
        commit = out.stdout.strip()
        if not commit:
            return "not a git checkout"
        # the package's own files changed since that commit: the commit alone does not reproduce the result
        changed = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "--", "voiceprint", "models"],
                                 capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return f"{commit} (with local changes to the code or models)" if changed else commit


def _method(lib) -> dict:
    from . import __version__
    from .scoring import load_backend, scoring_note
    from .validation import VALIDATION_FILE

    backend = load_backend(lib.model)
    meta = backend.meta if backend is not None else {}
    stored = meta.get("llr_limit") or {}
    limits = {k: [round(v / math.log(10), 2) for v in pair] for k, pair in stored.items() if "|" not in k}
    by_speech: dict[str, dict[str, list[float]]] = {}  # pair -> test-speech bucket -> bounds, inside the pair's
    if backend is not None:
        for key in sorted((k for k in stored if "|" in k), key=lambda k: (k.split("|")[0], _bucket_start(k.split("|")[1]))):
            pair, bucket = key.split("|", 1)
            by_speech.setdefault(pair, {})[bucket] = [round(v / math.log(10), 2) for v in backend.llr_limits(pair, _bucket_start(bucket))]
    return {
        "software_version": __version__, "commit": software_commit(), "model": lib.model,
        "model_fingerprint": lib.store.get_meta("model_fingerprint", "") or "",
        "backend": scoring_note(lib.model), "backend_fitted_at": meta.get("fitted_at", "none"),
        "backend_sha256": _backend_file_sha(lib.model, "backend.json"),
        "validation_sha256": _backend_file_sha(lib.model, VALIDATION_FILE),
        "calibration_data": backend.calibration_data() if backend is not None else "none (raw cosine, no likelihood ratio)",
        "corpora": meta.get("corpora", {}), "split_rule": meta.get("split_rule", ""), "log10_lr_bounds": limits,
        "log10_lr_bounds_by_speech": by_speech,
        "dev_figures": meta.get("dev_figures", {}),
    }


def _bucket_start(bucket: str) -> float:
    """The shortest net speech of a duration bucket (``voiceprint.evaluate.DURATION_BUCKETS``)."""
    from .evaluate import DURATION_BUCKETS

    return next(lo for lo, _, name in DURATION_BUCKETS if name == bucket)


def _custody(lib, shas: list[str], lang: str = "en") -> list[dict]:
    """Audit rows that touched these recordings (by the 16-hex prefix rows carry), oldest first; a 1:1 comparison's
    row only when it compared all of them. ``action_shown`` is the stored code, with its gloss in Chinese reports."""
    from .i18n_zh import AUDIT_ACTIONS
    from .store.casefile import audit_touching

    rows = []
    touching = [audit_touching(lib.store, sha[:16]) for sha in shas]
    every = set.intersection(*({r["id"] for r in found} for found in touching)) if touching else set()
    for found in touching:
        for r in found:
            if r["action"] == "verify" and r["id"] not in every:
                continue  # a 1:1 comparison of one of these recordings with a third: another comparison's row
            gloss = AUDIT_ACTIONS.get(r["action"]) if lang == "zh" else None
            rows.append(dict(r) | {"time": _iso(r["ts"]), "action_shown": f"{r['action']}（{gloss}）" if gloss else r["action"]})
    return sorted({r["id"]: r for r in rows}.values(), key=lambda r: r["id"])


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _gates(quality: dict, lang: str = "en") -> list[dict]:
    from . import quality as q

    net = float(quality.get("net_speech_s") or 0.0)
    snr = quality.get("snr_frames_db", quality.get("snr_db"))
    clip = float(quality.get("clipping_ratio") or 0.0)
    return [
        {"gate": translate("net speech >= {gate} s", lang, gate=f"{q.QUERY_WEAK_SPEECH_S:g}"), "value": f"{q.seconds_shown(net)} s",
         "pass": net >= q.QUERY_WEAK_SPEECH_S},
        {"gate": translate("SNR >= {gate} dB", lang, gate=f"{q.MIN_SNR_DB:g}"), "value": translate("n/a", lang) if snr is None else f"{snr:.1f} dB",
         "pass": snr is None or snr >= q.MIN_SNR_DB},
        {"gate": translate("clipping <= {gate} %", lang, gate=f"{100 * q.MAX_CLIPPING:g}"), "value": f"{100 * clip:.2f} %", "pass": clip <= q.MAX_CLIPPING},
    ]


def _data_uri(png: bytes | None) -> str:
    return "" if not png else "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def build_report(lib, result: dict, examiner: str, audio_paths: dict | None = None, trials: Path | None = None, lang: str = "en",
                 request: ExaminationRequest | None = None, report_id: str = "", chain_head: dict | None = None) -> dict:
    """Everything the report template needs. ``result`` is a saved result (``kind`` query or verify, ``body``);
    ``audio_paths`` maps a recording's SHA-256 to a readable copy (for the waveform/spectrogram); ``lang``: the
    report's language (:mod:`voiceprint.i18n`); ``request``: who asked for the examination (fields left empty
    read "not stated"). :func:`report_html` passes the id and chain head its audit row recorded."""
    from .store import audit_chain_head

    audio_paths = audio_paths or {}
    body, kind = result["body"], result["kind"]
    lead = kind == "query"
    ctx: dict = {
        "report_id": report_id or f"VP-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4).upper()}",
        "result_id": result.get("id", ""), "kind": kind, "lead": lead,
        "title": translate("Investigative lead: speaker search (1:N)" if lead else "Evaluative comparison: speaker comparison (1:1)", lang),
        "examiner": examiner, "date": _iso(time.time()), "library": str(lib.root.name), "laboratory": lib.laboratory, "fonts": REPORT_FONTS,
        "lang": lang, "html_lang": HTML_LANG[lang], "request": request or ExaminationRequest(), "request_case": None, "request_row": None,
        "method": _method(lib), "chain_head": chain_head or audit_chain_head(lib.store),
    }
    if lead:
        voices = body.get("voices", [])
        ctx["items"] = [{"name": f["name"], "sha256": f["sha256"], "size": f.get("size")} for f in body.get("files", [])]
        ctx["voices"] = []
        for v in voices:
            top = (v.get("hits") or [None])[0]
            png = _voice_png(audio_paths.get(v.get("sha256", "")), v, lang)
            tip, caption = tippett_figure(lib.model, top.get("calibration") or "all", top.get("enrolled_net_speech"), v.get("net_speech"),
                                          top.get("log10_lr"), trials, lang=lang, at_bound=top.get("at_bound")) if top else (None, translate("no hit", lang))
            ctx["voices"].append({**v, "top": top, "gates": _gates(v.get("quality") or {}, lang), "figure": _data_uri(png),
                                  "tippett": _data_uri(tip), "tippett_caption": caption})
        ctx["references"] = _references(lib, voices)
        shas = [i["sha256"] for i in ctx["items"]] + [r["sha256"] for r in ctx["references"]]
        population = translate("for each likelihood ratio, {development}; the search itself ran over the {n} persons enrolled in library "
                               "'{library}' (an investigative search, not a relevant-population sample). Neither sex nor dialect was matched",
                               lang, development=_development_population(lib.model, lang), n=voices[0].get("library_size", 0) if voices else 0,
                               library=lib.root.name)
    else:
        ctx["items"] = [{"name": Path(body[k]["file"]).name, "sha256": body[k]["sha256"], "size": None} for k in ("a", "b")]
        tip, caption = tippett_figure(lib.model, body.get("calibration") or "all", body["a"].get("net_speech"), body["b"].get("net_speech"),
                                      body.get("log10_lr"), trials, symmetric=True, lang=lang, at_bound=body.get("at_bound"))
        ctx["comparison"] = {**body, "tippett": _data_uri(tip), "tippett_caption": caption}
        shas = [i["sha256"] for i in ctx["items"]]
        population = _development_population(lib.model, lang)
    ctx["population"] = population
    ctx["custody"] = _custody(lib, shas, lang)
    cases = _validation_cases(ctx, body, lead, lang)
    pairs = {pair for _label, pair, _speech in cases}
    ctx["validation"] = [{"name": name, "f": f, "this_case": any(_condition_of_pair(name, pair) for pair in pairs)}
                         for name, f in ctx["method"]["dev_figures"].items()]
    ctx["heldout"], ctx["heldout_note"], ctx["heldout_unmatched"] = _heldout_rows(lib.model, cases, lang)
    return ctx


def _validation_cases(ctx: dict, body: dict, lead: bool, lang: str) -> list[tuple[str, str | None, float | None]]:
    """The conditions a report's validation section marks: (label, channel pair, questioned net speech) of every voice
    with a hit of a 1:N lead (labelled by channel and voice, and file when the query had several), or of the comparison."""
    if not lead:
        return [(translate("the comparison", lang), body.get("calibration"),
                 questioned_speech(body["a"].get("net_speech"), body["b"].get("net_speech"), True))]
    several_files = len({v.get("file") for v in ctx.get("voices") or []}) > 1
    cases = []
    for v in ctx.get("voices") or []:
        top = v.get("top")
        if not top:
            continue
        label = (translate("{file} - channel {channel}, voice {voice}", lang, file=v.get("file", ""), channel=v.get("channel", 0), voice=v.get("voice", 0))
                 if several_files else translate("channel {channel}, voice {voice}", lang, channel=v.get("channel", 0), voice=v.get("voice", 0)))
        cases.append((label, top.get("calibration"), questioned_speech(top.get("enrolled_net_speech"), v.get("net_speech"), False)))
    return cases


def _heldout_rows(model: str, cases: list, lang: str) -> tuple[list[dict], str, list[str]]:
    """The held-out validation rows (:mod:`voiceprint.validation`) with the row of each of the case's voices marked
    (``mark``: what the table says beside it), the record's provenance, and a sentence for each voice whose condition
    has no held-out row; or no rows and why."""
    from . import validation

    record, why = validation.load(model)
    if record is None:
        return [], why, []
    rows, missing = validation.rows_for_cases(record, cases)
    for row in rows:
        row["mark"] = ("" if not row["cases"] else translate("this case", lang) if len(cases) == 1
                       else translate("this case: {voices}", lang, voices=_joined(row["cases"], lang)))
    unmatched = [translate("{voice} ({pair}, {speech}): no held-out trials of this duration; the Tippett plot shows the channel pair's "
                           "trials of every duration" if m["pair_rows"] else
                           "{voice} ({pair}, {speech}): no held-out trials of this channel pair; no held-out figure applies to it",
                           lang, voice=m["label"], pair=m["pair"] or translate("n/a", lang), speech=m["speech"] or translate("n/a", lang))
                 for m in missing]
    return rows, _heldout_provenance(record, lang), unmatched


def _joined(parts: list[str], lang: str) -> str:
    return ("；" if lang == "zh" else "; ").join(parts)


def _heldout_provenance(record: dict, lang: str) -> str:
    """When and on whom the held-out figures were measured (validation.json), in the report's language: the condition
    names (corpus/channel) are data and stay as they are."""
    parts = [translate("measured {when}", lang, when=record.get("measured_at", "")), translate(str(record.get("speakers", "")), lang)]
    parts += [translate("{condition} ({speakers} speakers, {tests} tests)", lang, condition=c.get("condition", ""), speakers=c.get("speakers", ""),
                        tests=c.get("tests", "")) for c in record.get("conditions", [])]
    return _joined([p for p in parts if p], lang)


def _condition_of_pair(condition: str, pair: str | None) -> bool:
    """Whether a development condition ("speechocean762/clean>amrnb", "hyke_ivr_8k/clean") has the channel pair a
    case's LR was calibrated for: wideband (clean 16 kHz both sides), narrowband (telephone both sides), cross."""
    corpus, _, channel = condition.partition("/")
    native_8k = corpus.startswith("hyke")  # real 8 kHz calls: "clean" is their telephone channel
    if pair == "cross":
        return ">" in channel
    if pair == "narrowband":
        return ">" not in channel and (native_8k or channel != "clean")
    if pair == "wideband":
        return channel == "clean" and not native_8k
    return False


def _references(lib, voices: list[dict]) -> list[dict]:
    """The enrolled sample each voice's top hit was compared through (its best-matching sample), with its SHA-256, so
    the reference side of the comparison is an item of the report too. A sample erased since is left out."""
    wanted = [(v, (v.get("hits") or [None])[0]) for v in voices]
    ids = [int(top["sample"]["voiceprint"]) for _, top in wanted if top and top.get("sample")]
    info = lib.store.voiceprint_info(ids)
    out: list[dict] = []
    for _, top in wanted:
        sample = info.get(int(top["sample"]["voiceprint"])) if top and top.get("sample") else None
        if sample is not None and sample["sha256"] not in {r["sha256"] for r in out}:
            out.append({"person": top["person"]["name"], "name": sample["original_name"], "sha256": sample["sha256"],
                        "net_speech": sample["net_speech"], "voiceprint": int(sample["id"])})
    return out


def _backend_file_sha(model: str, name: str) -> str:
    """SHA-256 of a file of the model's back end, or "none": ``backend.json`` (it names its arrays' own hash: which
    calibration gave the LRs) or ``validation.json`` (the held-out figures the report cites)."""
    from .scoring import _file_sha, backend_dir

    path = backend_dir(model) / name
    return _file_sha(path) if path.exists() else "none"


def _development_population(model: str, lang: str = "en") -> str:
    """The relevant population an evaluative LR stands for: the speakers the calibration was fitted on."""
    from .scoring import load_backend

    backend = load_backend(model)
    corpora = sorted({name.split("/")[0] for name in (backend.meta.get("corpora") or {})}) if backend else []
    if not corpora:
        return translate("no back end is fitted: no relevant population (the score is uncalibrated)", lang)
    return translate("speakers of the development corpora the calibration was fitted on ({corpora}; see Method)", lang, corpora=", ".join(corpora))


def _voice_png(path, voice: dict, lang: str = "en") -> bytes | None:
    if not path or not Path(path).exists():
        return None
    return voice_figure(path, voice.get("channel", 0), voice.get("segments") or [],
                        translate("{file} - channel {channel}, voice {voice}", lang, file=voice.get("file", ""), channel=voice.get("channel", 0),
                                  voice=voice.get("voice", 0)), lang)


def template_filters() -> dict:
    """The Jinja filters every page and the report share: one way to print an LR, its bound and net speech."""
    from .quality import seconds_shown
    from .scoring import bound_mark, lr_shown

    return {"bound": bound_mark, "lr": lr_shown, "speech_s": seconds_shown}


def render_html(ctx: dict) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from .i18n import install

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))
    env.filters.update(template_filters())
    install(env)
    return env.get_template("report.html").render(**{"lang": "en", "html_lang": "en", **ctx})


def render_pdf(html: str) -> bytes:
    """The report as PDF (WeasyPrint; pango draws CJK with the font `make install` brings)."""
    from weasyprint import HTML

    return HTML(string=html, base_url=str(TEMPLATES)).write_pdf()
