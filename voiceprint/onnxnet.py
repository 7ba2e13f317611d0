"""CAM++'s network through ONNX Runtime: the same voiceprints for about 1.5x less CPU.

The features (Kaldi fbank, minus the utterance mean) stay in torch exactly as the SpeechBrain model
computes them; only the network (:class:`voiceprint.campplus.CAMPPlus`) runs in ONNX Runtime.

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
import tempfile
import warnings
from pathlib import Path

import numpy as np

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


def _probe_features(frames: int = 200) -> np.ndarray:
    """A fixed, mean-normalised feature input [1, frames, 80] for the agreement check."""
    rng = np.random.default_rng(16)
    x = rng.standard_normal((1, frames, 80)).astype(np.float32)
    return x - x.mean(axis=1, keepdims=True)


def _exportable(campplus):
    """The module that is exported: 3D-Speaker's own forward on unpadded features (no padded-batch wrapper)."""
    import torch
    from speakerlab.models.campplus.DTDNN import CAMPPlus as Speakerlab

    class Network(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, feats):
            return Speakerlab.forward(self.net, feats)

    return Network(campplus).eval()


def export(spec, campplus) -> Path:
    """Export ``campplus`` (the loaded, hash-checked torch network of ``spec``) into ``onnx_dir(spec)``.

    Written under temporary names and renamed into place, graph first, so a reader sees either the
    old pair or the new one; a second exporter racing this one writes the same content."""
    import torch

    folder = onnx_dir(spec)
    folder.mkdir(parents=True, exist_ok=True)
    net = _exportable(campplus)
    fd, tmp_graph = tempfile.mkstemp(prefix=".network.", suffix=".onnx.tmp", dir=folder)
    os.close(fd)
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
            torch.onnx.export(net, (torch.from_numpy(_probe_features()),), tmp_graph, input_names=["feats"],
                              output_names=["embedding"], dynamic_axes={"feats": {1: "frames"}},
                              opset_version=OPSET, dynamo=False)
        meta = {**_source(spec), "onnx_sha256": _sha256(Path(tmp_graph)), **_versions()}
        os.chmod(tmp_graph, 0o644)  # as readable as the weights it is derived from
        os.replace(tmp_graph, folder / GRAPH_NAME)
    finally:
        Path(tmp_graph).unlink(missing_ok=True)
    fd, tmp_meta = tempfile.mkstemp(prefix=".network.", suffix=".json.tmp", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=2)
    os.chmod(tmp_meta, 0o644)
    os.replace(tmp_meta, folder / META_NAME)
    return folder / GRAPH_NAME


def _current(spec) -> bool:
    """True when the stored graph was exported from these weights by this torch and is unaltered."""
    folder = onnx_dir(spec)
    try:
        meta = json.loads((folder / META_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    import torch

    if {k: meta.get(k) for k in ("model", "fingerprint", "weights_sha256")} != _source(spec):
        return False
    if meta.get("torch") != torch.__version__ or meta.get("opset") != OPSET:
        return False
    graph = folder / GRAPH_NAME
    return graph.is_file() and _sha256(graph) == meta.get("onnx_sha256")


class OrtNetwork:
    """CAM++'s network in an ONNX Runtime session (one intra-op thread): features -> embedding."""

    def __init__(self, graph: Path):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        """Embeddings [batch, dim] of unpadded, mean-normalised features [batch, frames, 80]."""
        return self.session.run(None, {"feats": np.ascontiguousarray(feats, dtype=np.float32)})[0]


def _agrees(network: OrtNetwork, campplus) -> bool:
    import torch

    x = _probe_features()
    with torch.inference_mode():
        ref = _exportable(campplus)(torch.from_numpy(x)).numpy()[0].astype(np.float64)
    out = network(x)[0].astype(np.float64)
    return float(ref @ out / (np.linalg.norm(ref) * np.linalg.norm(out))) >= MIN_AGREEMENT


def load_network(spec, campplus) -> OrtNetwork | None:
    """The ONNX Runtime network for ``spec`` (exported first when missing or stale), or None to keep torch."""
    if not enabled():
        return None
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        log.info("ONNX Runtime is not installed: the speaker model runs in torch")
        return None
    try:
        for attempt in range(2):
            if attempt or not _current(spec):
                export(spec, campplus)
            network = OrtNetwork(onnx_dir(spec) / GRAPH_NAME)
            if _agrees(network, campplus):
                return network
        log.warning("the ONNX export of %s disagrees with torch: the speaker model runs in torch", spec.name)
    except Exception as err:  # noqa: BLE001 - any failure keeps the torch network, which is always right
        log.warning("ONNX Runtime unavailable for %s (%s): the speaker model runs in torch", spec.name, type(err).__name__)
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m voiceprint.onnxnet [MODEL]`` (``make install``): export the graph now if it is missing or stale."""
    import sys

    from .embedding import DEFAULT_MODEL, get_embedder

    args = sys.argv[1:] if argv is None else argv
    name = args[0] if args else DEFAULT_MODEL
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    ready = get_embedder(name).onnx_network is not None
    print(f"{name}: {'ONNX Runtime graph ready in ' + str(onnx_dir(get_embedder(name).spec)) if ready else 'runs in torch'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
