"""atomic_output: private, whole or untouched, whatever the writer and the umask."""

import os
import stat

import pytest

from voiceprint.fsutil import atomic_output, write_atomic


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_finished_write_replaces_the_target_privately(tmp_path):
    old = os.umask(0o022)  # a Python caller's usual umask: the file must still be 0600
    try:
        target = tmp_path / "leads.csv"
        target.write_text("old\n")
        write_atomic(target, "number\n+8613800000001\n")
    finally:
        os.umask(old)
    assert target.read_text() == "number\n+8613800000001\n"
    assert _mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["leads.csv"]


def test_a_failed_write_leaves_the_target_as_it_was_and_no_temp_file(tmp_path):
    target = tmp_path / "features.parquet"
    target.write_bytes(b"the previous table")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half a tab")
        raise RuntimeError("the writer died")
    assert target.read_bytes() == b"the previous table"
    assert [p.name for p in tmp_path.iterdir()] == ["features.parquet"]


def test_an_interrupt_leaves_no_target(tmp_path):
    target = tmp_path / "report.pdf"
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as tmp:
        tmp.write_bytes(b"%PDF-1.7 ...")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_shared_artefact_can_be_world_readable(tmp_path):
    target = tmp_path / "network.onnx"
    with atomic_output(target, mode=0o644) as tmp:
        with open(tmp, "wb") as fh:  # writers that open the path themselves (DuckDB COPY, torch.onnx) overwrite it
            fh.write(b"graph")
    assert target.read_bytes() == b"graph" and _mode(target) == 0o644


def test_ctrl_c_during_a_deferred_step_waits_for_it_then_interrupts():
    """A Ctrl-C landing in the index save after the last commit left no index: the save now finishes first."""
    import os
    import signal

    from voiceprint.fsutil import ctrl_c_deferred

    done = []
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("saved")  # still runs: the interrupt waits
    assert done == ["saved"]
    with ctrl_c_deferred():  # no Ctrl-C: nothing raised
        done.append("again")
    assert done == ["saved", "again"]
