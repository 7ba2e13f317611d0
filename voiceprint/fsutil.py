"""Process helpers shared by the store and CDR import (no heavy imports)."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """Is process ``pid`` still running? Scratch files carry their writer's pid, so the next run can tell
    a file left by a killed process (removed) from one another process is still writing (kept)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True
