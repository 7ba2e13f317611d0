"""File-system helpers shared by the library, the store and the CDR commands (no heavy imports).

Everything this tool writes may hold biometric or personal data, and an investigator may stop a
run at any moment. :func:`atomic_output` gives every writer the same two guarantees: a file is
private (0600) whatever the caller's umask, and it appears whole or not at all.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PRIVATE_FILE = 0o600


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


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_output(target: str | os.PathLike, mode: int = PRIVATE_FILE) -> Iterator[Path]:
    """A temporary path beside ``target`` for any writer (DuckDB ``COPY``, pyarrow, ``open``).

    When the block ends normally the file gets ``mode``, is flushed to disk and renamed over
    ``target``; when it raises (or is interrupted) the file is removed and ``target`` is as it
    was. The temporary name is hidden and unique, so two writers never share it. A missing parent
    folder is made (0700).
    """
    target = Path(target)
    if target.is_dir():
        from .errors import DataError

        raise DataError(f"{target} is a folder - name the file to write inside it")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, mode)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def refuse_input_as_output(out: Path, inputs) -> None:
    """A DataError when ``out`` is one of the ``inputs``: writing it would replace what is being read."""
    from .errors import DataError

    for p in inputs:
        if p is not None and out.exists() and Path(p).exists() and os.path.samefile(out, p):
            raise DataError(f"{out} is also an input - write the result to another file (nothing was written)")


def writable_output(target: str | os.PathLike, inputs=()) -> Path:
    """``target`` checked before any work: not one of ``inputs`` (writing it would replace what is read),
    and its folder takes a new file. Raises DataError for the first, the OSError itself (a full, read-only
    or missing folder: ``errors.storage_failure`` says what to do) for the second."""
    from .errors import DataError

    out = Path(target)
    refuse_input_as_output(out, inputs)
    if out.is_dir():
        raise DataError(f"{out} is a folder - name a file to write")
    with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".check"):
        pass
    return out


def write_atomic(target: str | os.PathLike, data: bytes | str, mode: int = PRIVATE_FILE) -> None:
    """``data`` (text as UTF-8) into ``target`` through :func:`atomic_output`."""
    with atomic_output(target, mode) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


@contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Finish a short step that must not stop half-way (saving the index after the last commit) even if
    Ctrl-C arrives during it; the interrupt is raised when the step is done. Main thread only."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    previous_term = signal.signal(signal.SIGTERM, lambda signum, frame: caught.append(signum))  # kill, systemd: as Ctrl-C
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
        handler = {signal.SIGINT: previous, signal.SIGTERM: previous_term}.get(signal.Signals(caught[0])) if caught else None
        if caught and callable(handler):
            handler(caught[0], None)  # the handler that was in place (the CLI's) sees the interrupt now
        elif caught:
            raise KeyboardInterrupt
