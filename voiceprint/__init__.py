"""voiceprint: offline voiceprint library and CDR reverse-strike screening for anti-fraud centres.

Light at import: ``from voiceprint import Library`` loads no model and no torch.
"""

import os

# torch's OpenMP threads spin while they wait for work by default; on a shared or busy machine that
# made two threads 10-20x slower than one (docs/benchmarks.md, "Long recordings"). Set before torch
# loads; a caller's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .errors import AudioError, DataError, LibraryBusy, LibraryError, ModelError, NotFound, VoiceprintError

__version__ = "0.1.0"
__all__ = ["Library", "AudioError", "DataError", "LibraryBusy", "LibraryError", "ModelError", "NotFound", "VoiceprintError"]


def __getattr__(name):
    if name == "Library":
        from .library import Library

        return Library
    raise AttributeError(name)
