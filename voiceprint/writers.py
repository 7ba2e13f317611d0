"""Who writes a library: its write lock, and the runs at work between two of their commits.

A writer holds ``.lock`` (an exclusive ``flock``, its file naming the holder: "pid N (user)") only
while it writes: one file's last look-up and commit, an index save, a deletion. A waiting writer
first takes the turn (``.lock.turn``), then the lock: a writer that lets the lock go between two
commits must queue for the turn like anyone else, so whoever waits gets the lock at the next commit's
end instead of finding it taken again at every poll.

A long run (an enrolment) holds no lock between its commits, so the database moves ahead of the index
on disk until its next index save. It registers itself for its whole length (:func:`at_work`): a file
under ``.writers/`` naming it, ``flock``-ed while it lives, so one killed with ``kill -9`` is told
from one at work. :func:`at_work_now` names them (``voiceprint index check`` says ``writing``, not
``stale``, while any is at work).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from .errors import LibraryBusy

log = logging.getLogger("voiceprint")

LOCK_NAME = ".lock"
TURN_NAME = ".lock.turn"
WRITERS_DIR = ".writers"
#: How often a waiting writer tries again (a commit takes tens of milliseconds).
POLL_S = 0.05


def who() -> str:
    """How a writer names itself: "pid N (user)"."""
    from .store import default_operator

    return f"pid {os.getpid()} ({default_operator()})"


def _taken(fh: IO) -> bool:
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _holder(fh: IO) -> str:
    with contextlib.suppress(OSError):
        return os.pread(fh.fileno(), 200, 0).decode("utf-8", "replace").strip() or "another process"
    return "another process"


def acquire(root: Path, wait: float, on_wait: Callable[[str], None] | None = None) -> IO:
    """Take the library's write lock (the turn first, then the lock); :class:`LibraryBusy` after ``wait`` seconds.

    Returns the lock file, open and locked; closing it releases the lock."""
    fh = open(os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600), "r+")
    deadline = time.monotonic() + wait
    told = False
    try:
        with open(os.open(root / TURN_NAME, os.O_RDWR | os.O_CREAT, 0o600)) as turn:  # closing it passes the turn on
            for lock in (turn, fh):
                while not _taken(lock):
                    holder = _holder(fh)
                    if not told and on_wait:
                        on_wait(f"library {root} is being written by {holder}; waiting up to {wait:.0f} s")
                        told = True
                    if time.monotonic() >= deadline:
                        raise LibraryBusy(f"library {root} is being written by {holder} - wait for it to finish and run this again")
                    time.sleep(POLL_S)
    except BaseException:
        fh.close()
        raise
    return fh


def lock_holder(root: Path) -> str | None:
    """Who holds the write lock now ("pid N (user)"), or None when nobody does."""
    try:
        fd = os.open(Path(root) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None
    with open(fd) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fh)
        return None


def at_work(root: Path) -> contextlib.AbstractContextManager[None]:
    """Register this run as a writer at work on the library for as long as it lasts (its lock comes and goes)."""
    return held_record(Path(root) / WRITERS_DIR, who())


@contextlib.contextmanager
def held_record(folder: Path, text: str) -> Iterator[None]:
    """A record of ``text`` in ``folder``, held (flock-ed) for as long as the block runs, so that :func:`records` tells
    it from one a killed process left. Made under a dot-name, locked, then renamed into place, so a record seen
    unlocked is one whose process died. Not making it (a read-only or full disk) stops nothing: it is logged."""
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    fd = None
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(folder / f".{token}.new", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, text.encode())
        os.rename(folder / f".{token}.new", folder / token)
    except OSError as err:
        log.info("could not make a record in %s: %s", folder, err)
    try:
        yield
    finally:
        if fd is not None:
            for name in (token, f".{token}.new"):
                with contextlib.suppress(OSError):
                    (folder / name).unlink()
            os.close(fd)  # after the unlink: a record is never seen unlocked while its process lives


def at_work_now(root: Path) -> list[str]:
    """The writers at work on the library: the lock's holder and the registered runs ("pid N (user)"),
    each once. A registration left by a run killed with ``kill -9`` is not one of them (and is removed)."""
    names = [h] if (h := lock_holder(root)) else []
    for path, text, held in records(Path(root) / WRITERS_DIR):
        if held:
            names.append(text or "another process")
        else:
            with contextlib.suppress(OSError):
                path.unlink()  # its run is gone
    return list(dict.fromkeys(names))


def records(folder: Path) -> Iterator[tuple[Path, str, bool]]:
    """Each record in ``folder`` (dot-names are records being made): its path, its text, and whether a running
    process holds it (an flock its process keeps for as long as it lives: a kill -9 lets go of it)."""
    try:
        paths = sorted(Path(folder).iterdir())
    except OSError:
        return
    for path in paths:
        if path.name.startswith("."):
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        with open(fd, "rb") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
                held = False
            except BlockingIOError:
                held = True
            text = fh.read(4096).decode("utf-8", "replace").strip()
        yield path, text, held
