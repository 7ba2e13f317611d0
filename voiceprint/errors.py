"""One exception family per kind of failure; the CLI maps each to one line and an exit code.

Exit codes (also in README):
    0   success
    1   unexpected internal error (a bug: rerun with --verbose and report it)
    2   bad command-line usage (typer/click)
    3   AudioError     - a recording cannot be used (corrupt, empty, silent, too short, too big)
    4   ModelError     - the speaker model is missing, altered or cannot be loaded
    5   LibraryError   - the library on disk is inconsistent or cannot be used (wrong key, read-only or full disk);
        ResourceError  - also the machine's resources ran out under a command: disk space, or DuckDB's --memory-limit
    6   LibraryBusy    - another process is writing the same library
    7   NotFound       - a person, case, phone, recording, model or library that does not exist
    8   DataError      - malformed input data: manifests, CDR files, feature tables
    130 interrupted by Ctrl-C (everything acknowledged before it is kept)
    143 stopped by SIGTERM (kill, systemd, a scheduler), handled as Ctrl-C is
"""

from __future__ import annotations


class VoiceprintError(Exception):
    """Base class: every error the toolkit raises on purpose. ``str(err)`` is one user-facing line."""

    exit_code = 1


class AudioError(VoiceprintError):
    """A recording cannot be decoded or is unusable as speech."""

    exit_code = 3

    def __init__(self, path, reason: str, hint: str = ""):
        self.path = str(path)
        self.reason = reason
        self.hint = hint
        msg = f"{self.path}: {reason}"
        if hint:
            msg += f" - {hint}"
        super().__init__(msg)

    def __reduce__(self):  # pickled as it was made (forked enrolment workers send refusals back)
        return type(self), (self.path, self.reason, self.hint)


class ModelError(VoiceprintError):
    """The speaker model is missing, fails its checksum, or cannot be loaded."""

    exit_code = 4


class LibraryError(VoiceprintError):
    """The library database or index is missing, inconsistent or unusable."""

    exit_code = 5


class LibraryBusy(LibraryError):
    """Another process holds the library's write lock."""

    exit_code = 6


class NotFound(VoiceprintError):
    """A named person, case, phone, recording or model does not exist."""

    exit_code = 7


#: What a record id larger than SQLite's 64-bit integers is told (no record can have it).
ID_TOO_LARGE = "no such record: the number given is larger than any id a library can hold - check the number"


def id_overflow(err: BaseException) -> bool:
    """An id too large for SQLite (``OverflowError`` from the sqlite3 module): a mistyped number, not a bug."""
    return isinstance(err, OverflowError) and "SQLite INTEGER" in str(err)


class ResourceError(VoiceprintError):
    """The machine's resources ran out under a command (DuckDB's memory limit): a setting to change, not a bug."""

    exit_code = 5


class DataError(VoiceprintError):
    """Malformed tabular input: an enrolment manifest, a CDR file, a feature table."""

    exit_code = 8


EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

#: What a full disk under the library database is told as (SQLite's "database or disk is full", or an I/O error
#: while the disk has no room left).
LIBRARY_DISK_FULL = "no space left on the device holding the library - free space and run it again"
#: Below this many free bytes, an I/O error of the library database is taken for a full disk.
FULL_BELOW = 1 << 20


def free_bytes(folder) -> int | None:
    """Bytes an unprivileged writer may still use on the file system holding ``folder`` (None when unknown)."""
    import os

    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def sqlite_disk_full(err: BaseException, folder=None) -> bool:
    """Whether a SQLite error is a full disk: SQLITE_FULL ("database or disk is full"), or - given the database's
    ``folder`` - an I/O error (SQLite reports the shared-memory or log file it could not grow as "disk I/O error")
    while that file system has (almost) no space left."""
    name = str(getattr(err, "sqlite_errorname", "") or "")
    text = str(err).lower()
    if name == "SQLITE_FULL" or "disk is full" in text:
        return True
    if folder is not None and (name.startswith("SQLITE_IOERR") or "disk i/o" in text):
        free = free_bytes(folder)
        return free is not None and free < FULL_BELOW
    return False


