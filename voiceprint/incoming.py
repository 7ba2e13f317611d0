"""Uploads the workbench is still receiving: ``<library>/uploads/.incoming/<hex>/<name>`` (folders 0700, files 0600).

Each upload gets a folder of its own, and the process receiving it holds an exclusive ``flock`` on that folder
from before the first byte is written until the upload is kept (moved to its content address) or discarded.
The kernel lets go of the lock when the process ends, however it ends (``kill -9`` too), so a folder that no
process holds belongs to no request still running: none of its bytes was acknowledged, and they are a voice.
:func:`sweep` removes such folders; the workbench sweeps when it starts and before each upload, and every
erasure sweeps (:meth:`voiceprint.library.Library.finish_erasures`), so an upload a stopped server was receiving
never outlives its server, nor the erasure of the person speaking in it. Uploads still in flight in a running
server (this one or another) are left alone. No heavy imports: the library imports this.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import shutil
import threading
from pathlib import Path

#: folder -> the descriptor holding its lock, for every upload this process is receiving
_HELD: dict[Path, int] = {}
_GUARD = threading.Lock()


def incoming_dir(root: str | os.PathLike) -> Path:
    return Path(root) / "uploads" / ".incoming"


def hold_new(root: str | os.PathLike) -> Path:
    """A fresh, empty folder for one upload, held (locked) by this process until :func:`release`."""
    base = incoming_dir(root)
    for folder in (base.parent, base):
        folder.mkdir(mode=0o700, exist_ok=True)
    while True:
        folder = base / secrets.token_hex(8)
        folder.mkdir(mode=0o700)
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except FileNotFoundError:  # another process's sweep took it between mkdir and open: take another
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = os.fstat(fd).st_nlink > 0  # not removed by a sweep between open and the lock
        except BlockingIOError:  # a sweep holds it and is removing it
            held = False
        except BaseException:
            os.close(fd)
            raise
        if held:
            with _GUARD:
                _HELD[folder] = fd
            return folder
        os.close(fd)


def release(folder: str | os.PathLike) -> None:
    """Remove an upload's folder with whatever is still in it, then let go of it. A removal that fails leaves
    the folder unheld: the next :func:`sweep` removes it."""
    folder = Path(folder)
    try:
        shutil.rmtree(folder, ignore_errors=True)
    finally:
        with _GUARD:
            fd = _HELD.pop(folder, None)
        if fd is not None:
            os.close(fd)


def held() -> list[Path]:
    """The incoming folders this process holds (uploads in flight here)."""
    with _GUARD:
        return list(_HELD)


def sweep(root: str | os.PathLike) -> int:
    """Remove every incoming folder no running process holds (and any stray file beside them); how many went.

    A failure to remove one is raised (an erasure that calls this then stays pending and is finished later)."""
    base = incoming_dir(root)
    try:
        entries = list(base.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return 0
    removed = 0
    for entry in entries:
        with _GUARD:
            if entry in _HELD:
                continue
        try:
            fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue
        except OSError as err:
            if err.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            entry.unlink(missing_ok=True)  # a stray file or link: nothing in flight is ever one
            removed += 1
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # in flight in a running server
            if os.fstat(fd).st_nlink == 0:
                continue  # removed meanwhile (a sweep of another process)
            shutil.rmtree(entry)
            removed += 1
        finally:
            os.close(fd)
    return removed
