"""Worker pools that prepare enrolment files (decode, VAD, one-voice check, embed) while the
calling thread commits each result in order (:mod:`voiceprint.enrolment`).

Threads up to ``THREADS_UP_TO`` workers: decoding and both networks (ONNX Runtime, torch)
release the GIL, so threads keep a few cores busy with no fork, no copied memory and no start-up
(docs/benchmarks.md 1e). About 8 % of a file's work holds the GIL, so beyond a few cores forked
processes scale better once each has enough files to amortise its start-up; they are used only
from the main thread, because a fork copies only the forking thread (a threaded web server always
gets threads).

Either pool takes ``prepare_one(item)``, which returns what the file stores or raises a
:class:`~voiceprint.errors.VoiceprintError`; a refusal comes back as a value, for the calling
thread to record in the file's turn. ``stop()`` abandons the files being prepared (a Ctrl-C
must not wait for a long recording): only the calling thread writes, so nothing they were doing
is half-stored.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from .audio import reporting
from .errors import VoiceprintError

#: Most workers run as threads; more run as forked processes (from the main thread only) ...
THREADS_UP_TO = 4
#: ... when each has this many files to amortise its start-up (the fork, and the first file at
#: twice the usual CPU while it faults in its memory: ~0.2-0.4 s).
FILES_PER_PROCESS = 32


def start(n: int, prepare_one: Callable[[Any], Any], files: int = 0) -> ThreadPreparers | ProcessPreparers:
    """``n`` workers running ``prepare_one`` over ``files`` files: threads, or processes for many
    workers with many files each, from the main thread."""
    import multiprocessing

    if (n > THREADS_UP_TO and files >= FILES_PER_PROCESS * n and threading.current_thread() is threading.main_thread()
            and "fork" in multiprocessing.get_all_start_methods()):
        return ProcessPreparers(n, prepare_one)
    return ThreadPreparers(n, prepare_one)


def _as_value(prepare_one: Callable[[Any], Any], item: Any) -> Any:
    try:
        return prepare_one(item)
    except VoiceprintError as err:
        return err


class _Abandoned(BaseException):
    """Raised in a worker thread at the next progress report after :meth:`ThreadPreparers.stop`
    (a BaseException: no handler on the way catches it as a refusal)."""


class ThreadPreparers:
    """Daemon threads with one torch intra-op thread meanwhile. A stop abandons the file each is
    preparing at its next progress report (decode, VAD, diarisation and embedding report as they
    go: :func:`voiceprint.audio.reporting`) and waits at most ``STOP_WAIT_S`` for that: native code
    still running when the interpreter exits would abort the process."""

    STOP_WAIT_S = 10.0

    def __init__(self, n: int, prepare_one: Callable[[Any], Any]):
        _one_torch_thread(True)
        self._prepare_one = prepare_one
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._stopped = threading.Event()
        self._threads = [threading.Thread(target=self._serve, name=f"voiceprint-prepare-{i}", daemon=True) for i in range(n)]
        for thread in self._threads:
            thread.start()

    def submit(self, item: Any) -> Future:
        future: Future = Future()
        self._tasks.put((future, item))
        return future

    def _serve(self) -> None:
        while not self._stopped.is_set():
            task = self._tasks.get()
            if task is None:
                return
            future, item = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                with reporting(self._abandon_if_stopped):
                    future.set_result(_as_value(self._prepare_one, item))
            except BaseException as err:  # noqa: BLE001 - handed to the calling thread, which raises it
                future.set_exception(err)

    def _abandon_if_stopped(self, stage: str, done: float, total: float) -> None:
        if self._stopped.is_set():
            raise _Abandoned

    def stop(self) -> None:
        """Cancel the queued files and let the threads go; files being prepared are abandoned."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        while True:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                break
            if task is not None:
                task[0].cancel()
        for _ in self._threads:
            self._tasks.put(None)
        deadline = time.monotonic() + self.STOP_WAIT_S
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        _one_torch_thread(False)


_TORCH_THREADS = {"pools": 0, "saved": 1}
_TORCH_LOCK = threading.Lock()


def _one_torch_thread(begin: bool) -> None:
    """One torch intra-op thread while any thread pool runs (its workers already fill the cores); the
    process-wide setting comes back when the last pool stops (web enrolments may overlap)."""
    import torch

    with _TORCH_LOCK:
        if begin:
            if _TORCH_THREADS["pools"] == 0:
                _TORCH_THREADS["saved"] = torch.get_num_threads()
                torch.set_num_threads(1)
            _TORCH_THREADS["pools"] += 1
        else:
            _TORCH_THREADS["pools"] -= 1
            if _TORCH_THREADS["pools"] == 0:
                torch.set_num_threads(_TORCH_THREADS["saved"])


class ProcessPreparers:
    """Forked processes sharing the loaded models; they ignore Ctrl-C (the main process stops the run),
    die with the main process and are terminated by :meth:`stop`."""

    def __init__(self, n: int, prepare_one: Callable[[Any], Any]):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        _FORKED["prepare_one"] = prepare_one  # what the forked workers inherit
        self._pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork"), initializer=_worker_start)

    def submit(self, item: Any) -> Future:
        return self._pool.submit(_prepare_forked, item)

    def stop(self) -> None:
        processes = list((getattr(self._pool, "_processes", None) or {}).values())  # shutdown() forgets them
        self._pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            proc.terminate()
        for proc in processes:
            proc.join(timeout=5)
        _FORKED.clear()


_FORKED: dict = {}


def _prepare_forked(item: Any) -> Any:
    return _as_value(_FORKED["prepare_one"], item)


def _worker_start() -> None:
    """In each forked worker: ignore Ctrl-C, die with the main process, one torch thread (the ONNX
    Runtime sessions inherited from the main process have one)."""
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    torch.set_num_threads(1)


def _die_with_parent() -> None:
    """Ask Linux to kill this process when the main process dies (a kill -9 must not leave workers
    holding the library's lock file open)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the main process died before the request was made
        os._exit(1)
