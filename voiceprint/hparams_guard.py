"""What a SpeechBrain ``hyperparams.yaml`` may build before we let SpeechBrain load it.

HyperPyYAML turns tags into Python calls: ``!new:pkg.Class`` constructs, ``!name:pkg.func``
binds, ``!apply:pkg.func`` *calls at load time* and ``!include`` pulls in another file. A
model folder carried in on a USB stick is therefore code, not data: ``!apply:os.system`` in it
runs a shell command the moment the model loads. This module reads the YAML without building
anything, lists every object it would create, and refuses the file unless each one is a
SpeechBrain (or voiceprint) building block on the allowlist below. It runs before every load,
beside the SHA-256 check of every file.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ModelError

#: Modules whose classes a speaker model may construct (``!new:``) or reference (``!name:``).
ALLOWED_PREFIXES = (
    "speechbrain.lobes.models.",
    "speechbrain.lobes.features.",
    "speechbrain.processing.features.",
    "speechbrain.nnet.",
    "voiceprint.campplus.",
)
#: Single objects outside those modules that speaker-model folders use.
ALLOWED_OBJECTS = frozenset({
    "speechbrain.dataio.encoder.CategoricalEncoder",
    "speechbrain.utils.parameter_transfer.Pretrainer",
    "torch.nn.ModuleList",
    "torch.nn.Sequential",
})
#: Tags that build nothing (references, copies, tuples).
PLAIN_TAGS = frozenset({"!ref", "!copy", "!tuple"})


def hparams_targets(path: Path) -> list[tuple[str, str]]:
    """Every ``(tag, dotted target)`` the YAML would build, read without building any."""
    import yaml

    found: list[tuple[str, str]] = []

    class _Recorder(yaml.SafeLoader):
        pass

    def record(loader, suffix, node):
        tag, _, target = node.tag.partition(":")
        found.append((tag, target if suffix or target else ""))
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    _Recorder.add_multi_constructor("!", record)
    try:
        yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_Recorder)  # noqa: S506 - SafeLoader subclass
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ModelError(f"{path}: not a readable hyperparams.yaml ({type(err).__name__}) - re-copy the model folder") from None
    return found


def check_hparams(path: Path) -> list[str]:
    """Refuse a ``hyperparams.yaml`` that would run code; return the objects it builds."""
    built = []
    for tag, target in hparams_targets(path):
        if tag in PLAIN_TAGS:
            continue
        allowed = tag in ("!new", "!name") and (target in ALLOWED_OBJECTS or target.startswith(ALLOWED_PREFIXES))
        if not allowed:
            shown = f"{tag}:{target}" if target else tag
            raise ModelError(
                f"{path}: refuses to load - it asks for {shown}, which is not a SpeechBrain speaker-model "
                "building block (a model file must not run code); ask the model's supplier for a clean folder"
            )
        built.append(target)
    return sorted(set(built))
