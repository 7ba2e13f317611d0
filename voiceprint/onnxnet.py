"""Speaker networks through ONNX Runtime: the same embeddings for about 1.5x less CPU.

Two networks are supported: CAM++ (:class:`voiceprint.campplus.CAMPPlus`, the default library model)
and SpeechBrain's ECAPA-TDNN (``ecapa-voxceleb``, whose windows diarisation clusters). The features
(fbank, minus the utterance mean) stay in torch exactly as the SpeechBrain model computes them; only
the network runs in ONNX Runtime, one row at a time (ECAPA takes each row's relative length, as in a
padded batch).

The ONNX graph is a *derived* file: exported from the hash-checked torch weights, never downloaded.
It lives beside the model it comes from, in ``models/<name>/onnx/`` (shared by every library that
uses the model, and written once by ``make install`` or at first use), with ``network.json`` holding
the SHA-256 of the source weights, of the graph itself, and the torch and ONNX Runtime versions.
On load both hashes are checked and the graph is run once against torch on a fixed input; a stale,
altered or unequal graph is exported again. When ONNX Runtime is missing or anything fails, the
caller keeps the torch network (one log line says why). ``VOICEPRINT_ONNX=0`` turns it off.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from .fsutil import atomic_output, write_atomic

log = logging.getLogger("voiceprint")

GRAPH_NAME = "network.onnx"
META_NAME = "network.json"
OPSET = 17
#: Lowest cosine between ONNX Runtime's and torch's embedding of the load-time probe.
MIN_AGREEMENT = 0.9999


def enabled() -> bool:
    return os.environ.get("VOICEPRINT_ONNX", "1") != "0"


def onnx_dir(spec) -> Path:
    return spec.home / "onnx"


def _sha256(path: Path) -> str:
    from .embedding import file_sha256

    return file_sha256(path)


def _versions() -> dict:
    import onnxruntime
    import torch

    return {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "opset": OPSET}


def _source(spec) -> dict:
    """What the graph is derived from: the weights' and local files' SHA-256 (the model's fingerprint)."""
    return {"model": spec.name, "fingerprint": spec.fingerprint, "weights_sha256": dict(spec.sha256)}


def network_kind(module) -> str | None:
    """``"campplus"`` or ``"ecapa"`` for a network this module can run in ONNX Runtime, else None."""
    from .campplus import CAMPPlus

    if isinstance(module, CAMPPlus):
        return "campplus"
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    return "ecapa" if isinstance(module, ECAPA_TDNN) else None


def _probe(kind: str, frames: int = 200) -> dict[str, np.ndarray]:
    """Fixed inputs for the export and the agreement check: mean-normalised features [1, frames, 80]
    (and for ECAPA a relative length under 1, so the graph keeps its length mask)."""
    rng = np.random.default_rng(16)
    x = rng.standard_normal((1, frames, 80)).astype(np.float32)
    inputs = {"feats": x - x.mean(axis=1, keepdims=True)}
    if kind == "ecapa":
        inputs["lengths"] = np.array([0.8], np.float32)
    return inputs


def _exportable(module, kind: str):
    """The module that is exported: for CAM++, 3D-Speaker's own forward on unpadded features (not the
    padded-batch wrapper); ECAPA as it is, ``(feats, lengths)``."""
    if kind == "ecapa":
        return module.eval()
    import torch
    from speakerlab.models.campplus.DTDNN import CAMPPlus as Speakerlab

    class Network(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, feats):
            return Speakerlab.forward(self.net, feats)

    return Network(module).eval()


def export(spec, module) -> Path:
    """Export ``module`` (the loaded, hash-checked torch network of ``spec``) into ``onnx_dir(spec)``.

    Written under temporary names and renamed into place, graph first: a reader in between finds a
    graph that does not match ``network.json`` and exports it again, never a graph accepted unchecked."""
    import torch

    kind = network_kind(module)
    assert kind is not None
    folder = onnx_dir(spec)
    folder.mkdir(parents=True, exist_ok=True)
    net = _exportable(module, kind)
    probe = _probe(kind)
    # as readable as the weights they are derived from
    with atomic_output(folder / GRAPH_NAME, mode=0o644) as tmp_graph:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
            torch.onnx.export(net, tuple(torch.from_numpy(v) for v in probe.values()), str(tmp_graph), input_names=list(probe),
                              output_names=["embedding"], dynamic_axes={"feats": {1: "frames"}},
                              opset_version=OPSET, dynamo=False)
        meta = {**_source(spec), "network": kind, "onnx_sha256": _sha256(tmp_graph), **_versions()}
    write_atomic(folder / META_NAME, json.dumps(meta, indent=2), mode=0o644)
    return folder / GRAPH_NAME


def _verified_graph(spec, kind: str) -> bytes | None:
    """The stored graph's bytes when it was exported from these weights by this torch and is unaltered
    (the session is made from these very bytes, so the file cannot change between check and load)."""
    folder = onnx_dir(spec)
    try:
        meta = json.loads((folder / META_NAME).read_text(encoding="utf-8"))
        blob = (folder / GRAPH_NAME).read_bytes()
    except (OSError, ValueError):
        return None
    import hashlib

    import torch

    if {k: meta.get(k) for k in ("model", "fingerprint", "weights_sha256")} != _source(spec):
        return None
    if meta.get("torch") != torch.__version__ or meta.get("opset") != OPSET or meta.get("network") != kind:
        return None
    return blob if hashlib.sha256(blob).hexdigest() == meta.get("onnx_sha256") else None


class OrtNetwork:
    """A network in an ONNX Runtime session (one intra-op thread): features -> embedding."""

    def __init__(self, graph: bytes, kind: str):
        import onnxruntime as ort

        self.kind = kind
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])

    def __call__(self, feats: np.ndarray, length: float = 1.0) -> np.ndarray:
        """The embedding [1, dim] of one row of mean-normalised features [1, frames, 80]; ``length``:
        the row's relative length in a zero-padded batch (ECAPA masks the rest; CAM++ takes unpadded rows)."""
        inputs = {"feats": np.ascontiguousarray(feats, dtype=np.float32)}
        if self.kind == "ecapa":
            inputs["lengths"] = np.array([length], np.float32)
        return self.session.run(None, inputs)[0].reshape(1, -1)


