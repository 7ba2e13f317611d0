"""voiceprint: offline voiceprint library and CDR reverse-strike screening for anti-fraud centres.

Light at import: ``from voiceprint import Library`` loads no model and no torch.
"""

from .errors import AudioError, DataError, LibraryBusy, LibraryError, ModelError, NotFound, VoiceprintError

__version__ = "0.1.0"
__all__ = ["Library", "AudioError", "DataError", "LibraryBusy", "LibraryError", "ModelError", "NotFound", "VoiceprintError"]


def __getattr__(name):
    if name == "Library":
        from .library import Library

        return Library
    raise AttributeError(name)
