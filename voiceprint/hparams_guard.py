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


def _defined_where_allowed(target: str) -> bool:
    """Whether ``target`` names, as ``module.Name`` and nothing longer, an object defined in an allowed module.

    A prefix alone is not enough: HyperPyYAML resolves names by walking attributes, so
    ``speechbrain.nnet.CNN.np.f2py.subprocess.Popen`` starts with ``speechbrain.nnet.`` and is
    ``subprocess.Popen``. Here the longest importable module of the name must leave exactly one
    part, and that object's own module must be an allowed one (or the name an allowed object).
    Only modules under the allowed prefixes are imported to find out.
    """
    import importlib
    import importlib.util

    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            if importlib.util.find_spec(module_name) is not None:
                break
        except (ImportError, ValueError, AttributeError):
            continue  # a parent that is not a package (``...CNN.np``): try a shorter module
    else:
        return False
    if cut != len(parts) - 1:
        return False  # attributes of attributes: not a building block of that module
    obj = getattr(importlib.import_module(module_name), parts[-1], None)
    if obj is None or not callable(obj):
        return False
    if target in ALLOWED_OBJECTS:
        return True
    home = str(getattr(obj, "__module__", "") or "")
    return any(home == prefix.rstrip(".") or home.startswith(prefix) for prefix in ALLOWED_PREFIXES)


def check_hparams(path: Path) -> list[str]:
    """Refuse a ``hyperparams.yaml`` that would run code; return the objects it builds."""
    built = []
    for tag, target in hparams_targets(path):
        if tag in PLAIN_TAGS:
            continue
        allowed = (tag in ("!new", "!name") and (target in ALLOWED_OBJECTS or target.startswith(ALLOWED_PREFIXES))
                   and _defined_where_allowed(target))
        if not allowed:
            shown = f"{tag}:{target}" if target else tag
            raise ModelError(
                f"{path}: refuses to load - it asks for {shown}, which is not a SpeechBrain speaker-model "
                "building block (a model file must not run code); ask the model's supplier for a clean folder"
            )
        built.append(target)
    return sorted(set(built))