def _agrees(network: OrtNetwork, module, kind: str) -> bool:
    import torch

    probe = _probe(kind)
    with torch.inference_mode():
        ref = _exportable(module, kind)(*(torch.from_numpy(v) for v in probe.values())).reshape(-1).numpy().astype(np.float64)
    out = network(probe["feats"], float(probe.get("lengths", [1.0])[0])).reshape(-1).astype(np.float64)
    return float(ref @ out / (np.linalg.norm(ref) * np.linalg.norm(out))) >= MIN_AGREEMENT


def load_network(spec, module) -> OrtNetwork | None:
    """The ONNX Runtime network for ``spec`` (exported first when missing or stale), or None to keep torch."""
    kind = network_kind(module)
    if not enabled() or kind is None:
        return None
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        log.info("ONNX Runtime is not installed: the speaker model runs in torch")
        return None
    try:
        for attempt in range(2):
            graph = None if attempt else _verified_graph(spec, kind)
            if graph is None:
                export(spec, module)
                graph = _verified_graph(spec, kind)
            if graph is not None:
                network = OrtNetwork(graph, kind)
                if _agrees(network, module, kind):
                    return network
        log.warning("the ONNX export of %s disagrees with torch: the speaker model runs in torch", spec.name)
    except Exception as err:  # noqa: BLE001 - any failure keeps the torch network, which is always right
        log.warning("ONNX Runtime unavailable for %s (%s): the speaker model runs in torch", spec.name, type(err).__name__)
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m voiceprint.onnxnet [MODEL]`` (``make install``): export the graphs of a model (default:
    the default model) and of the model its diarisation uses, where missing or stale."""
    import sys

    from .embedding import DEFAULT_MODEL, get_embedder

    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    embedder = get_embedder(args[0] if args else DEFAULT_MODEL)
    for name in dict.fromkeys([embedder.spec.name, embedder.diarisation_embedder.spec.name]):
        e = get_embedder(name)
        where = f"ONNX Runtime graph ready in {onnx_dir(e.spec)}" if e.onnx_network is not None else "runs in torch"
        print(f"{name}: {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
