"""Write the CLI reference docs/cli.md from the commands' --help, or check it is current.

    .venv/bin/python scripts/cli_reference.py           # rewrite docs/cli.md
    .venv/bin/python scripts/cli_reference.py --check   # exit 1 when docs/cli.md has drifted
"""

from __future__ import annotations

import argparse

from voiceprint import clidoc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check; exit 1 when the file is not current")
    args = ap.parse_args()
    if args.check:
        if clidoc.check():
            print(f"{clidoc.REFERENCE} is current")
            return 0
        print(f"{clidoc.REFERENCE} is out of date - run scripts/cli_reference.py")
        return 1
    print(f"wrote {clidoc.write()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
