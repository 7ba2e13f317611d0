"""Generate call detail records with planted fraud dens: the command line of ``voiceprint.calls.synthetic``.

    .venv/bin/python scripts/gen_cdr.py --rows 1000000 --out work/gen1m
"""

from voiceprint.calls.synthetic import main

if __name__ == "__main__":
    main()
