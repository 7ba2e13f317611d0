"""A progress bar on stderr for long recordings (decode, speech detection, diarisation, embedding).

``audio.load_recording``, ``audio.speech_segments`` and ``diarize.diarize`` report their progress to a
hook (``audio.reporting``); :func:`long_audio_bar` turns those reports into a rich progress bar on
stderr, so a 2-hour call shows where it is instead of sitting silent for minutes. Short recordings
(under ``MIN_SHOWN_S`` of audio) show nothing, and neither does a non-terminal stderr (logs, pipes)::

    with long_audio_bar():
        results = library.query("intercept.amr")
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Recordings shorter than this (seconds) get no bar: they finish in seconds anyway.
MIN_SHOWN_S = 300.0

_LABELS = {"decode": "decoding", "speech": "finding speech", "voices": "telling voices apart", "embed": "embedding"}


@contextmanager
def long_audio_bar(stream=None) -> Iterator[None]:
    """Show a progress bar for every long recording processed inside the block (stderr, terminals only)."""
    from .audio import reporting

    stream = sys.stderr if stream is None else stream
    if not getattr(stream, "isatty", lambda: False)():
        yield
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f} %"),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=Console(file=stream), transient=True)
    tasks: dict[str, Any] = {}  # stage -> rich TaskID
    long_call = {"seen": False}

    def hook(stage: str, done: float, total: float) -> None:
        if stage in ("decode", "speech") and max(done, total) >= MIN_SHOWN_S:
            long_call["seen"] = True
        if not long_call["seen"]:
            return
        if stage not in tasks:
            if not bar.live.is_started:
                bar.start()
            tasks[stage] = bar.add_task(_LABELS.get(stage, stage), total=total or None)
        bar.update(tasks[stage], completed=done, total=total or None)

    try:
        with reporting(hook):
            yield
    finally:
        if bar.live.is_started:
            bar.stop()
