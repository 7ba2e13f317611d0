"""Write tests/data/speech_amrwb_16k.amr: a real AMR-WB file (the fixture for AMR-WB decoding).

PyAV's bundled FFmpeg can decode AMR-WB but has no AMR-WB encoder, so this script calls the reference
VisualOn encoder library directly through ctypes (Debian: ``apt-get install libvo-amrwbenc0``).  Run it
only to regenerate the committed fixture:  .venv/bin/python tests/data/make_amr_wb.py
"""

import ctypes
import ctypes.util
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from audiogen import AMR_WB_FIXTURE, synth_speech  # noqa: E402

MODE_23_85K = 8  # 23.85 kbit/s; modes 0..8
FRAME = 320  # 20 ms at 16 kHz


def main(out: Path = AMR_WB_FIXTURE, seconds: float = 4.0) -> None:
    name = ctypes.util.find_library("vo-amrwbenc") or "libvo-amrwbenc.so.0"
    lib = ctypes.CDLL(name)
    lib.E_IF_init.restype = ctypes.c_void_p
    lib.E_IF_encode.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_short),
                                ctypes.POINTER(ctypes.c_ubyte), ctypes.c_int]
    lib.E_IF_encode.restype = ctypes.c_int
    lib.E_IF_exit.argtypes = [ctypes.c_void_p]
    x = (synth_speech(seconds, sr=16000, seed=3) * 32767).round().astype(np.int16)
    x = np.concatenate([x, np.zeros(-len(x) % FRAME, dtype=np.int16)])
    st = lib.E_IF_init()
    buf = (ctypes.c_ubyte * 64)()
    data = bytearray(b"#!AMR-WB\n")
    for i in range(0, len(x), FRAME):
        fr = np.ascontiguousarray(x[i : i + FRAME])
        n = lib.E_IF_encode(st, MODE_23_85K, fr.ctypes.data_as(ctypes.POINTER(ctypes.c_short)), buf, 0)
        data += bytes(buf[:n])
    lib.E_IF_exit(st)
    out.write_bytes(bytes(data))
    print(f"wrote {out} ({len(data)} bytes, {len(x) / 16000:.2f} s)")


if __name__ == "__main__":
    main()
