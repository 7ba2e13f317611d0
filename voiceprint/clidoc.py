"""The CLI reference (``docs/cli.md``), generated from the commands' own ``--help``.

``scripts/cli_reference.py`` writes it; ``scripts/cli_reference.py --check`` (and a test) fail when
the file and the commands have drifted apart, so the reference is always what ``--help`` says.
"""

from __future__ import annotations

from pathlib import Path

#: The file this module keeps current.
REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
WIDTH = 100

HEADER = """# CLI reference

Generated from `voiceprint ... --help` by `scripts/cli_reference.py`; do not edit by hand
(`scripts/cli_reference.py --check` and `tests/test_cli_reference.py` fail when it drifts).
Every command that reads a library takes `--library NAME|FOLDER` (default `$VOICEPRINT_LIBRARY`,
else `indexes/default`); tables become JSON with `--json` and CSV with `--csv` (the `calls` commands
also accept the older `--format table|csv|json`). Exit codes are listed in `voiceprint/errors.py`.
"""


def _commands(group, path: list[str]):
    """(command path, command) of every command and group under ``group``, depth first, in declaration order."""
    yield path, group
    for name, cmd in getattr(group, "commands", {}).items():
        yield from _commands(cmd, [*path, name])


def reference() -> str:
    """The whole reference as Markdown."""
    import typer.main
    from typer.testing import CliRunner

    from .cli import app

    root = typer.main.get_command(app)
    runner = CliRunner()
    parts = [HEADER]
    for path, _ in _commands(root, []):
        result = runner.invoke(app, [*path, "--help"], prog_name="voiceprint", terminal_width=WIDTH, max_content_width=WIDTH,
                               env={"COLUMNS": str(WIDTH), "VOICEPRINT_LIBRARY": None, "VOICEPRINT_OPERATOR": None})
        if result.exit_code != 0:
            raise RuntimeError(f"`voiceprint {' '.join(path)} --help` failed: {result.output}")
        title = "voiceprint " + " ".join(path) if path else "voiceprint"
        parts.append(f"## `{title.strip()}`\n\n```text\n{result.output.rstrip()}\n```\n")
    return "\n".join(parts)


def check(path: Path = REFERENCE) -> bool:
    """True when ``path`` holds exactly the current reference."""
    return path.is_file() and path.read_text(encoding="utf-8") == reference()


def write(path: Path = REFERENCE) -> Path:
    path.write_text(reference(), encoding="utf-8")
    return path