def storage_failure(exc: BaseException) -> str | None:
    """What to do about a failure of the disk under a library or output (read-only, full, no permission), or
    None for any other error. They are the machine's state, not a bug in the toolkit."""
    import errno
    import sqlite3

    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError):
        if "readonly" in text or "read-only" in text:
            return "the library database is read-only (a read-only mount or folder) - run from a writable copy or mount"
        if sqlite_disk_full(exc):
            return LIBRARY_DISK_FULL
        if "disk i/o" in text:
            return f"the disk under the library failed ({exc}) - free space (or check the disk), then run the command again"
    if isinstance(exc, OSError):
        target = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        if exc.errno == errno.EROFS:
            return f"the file system is read-only{target} - run from a writable copy or mount"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"no space left on the disk{target} - free space, then run the same command again"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"permission denied{target} - run as the library's owner, or check the folder's permissions"
        if exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
            return f"a file stands where a folder is needed, or a folder where a file is{target} - choose another path"
        if exc.errno == errno.ENOENT:
            return f"no such file or folder{target} - check the path (or that the file system can hold files)"
    if type(exc).__module__.split(".")[0] in ("duckdb", "_duckdb") and type(exc).__name__ in ("IOException", "OutOfMemoryException"):
        return _duckdb_storage_failure(str(exc))
    return None


def _duckdb_storage_failure(text: str) -> str | None:
    """What to do about DuckDB's disk errors (``duckdb.IOException``, ``duckdb.OutOfMemoryException`` when it could not
    spill to disk), worded as for the same ``OSError``; None for others. DuckDB gives no errno, only its message."""
    import re

    named = re.search(r'file \\?"([^"\\]+)\\?"', text)
    target = f" ({named.group(1)})" if named else ""
    lower = text.lower()
    if "no space left on device" in lower or '"errno":"28"' in lower.replace(" ", ""):
        return f"no space left on the disk{target} - free space, then run the same command again"
    if "read-only file system" in lower:
        return f"the file system is read-only{target} - run from a writable copy or mount"
    if "permission denied" in lower:
        return f"permission denied{target} - run as the library's owner, or check the folder's permissions"
    if "disk quota exceeded" in lower:
        return f"no space left on the disk{target} - free space, then run the same command again"
    if "out of memory" in lower:
        return OUT_OF_MEMORY.format(limit="its memory limit")
    return None


#: DuckDB ran out of memory within its limit (not of disk to spill to): what to change
OUT_OF_MEMORY = "out of memory at {limit} - raise --memory-limit (e.g. 4GB), or lower --threads (fewer threads need less memory)"


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is DuckDB running out of memory within its limit (not of disk space to spill to)."""
    return (type(exc).__module__.split(".")[0] in ("duckdb", "_duckdb") and type(exc).__name__ == "OutOfMemoryException"
            and _duckdb_storage_failure(str(exc)) == OUT_OF_MEMORY.format(limit="its memory limit"))


def not_a_text_table(path) -> DataError:
    """The refusal of a file given as a table that is not one (a recording, an archive, any binary file)."""
    return DataError(f"{path}: not a text table (CSV/TSV/Parquet) - give the table itself, not a recording or other binary file")


def looks_binary(path) -> bool:
    """Whether the start of ``path`` holds NUL bytes, as no CSV/TSV text does (UTF-16, marked by its byte-order mark, aside)."""
    with open(path, "rb") as fh:
        return head_looks_binary(fh.read(8192))


def head_looks_binary(head: bytes) -> bool:
    """:func:`looks_binary` for the first bytes of a file already read (a gzip stream's, once unpacked)."""
    return not head.startswith((b"\xff\xfe", b"\xfe\xff")) and b"\x00" in head
